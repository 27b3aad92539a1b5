"""Compressed drop-in replacements for `nn.Linear` (and GPT-2's `Conv1D`), and polar quantization of complex tensors.

Three ways to store a weight `W` of shape `(out_features, in_features)` in fewer bytes:
- [`SpectralLinear`] (`"dct"`): the largest coefficients of its orthonormal 2D DCT, `X = C_out W C_in^T`, in sparse
  row-compressed form (values and their indices both count); forward never rebuilds `W` whole.
- [`LowRankLinear`] (`"svd"`): its truncated SVD, two thin factors.
- [`Int8Linear`] (`"int8"`): int8 weights with one scale per output channel, multiplied by torch's int8 kernel.

A model's `config.compression` records which layers were replaced and how ([`compress_layers`] writes it), so that
[`build_compressed_layers`], called from the model's `__init__`, rebuilds the same structure before `from_pretrained`
fills it from safetensors. Polar quantization ([`polar_quantize`]) stores complex numbers as magnitude and phase codes.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.pytorch_utils import Conv1D


COMPRESSION_METHODS = ("dct", "svd", "int8")


def dct_basis(size: int, positions: torch.Tensor) -> torch.Tensor:
    """Columns `positions` of the orthonormal DCT-II matrix `C` of order `size`, `(size, len(positions))` float32:
    `C[k, n] = s_k cos(pi (2n + 1) k / 2N)` with `s_0 = sqrt(1/N)`, `s_k = sqrt(2/N)`, so `C @ x` is the DCT of `x`.
    Angles are formed in float64, where `(2n + 1) k` stays exact."""
    frequencies = torch.arange(size, dtype=torch.float64, device=positions.device)
    # In place: this runs once per block of SpectralLinear's forward, whose peak memory it sets.
    basis = torch.outer(frequencies, 2 * positions.double() + 1).mul_(math.pi / (2 * size)).cos_()
    return basis.mul_(_dct_scale(size, positions.device)[:, None]).float()


def dct2(weight: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2D DCT `C_out W C_in^T` of an `(out, in)` matrix; returns `(out, in)` float32."""
    rows, columns = (dct_basis(size, torch.arange(size, device=weight.device)) for size in weight.shape)
    return rows @ weight.float() @ columns.mT


def idct(coefficients: torch.Tensor) -> torch.Tensor:
    """Inverse DCT (`C^T @ X`, the orthonormal DCT-III) along the last dimension, `(..., N)` in and out, via an
    inverse real FFT of length 2N: no `(N, N)` matrix is formed."""
    size = coefficients.shape[-1]
    device = coefficients.device
    # irfft doubles every frequency but the first (Hermitian symmetry): halve those scales to compensate.
    scale = _dct_scale(size, device) * torch.where(torch.arange(size, device=device) > 0, 0.5, 1.0)
    twiddle = torch.polar(torch.ones(size, device=device), math.pi * torch.arange(size, device=device) / (2 * size))
    half_spectrum = coefficients * (scale * twiddle).to(torch.complex64)
    return torch.fft.irfft(half_spectrum, n=2 * size, norm="forward")[..., :size]


def _dct_scale(size: int, device: torch.device) -> torch.Tensor:
    """The orthonormal scales `s_k` of [`dct_basis`], float64."""
    scale = torch.full((size,), math.sqrt(2 / size), dtype=torch.float64, device=device)
    scale[0] = math.sqrt(1 / size)
    return scale


class CompressedLinear(nn.Module):
    """Base of the compressed layers: `y = x W^T + b` for `(..., in_features)` inputs, as `nn.Linear`, with `W` stored
    in fewer bytes. `weight` rebuilds the dense `(out_features, in_features)` matrix, for inspection and for code that
    reads `.weight`; it is a new tensor each time, so writing into it changes nothing."""

    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def dense_weight(self) -> torch.Tensor:
        """The `(out_features, in_features)` weight this layer computes with."""
        raise NotImplementedError

    @property
    def weight(self) -> torch.Tensor:
        return self.dense_weight()

    def nbytes(self) -> int:
        """Bytes of every tensor the layer stores: values, indices, scales and bias."""
        tensors = [*self.parameters(recurse=False), *self.buffers(recurse=False)]
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)

    def dense_nbytes(self) -> int:
        """Bytes of the float32 `nn.Linear` this layer replaces, bias included."""
        return 4 * (self.out_features * self.in_features + (self.out_features if self.bias is not None else 0))

    def compress_ratio(self) -> float:
        """Stored bytes over those of the float32 `nn.Linear` it replaces (bias included in both)."""
        return self.nbytes() / self.dense_nbytes()

    def memory_mb(self) -> float:
        """Stored size in MiB (2**20 bytes)."""
        return self.nbytes() / 2**20

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def _add_bias(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs if self.bias is None else outputs + self.bias.to(outputs.dtype)


class SpectralLinear(CompressedLinear):
    """A linear layer stored as the kept coefficients of the orthonormal 2D DCT of its weight, `X = C_out W C_in^T`.

    The kept coefficients are held row by row (rows of `X`, i.e. output frequencies), as `values`, their input
    frequencies `column_indices` (int32) and the `row_offsets` where each row starts: the compressed-sparse-row
    layout, whose indices count in `nbytes()`.

    Forward streams the weight in blocks of `block_size` input columns. Since `W = C_out^T X C_in`, a column block
    needs only the same columns of `C_in`: `X C_in[:, block]` is an `(out_features, block_size)` sparse-times-dense
    product (`F.embedding_bag` over the rows of `X`), and it is `C_out W[:, block]`, the block up to the output-side
    transform. That transform is the same for every block, so it is applied once to the accumulated
    `(tokens, out_features)` output (an inverse DCT along features) instead of to each block. Peak extra memory is
    one block of basis columns and one reconstructed block, never the `(out_features, in_features)` matrix.
    """

    def __init__(
        self, in_features: int, out_features: int, num_coefficients: int, bias: bool = True, block_size: int = 128
    ):
        super().__init__(in_features, out_features, bias)
        self.block_size = block_size
        self.values = nn.Parameter(torch.zeros(num_coefficients))
        self.register_buffer("column_indices", torch.zeros(num_coefficients, dtype=torch.int32))
        self.register_buffer("row_offsets", torch.zeros(out_features + 1, dtype=torch.int32))

    @staticmethod
    def coefficients_for_ratio(in_features: int, out_features: int, bias: bool, ratio: float) -> int:
        """How many coefficients fit in `ratio` of the float32 layer's bytes: each costs a float32 value and an int32
        index, on top of the row offsets and the bias."""
        dense_bytes = 4 * (out_features * in_features + (out_features if bias else 0))
        overhead = 4 * (out_features + 1) + (4 * out_features if bias else 0)
        return min(out_features * in_features, max(1, int((ratio * dense_bytes - overhead) // 8)))

    @classmethod
    def from_dense(cls, weight: torch.Tensor, bias: torch.Tensor | None, ratio: float, block_size: int = 128):
        """Keeps the largest-magnitude DCT coefficients of the `(out, in)` weight that fit in `ratio` of its bytes."""
        out_features, in_features = weight.shape
        count = cls.coefficients_for_ratio(in_features, out_features, bias is not None, ratio)
        layer = cls(in_features, out_features, count, bias is not None, block_size)
        coefficients = dct2(weight.detach().float())
        # Sorted flat positions are sorted by row, then by column: the compressed-sparse-row order.
        kept = coefficients.flatten().abs().topk(count).indices.sort().values
        rows, columns = kept // in_features, kept % in_features
        with torch.no_grad():
            layer.values.copy_(coefficients.flatten()[kept])
            layer.column_indices.copy_(columns)
            layer.row_offsets[1:] = torch.bincount(rows, minlength=out_features).cumsum(0)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def _coefficient_rows_times(self, dense: torch.Tensor) -> torch.Tensor:
        """Sparse `X` `(out, in)` times `(in, k)` dense: `(out, k)`, summing each row's kept entries."""
        return F.embedding_bag(
            self.column_indices, dense, self.row_offsets, mode="sum",
            per_sample_weights=self.values.float(), include_last_offset=True,
        )

    def dense_weight(self) -> torch.Tensor:
        return self._matmul(torch.eye(self.in_features, device=self.values.device)).mT

    def _matmul(self, inputs: torch.Tensor) -> torch.Tensor:
        """`(tokens, in_features)` times `W^T`, block by block: `(tokens, out_features)` in float32."""
        inputs = inputs.float()
        frequency_outputs = inputs.new_zeros(inputs.shape[0], self.out_features)
        positions = torch.arange(self.in_features, device=inputs.device)
        for block in positions.split(self.block_size):
            basis = dct_basis(self.in_features, block)  # (in, block): columns `block` of C_in
            weight_block = self._coefficient_rows_times(basis)  # (out, block) = C_out W[:, block]
            frequency_outputs = frequency_outputs + inputs[:, block] @ weight_block.mT
        return idct(frequency_outputs)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """`(..., in_features)` in, `(..., out_features)` out."""
        outputs = self._matmul(inputs.reshape(-1, self.in_features)).to(inputs.dtype)
        return self._add_bias(outputs.reshape(*inputs.shape[:-1], self.out_features))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, coefficients={self.values.numel()}, block_size={self.block_size}"


class LowRankLinear(CompressedLinear):
    """A linear layer whose weight is the product of two thin factors, `W = up @ down` with `up` `(out, rank)` and
    `down` `(rank, in)`: the truncated SVD of the original weight, its singular values split evenly between them."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.down = nn.Parameter(torch.zeros(rank, in_features))
        self.up = nn.Parameter(torch.zeros(out_features, rank))

    @staticmethod
    def rank_for_ratio(in_features: int, out_features: int, bias: bool, ratio: float) -> int:
        """The largest rank whose factors (and bias) fit in `ratio` of the float32 layer's bytes (at least 1)."""
        dense_elements = out_features * in_features + (out_features if bias else 0)
        budget = ratio * dense_elements - (out_features if bias else 0)
        return min(in_features, out_features, max(1, int(budget // (in_features + out_features))))

    @classmethod
    def from_dense(cls, weight: torch.Tensor, bias: torch.Tensor | None, ratio: float):
        out_features, in_features = weight.shape
        rank = cls.rank_for_ratio(in_features, out_features, bias is not None, ratio)
        layer = cls(in_features, out_features, rank, bias is not None)
        left, singular_values, right = torch.linalg.svd(weight.detach().float(), full_matrices=False)
        root = singular_values[:rank].sqrt()
        with torch.no_grad():
            layer.up.copy_(left[:, :rank] * root)
            layer.down.copy_(root[:, None] * right[:rank])
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def dense_weight(self) -> torch.Tensor:
        return self.up @ self.down

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """`(..., in_features)` in, `(..., out_features)` out, through the `rank`-wide bottleneck."""
        return F.linear(F.linear(inputs, self.down), self.up, self.bias)


class Int8Linear(CompressedLinear):
    """A linear layer with int8 weights and one float32 scale per output channel (symmetric, `W ~ scale * q`).

    Inference runs torch's weight-only int8 kernel (`torch._weight_int8pack_mm`), which never dequantizes the whole
    matrix. That kernel has no backward, so when gradients are needed (fine-tuning the rest of the model) the weight
    is dequantized; the int8 weights themselves are frozen buffers.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.register_buffer("weight_int8", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("weight_scales", torch.ones(out_features))

    @classmethod
    def from_dense(cls, weight: torch.Tensor, bias: torch.Tensor | None):
        out_features, in_features = weight.shape
        layer = cls(in_features, out_features, bias is not None)
        weight = weight.detach().float()
        observer = torch.ao.quantization.PerChannelMinMaxObserver(
            ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric
        )
        observer(weight)
        scales = observer.calculate_qparams()[0].float()
        # What torch.quantize_per_channel computes; its quantized tensors are deprecated as of torch 2.13.
        codes = torch.round(weight / scales[:, None]).clamp(observer.quant_min, observer.quant_max)
        with torch.no_grad():
            layer.weight_int8.copy_(codes)
            layer.weight_scales.copy_(scales)
            if bias is not None:
                layer.bias.copy_(bias)
        return layer

    def dense_weight(self) -> torch.Tensor:
        return self.weight_int8.float() * self.weight_scales[:, None]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """`(..., in_features)` in, `(..., out_features)` out."""
        if torch.is_grad_enabled() and inputs.requires_grad:
            return F.linear(inputs, self.dense_weight().to(inputs.dtype), self.bias)
        flat = inputs.reshape(-1, self.in_features).contiguous()  # the kernel needs contiguous rows
        outputs = torch._weight_int8pack_mm(flat, self.weight_int8, self.weight_scales.to(flat.dtype))
        return self._add_bias(outputs.reshape(*inputs.shape[:-1], self.out_features))


def _dense_parameters(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`(out, in)` weight and bias of an `nn.Linear` or of GPT-2's `Conv1D` (which stores its weight as `(in, out)`)."""
    weight = layer.weight.T if isinstance(layer, Conv1D) else layer.weight
    return weight, layer.bias


def compress_layer(layer: nn.Module, method: str, ratio: float, block_size: int = 128) -> CompressedLinear:
    """A compressed copy of an `nn.Linear` or `Conv1D` (`ratio` is ignored by `"int8"`, whose ratio is fixed)."""
    weight, bias = _dense_parameters(layer)
    if method == "dct":
        return SpectralLinear.from_dense(weight, bias, ratio, block_size)
    if method == "svd":
        return LowRankLinear.from_dense(weight, bias, ratio)
    return Int8Linear.from_dense(weight, bias)


def _empty_compressed_layer(layer: nn.Module, spec: dict) -> CompressedLinear:
    """A compressed layer with the structure `spec` records for `layer`, its tensors left for `from_pretrained`."""
    weight, bias = _dense_parameters(layer)
    out_features, in_features = weight.shape
    if spec["method"] == "dct":
        return SpectralLinear(in_features, out_features, spec["num_coefficients"], bias is not None, spec["block_size"])
    if spec["method"] == "svd":
        return LowRankLinear(in_features, out_features, spec["rank"], bias is not None)
    return Int8Linear(in_features, out_features, bias is not None)


def _layer_spec(layer: CompressedLinear) -> dict:
    """What `config.compression["layers"]` records to rebuild `layer`'s structure."""
    if isinstance(layer, SpectralLinear):
        return {"method": "dct", "num_coefficients": layer.values.numel(), "block_size": layer.block_size}
    if isinstance(layer, LowRankLinear):
        return {"method": "svd", "rank": layer.down.shape[0]}
    return {"method": "int8"}


def check_compression_arguments(method: str, ratio: float | None) -> None:
    """Raises a `ValueError` naming the problem for an unknown method or a ratio outside (0, 1]."""
    if method not in COMPRESSION_METHODS:
        raise ValueError(f"unknown compression method {method!r}; choose one of {', '.join(COMPRESSION_METHODS)}")
    if method != "int8" and ratio is None:
        raise ValueError(f"method {method!r} needs a ratio in (0, 1]")
    if ratio is not None and not 0 < ratio <= 1:
        raise ValueError(f"the ratio must lie in (0, 1] (compressed bytes / float32 bytes), got {ratio}")


def compress_layers(
    model: nn.Module, method: str, ratio: float | None = None, modules: list[str] | None = None, block_size: int = 128
) -> dict:
    """Replaces, in place, the `nn.Linear` / `Conv1D` layers of `model` (a backbone: embeddings and LM heads are not
    its layers) whose dotted path contains one of `modules` as a component (all of them when None), e.g.
    `["mlp"]` or `["mlp", "mixer"]`. Returns the `config.compression` dict that rebuilds this structure."""
    check_compression_arguments(method, ratio)
    selected = {
        name: layer for name, layer in model.named_modules()
        if isinstance(layer, (nn.Linear, Conv1D)) and (modules is None or set(modules) & set(name.split(".")))
    }
    if not selected:
        which = "" if modules is None else f" inside modules named {', '.join(modules)}"
        raise ValueError(f"{type(model).__name__} has no Linear layers{which} to compress")
    layers = {}
    for name, layer in selected.items():
        compressed = compress_layer(layer, method, ratio, block_size)
        model.set_submodule(name, compressed)
        layers[name] = _layer_spec(compressed)
    return {"method": method, "ratio": ratio, "modules": modules, "layers": layers}


def build_compressed_layers(model: nn.Module, compression: dict) -> None:
    """Replaces the layers `compression["layers"]` names (paths inside `model`) by compressed layers of the recorded
    structure, with placeholder tensors: called in `__init__`, so that `from_pretrained` loads the stored ones.

    Raises:
        ValueError: naming what `compression` (a `config.json` field) holds that no compression writes.
    """
    layers = compression.get("layers") if isinstance(compression, dict) else None
    if not isinstance(layers, dict):
        raise ValueError("config.compression must be the record a compression writes, with a 'layers' table")
    for name, spec in layers.items():
        method = spec.get("method") if isinstance(spec, dict) else None
        if method not in COMPRESSION_METHODS:
            raise ValueError(
                f"config.compression: layer {name!r} has method {method!r}, not one of {', '.join(COMPRESSION_METHODS)}"
            )
        for size in {"dct": ("num_coefficients", "block_size"), "svd": ("rank",)}.get(method, ()):
            if not (isinstance(spec.get(size), int) and spec[size] > 0):
                raise ValueError(
                    f"config.compression: layer {name!r} needs a positive integer {size}, got {spec.get(size)!r}"
                )
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"config.compression names a layer {name!r} this model does not have") from None
        model.set_submodule(name, _empty_compressed_layer(layer, spec))


@dataclass
class PolarQuantized:
    """Complex numbers as `magnitude_bits`-bit magnitude codes (uniform on `[0, magnitude_scale]`) and
    `phase_bits`-bit phase codes (uniform on the circle, step `2 pi / 2**phase_bits`)."""

    magnitude_codes: torch.Tensor
    phase_codes: torch.Tensor
    magnitude_scale: torch.Tensor
    magnitude_bits: int
    phase_bits: int

    def dequantize(self) -> torch.Tensor:
        """The quantized numbers as a real `(..., 2)` float32 tensor (real, imaginary)."""
        magnitude = self.magnitude_codes.float() * self.magnitude_scale / (2**self.magnitude_bits - 1)
        phase = self.phase_codes.float() * self.phase_step
        return torch.view_as_real(torch.polar(magnitude, phase))

    @property
    def phase_step(self) -> float:
        """Distance in radians between neighbouring phase codes (the largest phase error is half of it)."""
        return 2 * math.pi / 2**self.phase_bits

    def compression(self) -> float:
        """Bits of a float32 complex number (64) over the bits per number of the codes, as if bit-packed."""
        return 64 / (self.magnitude_bits + self.phase_bits)


def polar_quantize(values: torch.Tensor, magnitude_bits: int, phase_bits: int) -> PolarQuantized:
    """Quantizes complex numbers given as a real `(..., 2)` tensor (as FiftyNet stores filter residues) in polar form:
    magnitudes and phases separately, with the bit split given. Codes are `(...)` integer tensors."""
    if magnitude_bits < 1 or phase_bits < 1:
        raise ValueError(f"need at least one bit for magnitude and for phase, got {magnitude_bits} and {phase_bits}")
    numbers = torch.view_as_complex(values.detach().float().contiguous())
    magnitude, phase = numbers.abs(), numbers.angle()
    scale = magnitude.max().clamp_min(torch.finfo(torch.float32).tiny)
    code_dtype = torch.uint8 if max(magnitude_bits, phase_bits) <= 8 else torch.int32
    magnitude_codes = torch.round(magnitude / scale * (2**magnitude_bits - 1))
    phase_codes = torch.round(phase / (2 * math.pi) * 2**phase_bits).remainder(2**phase_bits)
    return PolarQuantized(
        magnitude_codes.to(code_dtype), phase_codes.to(code_dtype), scale, magnitude_bits, phase_bits
    )


__all__ = [
    "COMPRESSION_METHODS",
    "CompressedLinear",
    "Int8Linear",
    "LowRankLinear",
    "PolarQuantized",
    "SpectralLinear",
    "build_compressed_layers",
    "compress_layer",
    "compress_layers",
    "dct2",
    "dct_basis",
    "idct",
    "polar_quantize",
]
