"""PyTorch FiftyNet: causal language models that mix tokens with FFT long convolutions instead of attention."""

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.generation import GenerationMode
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
)
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.utils import can_return_tuple, logging

from .cache_fiftynet import (
    CACHE_NAME,
    FiftyNetMixerState,
    check_cache,
    check_extra_kwargs,
    fill_empty_cache,
    is_mixer_state,
    one_cache,
)
from .compression import build_compressed_layers
from .configuration_fiftynet import BYTE_SPECIAL_TOKEN_IDS, MIXERS, FiftyNetConfig
from .generation_fiftynet import FiftyNetChunkHeadGenerationMixin
from .saving import COMMIT_PREFIX, WEIGHT_FILE, finish_before_loading, staged_folder
from .spectral_ops import (
    at_least_float32,
    complex_exp,
    fft_causal_conv,
    frequency_response_to_kernel,
    modal_causal_conv,
    modrelu,
    rotary_angles,
    rotary_frequencies,
    rotate_pairs,
)


logger = logging.get_logger(__name__)

# Top-level modules of FiftyNetModel: checkpoint weights under them belong to the backbone.
BACKBONE_MODULES = ("embed_tokens", "embed_positions", "layers", "norm")
PICKLED_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _as_list(token_ids: int | list[int] | None) -> list[int]:
    return [] if token_ids is None else token_ids if isinstance(token_ids, list) else [token_ids]


def is_tracing() -> bool:
    """Whether torch.compile, torch.export or the JIT tracer is capturing this call: checks that read tensor values
    are skipped then, since their values are unknown while tracing."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing()


class FiftyNetRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.float()
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * hidden_states.to(input_dtype)


def build_norm(config: FiftyNetConfig) -> nn.Module:
    """The norm `config.norm_type` asks for, over `hidden_size` features."""
    if config.norm_type == "layer_norm":
        return nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
    return FiftyNetRMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class FiftyNetMLP(nn.Module):
    """`mlp_type="gated"`: `down_proj(act(gate_proj(x)) * up_proj(x))`; `"plain"`: `down_proj(act(up_proj(x)))`, the
    MLP of GPT-2. `(batch, seq_len, hidden_size)` in and out."""

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        if config.mlp_type == "gated":
            self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "gate_proj"):
            return self.down_proj(self.act_fn(self.gate_proj(hidden_states)) * self.up_proj(hidden_states))
        return self.down_proj(self.act_fn(self.up_proj(hidden_states)))


class FiftyNetModalFilter(nn.Module):
    """Per-channel causal long filter `h[c, t] = Re(sum_n C[c, n] * lambda[c, n] ** t)` for lags `t >= 0`.

    Defined only at non-negative lags, its time-domain support is causal by construction, and it has a value at every
    lag, so no sequence length is built in. The poles `lambda = exp(-exp(log_decay) + i * frequency)` lie strictly
    inside the unit circle, so every mode decays. Because each mode is a geometric sequence, the filter's effect of
    the whole past is carried exactly by `filter_state_size` complex numbers per channel (see [`FiftyNetMixerState`]).

    The complex residues `C` are stored as a real float32 tensor with a trailing dimension of 2 (real, imaginary) and
    viewed as complex in forward: complex parameters do not survive `from_pretrained`, FSDP or `.to(bfloat16)` intact.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        shape = (config.hidden_size, config.filter_state_size)
        self.decay_range = (config.filter_decay_min, config.filter_decay_max)
        # float32 whatever the default dtype (`from_config(..., dtype=torch.bfloat16)` builds under it), as
        # `_keep_in_fp32_modules_strict` declares and `from_pretrained` keeps.
        self.log_decay = nn.Parameter(torch.empty(shape, dtype=torch.float32))
        self.frequency = nn.Parameter(torch.empty(shape, dtype=torch.float32))
        self.residues = nn.Parameter(torch.empty(*shape, 2, dtype=torch.float32))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Decay rates log-uniform over the configured range (memories from ~1 to ~1/decay_min tokens), frequencies
        spread over [0, pi), and residues scaled so that every mode starts with unit energy."""
        channels, modes = self.log_decay.shape
        low, high = (math.log(rate) for rate in self.decay_range)
        log_decay = low + (high - low) * torch.rand(channels, modes)
        frequency = (math.pi * torch.arange(modes) / modes).expand(channels, modes)
        energy = 1 - torch.exp(-2 * log_decay.exp())
        residues = torch.randn(channels, modes, 2) * (energy / (2 * modes)).sqrt()[..., None]
        init.copy_(self.log_decay, log_decay)
        init.copy_(self.frequency, frequency)
        init.copy_(self.residues, residues)

    def log_poles(self) -> torch.Tensor:
        """`(channels, modes)` complex `log(lambda)`."""
        return torch.complex(-at_least_float32(self.log_decay).exp(), at_least_float32(self.frequency))

    def poles(self) -> torch.Tensor:
        """`(channels, modes)` complex `lambda`."""
        return complex_exp(self.log_poles())

    def complex_residues(self) -> torch.Tensor:
        """`(channels, modes)` complex `C`."""
        return torch.view_as_complex(at_least_float32(self.residues))

    def powers(self, length: int) -> torch.Tensor:
        """`(channels, modes, length)` complex `lambda ** t` for `t = 0 .. length - 1`."""
        lags = torch.arange(length, device=self.log_decay.device, dtype=self.log_decay.dtype)
        return complex_exp(self.log_poles()[..., None] * at_least_float32(lags))

    def forward(self, inputs: torch.Tensor, state: FiftyNetMixerState | None = None) -> torch.Tensor:
        """Causal convolution of `(batch, channels, seq_len)` inputs with the filter; returns the same shape in
        float32.

        Several tokens go through [`modal_causal_conv`] (the chunked scan: a Triton kernel on CUDA when Triton is
        installed, torch otherwise), which also continues from the modes `s` the state carries and gives the modes
        after the last token. A single new token is the recurrence `s <- lambda * s + u`, `y = Re(sum_n C_n s_n)`.
        """
        residues = self.complex_residues()
        past = state.tensors.get("filter_state") if state is not None else None
        if past is not None and inputs.shape[-1] == 1:
            with torch.autocast(device_type=inputs.device.type, enabled=False):
                modes = self.poles() * past + at_least_float32(inputs)
                outputs = (residues * modes).real.sum(-1, keepdim=True)
            state.store("filter_state", modes, replay=lambda kept: modes if kept else past)
            return outputs
        log_poles = self.log_poles()
        outputs, modes = modal_causal_conv(inputs, log_poles, residues, past)
        if state is not None:
            state.store("filter_state", modes,
                        replay=lambda kept: modal_causal_conv(inputs[..., :kept], log_poles, residues, past)[1])
        return outputs


class FiftyNetFourierFilter(nn.Module):
    """A bank of per-channel causal filters learned in the frequency domain, as in Fourier neural operators.

    Each filter is given by complex coefficients of its `fourier_modes` lowest frequencies; the inverse real FFT of
    length `fourier_kernel_size` turns them into a filter at lags `0 .. fourier_kernel_size - 1`. Reading that
    signal as non-negative lags only restricts its time-domain support to the past *before* it touches the sequence,
    which is what makes the operator causal (an FNO applied directly to the sequence's FFT would mix in the future
    and wrap around). The finite support also gives an exact decoding state: the last `fourier_kernel_size - 1`
    inputs.

    The coefficients are stored as a real float32 `(filters, channels, modes, 2)` tensor viewed as complex.
    """

    def __init__(self, config: FiftyNetConfig, num_filters: int = 1):
        super().__init__()
        self.kernel_size = config.fourier_kernel_size
        # float32 whatever the default dtype, as for FiftyNetModalFilter.
        self.coefficients = nn.Parameter(
            torch.empty(num_filters, config.hidden_size, config.fourier_modes, 2, dtype=torch.float32)
        )

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Random coefficients scaled so that each filter starts with unit energy (Parseval: the orthonormal inverse
        FFT keeps the energy, and a coefficient other than the mean frequency counts twice in a real signal)."""
        modes = self.coefficients.shape[2]
        init.normal_(self.coefficients, mean=0.0, std=1 / math.sqrt(4 * modes))

    def kernel(self) -> torch.Tensor:
        """`(filters, channels, fourier_kernel_size)` real filters in float32."""
        return frequency_response_to_kernel(torch.view_as_complex(at_least_float32(self.coefficients)), self.kernel_size)

    def forward(self, inputs: torch.Tensor, state: FiftyNetMixerState | None = None) -> torch.Tensor:
        """Causal convolution of `(batch, channels, seq_len)` inputs with every filter of the bank.

        Returns `(batch, filters, channels, seq_len)` in float32. With a state, the convolution continues from the
        inputs the state keeps, and the state then keeps the last `fourier_kernel_size - 1` inputs.
        """
        seq_len = inputs.shape[-1]
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            inputs = at_least_float32(inputs)
            if state is None:
                return fft_causal_conv(inputs[:, None], self.kernel())
            history = self.kernel_size - 1
            past = state.tensors.get("filter_inputs")
            if past is None:
                past = inputs.new_zeros(*inputs.shape[:2], history)
            extended = torch.cat([past, inputs], dim=-1)
            state.store_window("filter_inputs", extended, history)
            if seq_len == 1:
                return self._one_step(extended)[..., None]
            return fft_causal_conv(extended[:, None], self.kernel())[..., history:]

    def _one_step(self, window: torch.Tensor) -> torch.Tensor:
        """`(batch, filters, channels)` output for the newest of the `(batch, channels, fourier_kernel_size)` inputs:
        `sum_k h[k] * window[-1 - k]` for each filter `h`, by Parseval's identity in the frequency domain, where the
        filters are their coefficients: one FFT of the window per step instead of an inverse FFT of every filter."""
        coefficients = torch.view_as_complex(at_least_float32(self.coefficients))
        modes = coefficients.shape[-1]
        spectrum = torch.fft.rfft(window.flip(-1), norm="ortho")[..., :modes]
        # A real signal's spectrum is symmetric: every frequency but 0 (and n / 2) counts twice. The inverse real FFT
        # ignores the imaginary part at those two, as the products below do (the window's is 0 there).
        counts = torch.full((modes,), 2.0, dtype=spectrum.real.dtype, device=window.device)
        counts[0] = 1.0
        if modes == self.kernel_size // 2 + 1 and self.kernel_size % 2 == 0:
            counts[-1] = 1.0
        return torch.einsum("bdm,fdm->bfd", spectrum.conj(), coefficients * counts).real


class FiftyNetSpectralConvMixer(nn.Module):
    """Causal spectral token mixer (`mixer_type="spectral_conv"`), a gated long convolution in the style of H3/Hyena:

        q, k, v = short_conv(in_proj(x))        # causal depthwise convolution over a few tokens
        y = out_proj(q * long_conv(k * v))      # long_conv: FFT convolution with a FiftyNetModalFilter

    The gates make the mixing data-dependent; the long convolution runs through float32 FFTs zero-padded to at least
    2L, so nothing wraps around and no `(L, L)` tensor is ever built. Padding positions (`attention_mask == 0`) are
    zeroed before each convolution, so a pad never leaks into a real token.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        self.in_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.mixer_bias)
        self.short_conv = nn.Conv1d(
            3 * config.hidden_size, 3 * config.hidden_size, config.short_conv_size, groups=3 * config.hidden_size
        )
        self.filter = FiftyNetModalFilter(config)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.mixer_bias)

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        state: FiftyNetMixerState | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: `(batch, seq_len, hidden_size)`.
            padding_mask: `(batch, 1, seq_len)`, 1 for real tokens and 0 for padding, or None.
            state: this layer's recurrent state, read and advanced by `seq_len` tokens; None without a cache.

        Returns:
            `(batch, seq_len, hidden_size)`.
        """
        projected = self.in_proj(hidden_states).transpose(1, 2)
        if padding_mask is not None:
            projected = projected * padding_mask
        query, key, value = self._short_conv(projected, state).chunk(3, dim=1)
        mixer_input = key * value
        if padding_mask is not None:
            mixer_input = mixer_input * padding_mask
        mixed = self.filter(mixer_input, state).to(query.dtype)
        return self.out_proj((query * mixed).transpose(1, 2))

    def _short_conv(self, inputs: torch.Tensor, state: FiftyNetMixerState | None) -> torch.Tensor:
        """Causal depthwise convolution of `(batch, channels, seq_len)` inputs, continuing from the state's inputs."""
        batch_size, channels, _ = inputs.shape
        history = self.short_conv.kernel_size[0] - 1
        past = state.tensors.get("conv_inputs") if state is not None else None
        past = inputs.new_zeros(batch_size, channels, history) if past is None else past.to(inputs.dtype)
        extended = torch.cat([past, inputs], dim=-1)
        if state is not None:
            state.store_window("conv_inputs", extended, history)
        if extended.shape[-1] == history + 1 and not is_tracing():
            # One new token (a decoding step): a dot product per channel, several times cheaper than conv1d's setup.
            return (extended * self.short_conv.weight[:, 0]).sum(-1, keepdim=True) + self.short_conv.bias[:, None]
        return self.short_conv(extended)


class FiftyNetFourierFilterMixer(nn.Module):
    """What the `"nfo"` and `"fftnet"` mixers share: `in_proj`, a bank of [`FiftyNetFourierFilter`]s applied to the
    projection with pads zeroed, and `out_proj`."""

    def __init__(self, config: FiftyNetConfig, num_filters: int = 1):
        super().__init__()
        self.in_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.mixer_bias)
        self.filter = FiftyNetFourierFilter(config, num_filters=num_filters)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.mixer_bias)

    def _filter_projection(
        self, hidden_states: torch.Tensor, padding_mask: torch.Tensor | None, state: FiftyNetMixerState | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the projection `(batch, hidden_size, seq_len)` and its filtered versions
        `(batch, num_filters, hidden_size, seq_len)` in float32."""
        projected = self.in_proj(hidden_states).transpose(1, 2)
        if padding_mask is not None:
            projected = projected * padding_mask
        return projected, self.filter(projected, state)


class FiftyNetFourierOperatorMixer(FiftyNetFourierFilterMixer):
    """Neural Fourier Operator token mixer (`mixer_type="nfo"`), one Fourier-neural-operator layer made causal:

        u = in_proj(x)
        y = out_proj(act(K u + w * u))          # K: FiftyNetFourierFilter, causal; w: per-channel local path

    `K` multiplies the lowest `fourier_modes` frequencies by learned complex weights, as an FNO's spectral
    convolution does, but the weights define a filter over past lags only (see [`FiftyNetFourierFilter`]), so the
    layer is causal and needs no wrap-around. Pads are zeroed before the convolution.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__(config)
        self.local_weight = nn.Parameter(torch.ones(config.hidden_size))
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        state: FiftyNetMixerState | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """`(batch, seq_len, hidden_size)` -> `(batch, seq_len, hidden_size)`; arguments as in
        [`FiftyNetSpectralConvMixer.forward`]."""
        projected, filtered = self._filter_projection(hidden_states, padding_mask, state)
        mixed = filtered[:, 0].to(projected.dtype)
        activated = self.act_fn(mixed + self.local_weight[:, None] * projected)
        return self.out_proj(activated.transpose(1, 2))


class FiftyNetAdaptiveSpectralMixer(FiftyNetFourierFilterMixer):
    """Causal form of FFTNet's adaptive spectral filter (`mixer_type="fftnet"`; Fein-Ashley et al., "The FFT Strikes
    Back", arXiv 2502.18394).

    FFTNet filters the whole sequence's spectrum with `W_base + MLP(mean of all tokens)`, applies modReLU to the
    filtered spectrum and transforms back. Three of those steps see the future: the circular FFT wraps the end of the
    sequence onto its start, the mean covers future tokens, and a non-linearity on spectral coefficients mixes every
    time step into every other. The causal form keeps the idea and moves each piece to where it cannot look ahead:

        u = in_proj(x)
        c_t = mean(x_1 .. x_t)                                  # context of the past only (running mean)
        m_t = context_mlp(c_t)                                  # (adaptive_filter_count,) modulation per token
        y_t = (h_0 * u)_t + sum_j m_t[j] (h_j * u)_t            # filter h_0 + sum_j m_t[j] h_j, all causal
        out = out_proj(modReLU(y_t as complex pairs))           # pointwise in time: no future mixes in

    The filters `h_j` are learned in the frequency domain as in [`FiftyNetFourierFilter`]. Because the modulation
    enters linearly, the token-dependent filter costs `1 + adaptive_filter_count` FFT convolutions rather than one
    per token. modReLU `z * relu(|z| + b) / |z|` acts on complex numbers formed by pairs of channels, per token: it
    thresholds magnitudes and keeps phases. The residual connection is the block's.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__(config, num_filters=1 + config.adaptive_filter_count)
        self.context_mlp = nn.Sequential(
            nn.Linear(config.hidden_size, config.hidden_size // 4 or 1),
            ACT2FN[config.hidden_act],
            nn.Linear(config.hidden_size // 4 or 1, config.adaptive_filter_count),
        )
        self.modrelu_bias = nn.Parameter(torch.zeros(config.hidden_size // 2))

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        state: FiftyNetMixerState | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """`(batch, seq_len, hidden_size)` -> `(batch, seq_len, hidden_size)`; arguments as in
        [`FiftyNetSpectralConvMixer.forward`]."""
        context = self._running_mean(hidden_states, padding_mask, state)
        modulation = self.context_mlp(context.to(hidden_states.dtype))
        _, filtered = self._filter_projection(hidden_states, padding_mask, state)
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            weights = torch.cat([torch.ones_like(modulation[..., :1]), modulation], dim=-1).transpose(1, 2)
            mixed = torch.einsum("bfdl,bfl->bld", filtered, at_least_float32(weights))
            pairs = torch.view_as_complex(mixed.unflatten(-1, (-1, 2)).contiguous())
            activated = torch.view_as_real(modrelu(pairs, self.modrelu_bias)).flatten(-2)
        return self.out_proj(activated.to(hidden_states.dtype))

    @staticmethod
    def _running_mean(
        hidden_states: torch.Tensor, padding_mask: torch.Tensor | None, state: FiftyNetMixerState | None
    ) -> torch.Tensor:
        """`(batch, seq_len, hidden_size)` float32 mean of the real tokens up to each position, continuing from the
        sum and count the state keeps. A pad gets the mean of the tokens before it."""
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            weights = at_least_float32(
                padding_mask.transpose(1, 2) if padding_mask is not None else hidden_states.new_ones(*hidden_states.shape[:2], 1)
            )
            sums = torch.cumsum(at_least_float32(hidden_states) * weights, dim=1)
            counts = torch.cumsum(weights, dim=1)
            if state is not None:
                if "context_sum" in state.tensors:
                    sums = sums + state.tensors["context_sum"][:, None]
                    counts = counts + state.tensors["context_count"][:, None]
                for name, running in (("context_sum", sums), ("context_count", counts)):
                    previous = state.tensors.get(name, torch.zeros_like(running[:, 0]))
                    # Position k of `totals` is the total after the first k tokens of this call.
                    totals = torch.cat([previous[:, None], running], dim=1)
                    # Copies, not views of the prompt-long running sums.
                    state.store(name, running[:, -1].clone(), replay=lambda kept, totals=totals: totals[:, kept].clone())
            return sums / counts.clamp_min(1)


def rope_frequencies(config: FiftyNetConfig) -> tuple[torch.Tensor, float]:
    """The `(head_dim / 2,)` frequencies, in radians per position, and the scale of the rotary embedding that
    `config.rope_parameters` describes, from transformers' own rope initialisation (`ROPE_INIT_FUNCTIONS`): Llama
    3.x's `"llama3"`, `"yarn"` and `"linear"` scaling as their models compute them."""
    rope_type, theta = config.rope_parameters["rope_type"], config.rope_parameters["rope_theta"]
    with torch.device("cpu"):  # plain numbers, also when the model is built on the meta device
        if rope_type == "default":
            return rotary_frequencies(config.attention_head_dim // 2, theta), 1.0
        frequencies, scale = ROPE_INIT_FUNCTIONS[rope_type](config, torch.device("cpu"))
    return frequencies.float(), float(scale)


class FiftyNetAttention(nn.Module):
    """Causal self-attention (`mixer_type="attention"`) through PyTorch's `scaled_dot_product_attention`
    (FlashAttention or memory-efficient kernels where available), for hybrid stacks: multi-head, or grouped-query
    (`num_key_value_heads` < `num_attention_heads`; Ainslie et al., 2023), with optional RMSNorm of queries and keys
    (`attention_qk_norm`) and rotary embeddings (`position_encoding="rope"`, `rope_parameters`).

    Its state is the usual key/value cache, `num_key_value_heads` heads, which grows with the context. Rotary
    embeddings rotate consecutive channel pairs `(2k, 2k + 1)` of each head (Llama's layout pairs `k` with
    `k + head_dim / 2`: a conversion permutes the query and key projections' rows, which leaves `q . k` unchanged).
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.attention_key_value_heads
        self.head_dim = config.attention_head_dim
        out_bias = config.attention_bias if config.attention_out_bias is None else config.attention_out_bias
        query_width, key_value_width = self.num_heads * self.head_dim, self.num_key_value_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, query_width, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, key_value_width, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, key_value_width, bias=config.attention_bias)
        self.out_proj = nn.Linear(query_width, config.hidden_size, bias=out_bias)
        if config.attention_qk_norm:
            self.q_norm = FiftyNetRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = FiftyNetRMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.rotary_frequencies, self.rotary_scale = None, 1.0
        if config.position_encoding == "rope":
            frequencies, self.rotary_scale = rope_frequencies(config)
            self.rotary_frequencies = tuple(frequencies.tolist())  # constants, not a buffer to load or shard

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        state: DynamicLayer | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: `(batch, seq_len, hidden_size)`.
            padding_mask: unused (the 2D `attention_mask` covers the past keys too).
            state: the key/value cache of this layer (transformers' `DynamicLayer`), extended by `seq_len` tokens;
                None without a cache.
            attention_mask: `(batch, past_len + seq_len)` padding mask, 1 for tokens and 0 for pads; None when there
                are no pads.
            position_ids: `(batch, seq_len)` positions for the rotary embedding (`position_encoding="rope"`).

        Returns:
            `(batch, seq_len, hidden_size)`.
        """
        batch_size, seq_len, _ = hidden_states.shape
        query, key, value = (
            proj(hidden_states).view(batch_size, seq_len, -1, self.head_dim)
            for proj in (self.q_proj, self.k_proj, self.v_proj)
        )
        if hasattr(self, "q_norm"):
            query, key = self.q_norm(query), self.k_norm(key)
        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        if self.rotary_frequencies is not None:
            frequencies = torch.tensor(self.rotary_frequencies, device=hidden_states.device)
            angles = rotary_angles(position_ids, frequencies)[:, None]
            query, key = rotate_pairs(query, angles), rotate_pairs(key, angles)
            if self.rotary_scale != 1.0:  # yarn's attention factor, which scales cos and sin alike
                query, key = query * self.rotary_scale, key * self.rotary_scale
        # Whether there is a past is known without reading its length, which torch.compile may make symbolic.
        has_past = state is not None and state.is_initialized
        past_len = state.keys.shape[2] if has_past else 0
        if state is not None:
            key, value = state.update(key, value)
        if self.num_key_value_heads != self.num_heads:  # query head h reads key/value head h // group
            group = self.num_heads // self.num_key_value_heads
            key, value = key.repeat_interleave(group, dim=1), value.repeat_interleave(group, dim=1)

        mask = self._mask(attention_mask, has_past, past_len, seq_len, hidden_states.device)
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, is_causal=mask is None and not has_past
        )
        return self.out_proj(attended.transpose(1, 2).reshape(batch_size, seq_len, -1))

    @staticmethod
    def _mask(
        attention_mask: torch.Tensor | None, has_past: bool, past_len: int, seq_len: int, device: torch.device
    ) -> torch.Tensor | None:
        """`(batch, 1, seq_len, past_len + seq_len)` boolean mask, True where a query may attend: keys at or before
        it that are not pads. A pad query attends to itself only, so its row is never empty (its output is unused).
        None when plain causal attention needs no explicit mask (`attention_mask` None: no padding mask)."""
        padded = attention_mask is not None
        if not padded and (not has_past or seq_len == 1):
            return None
        query_positions = torch.arange(past_len, past_len + seq_len, device=device)[:, None]
        key_positions = torch.arange(past_len + seq_len, device=device)
        mask = (key_positions <= query_positions)[None, None]
        if padded:
            mask = (mask & attention_mask[:, None, None, :].bool()) | (key_positions == query_positions)
        return mask


class FiftyNetFNetMixer(nn.Module):
    """FNet token mixing (`mixer_type="fnet"`; Lee-Thorp et al., 2021): `Re(FFT_seq(FFT_hidden(x)))`, no parameters.

    Every output depends on every token, future ones included, so it serves encoders ([`FiftyNetModel`],
    [`FiftyNetForSequenceClassification`]) and is refused by [`FiftyNetForCausalLM`]. The transforms are orthonormal,
    so the 2D FFT preserves energy (Parseval). Pads are zeroed first, but the transform's length is the padded
    length, so a padded sequence is not mixed exactly as the same sequence alone.
    """

    def __init__(self, config: FiftyNetConfig):
        # No parameters; the config argument keeps the constructor uniform across mixers.
        super().__init__()

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        state: FiftyNetMixerState | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """`(batch, seq_len, hidden_size)` -> `(batch, seq_len, hidden_size)`."""
        if state is not None:
            raise ValueError("mixer_type='fnet' mixes the whole sequence at once and has no incremental state")
        with torch.autocast(device_type=hidden_states.device.type, enabled=False):
            inputs = at_least_float32(hidden_states)
            if padding_mask is not None:
                inputs = inputs * padding_mask.transpose(1, 2)
            mixed = torch.fft.fft2(inputs, dim=(-2, -1), norm="ortho").real
        return mixed.to(hidden_states.dtype)


class FiftyNetMixerGate(nn.Module):
    """Per-token output gate of a mixer (`mixer_gate`), computed from the mixer's input `x`:

    - `"glu"`: `y * sigmoid(W x)`, a gated linear unit on the mixer's output.
    - `"phase"`: reads `y` as `hidden_size / 2` complex numbers and multiplies them by `sigmoid(a) * exp(i * theta)`
      with `(a, theta) = W x`: a data-dependent magnitude and rotation (phase-aware mixing).

    Pointwise in time, so it keeps every mixer's causality and incremental decoding.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        self.kind = config.mixer_gate
        self.proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)

    def forward(self, mixer_input: torch.Tensor, mixer_output: torch.Tensor) -> torch.Tensor:
        """Both `(batch, seq_len, hidden_size)`; returns the gated output, same shape."""
        gate = self.proj(mixer_input)
        if self.kind == "glu":
            return mixer_output * torch.sigmoid(gate)
        magnitude, angle = gate.chunk(2, dim=-1)
        return rotate_pairs(mixer_output * torch.sigmoid(magnitude).repeat_interleave(2, dim=-1), angle)


def mixer_class(mixer_type: str) -> type[nn.Module]:
    """The class of a row of the mixer table (`configuration_fiftynet.MIXERS`), defined in this file."""
    return globals()[MIXERS[mixer_type].class_name]


class FiftyNetChunkHead(nn.Module):
    """Drafts the `chunk_head_size` tokens after the next one from each position (the "piston engine" chunk head,
    built as Medusa heads; Cai et al., 2024, arXiv 2401.10774).

    Draft `j` (1-based) of position `t` guesses token `t + 1 + j`: the final hidden state `h` goes through its own
    residual block `h + act(W_j h)` and then the model's LM head. The blocks start at zero, so every draft starts as
    the next-token prediction. Drafts are only proposals: [`FiftyNetForCausalLM.generate_with_chunk_head`] checks each
    one against the model before keeping it.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        # The drafts' blocks as one `(drafts, out, in)` weight: one batched product computes them all.
        self.weight = nn.Parameter(torch.empty(config.chunk_head_size, config.hidden_size, config.hidden_size))
        self.bias = nn.Parameter(torch.empty(config.chunk_head_size, config.hidden_size))
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
        """`(batch, seq_len, hidden_size)` final hidden states -> `(batch, seq_len, chunk_head_size, vocab_size)`
        draft logits."""
        updates = torch.einsum("bld,jed->blje", hidden_states, self.weight) + self.bias
        return lm_head(hidden_states[:, :, None] + self.act_fn(updates))


def chunk_head_targets(
    labels: torch.Tensor, chunk_head_size: int, shift_labels: torch.Tensor | None = None
) -> torch.Tensor:
    """`(batch, seq_len)` labels (or `shift_labels`, already shifted) -> `(batch, seq_len, chunk_head_size)` targets
    of the drafts: `[:, t, j - 1]` is the token draft j of position t guesses, `labels[:, t + 1 + j]`
    (`shift_labels[:, t + j]`), -100 past the row's end."""
    if shift_labels is None:
        shift_labels = F.pad(labels[:, 1:], (0, 1), value=-100)
    drafts = range(1, chunk_head_size + 1)
    return torch.stack([F.pad(shift_labels[:, draft:], (0, draft), value=-100) for draft in drafts], dim=-1)


@dataclass
class FiftyNetCausalLMOutputWithPast(CausalLMOutputWithPast):
    r"""
    [`CausalLMOutputWithPast`] with the chunk head's drafts, when the model has one and they were asked for.

    chunk_logits (`torch.FloatTensor` of shape `(batch, seq_len or logits_to_keep, chunk_head_size, vocab_size)`):
        Logits of the chunk head: `chunk_logits[:, t, j - 1]` predicts token `t + 1 + j`.
    chunk_loss (`torch.FloatTensor` of shape `()`):
        Cross-entropy of the drafts against the labels shifted by `1 + j` (with `labels`), averaged over all their
        targets (see `chunk_head_targets`), or summed and divided by `chunk_num_items_in_batch` when given.
    """

    chunk_logits: torch.FloatTensor | None = None
    chunk_loss: torch.FloatTensor | None = None


class FiftyNetBlock(GradientCheckpointingLayer):
    """Pre-norm residual block: `x + gate(mixer(norm(x)))`, then `x + mlp(norm(x))`; the mixer is
    `config.mixer_types[layer_idx]`."""

    def __init__(self, config: FiftyNetConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.mixer_norm = build_norm(config)
        self.mixer = mixer_class(config.mixer_types[layer_idx])(config)
        self.mixer_gate = FiftyNetMixerGate(config) if config.mixer_gate != "none" else None
        self.mlp_norm = build_norm(config)
        self.mlp = FiftyNetMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: `(batch, seq_len, hidden_size)`.
            padding_mask: `(batch, 1, seq_len)` float mask of the new tokens (1 token, 0 pad), or None without a mask.
            cache: the model's cache; this block reads and advances `cache.layers[layer_idx]`.
            attention_mask: `(batch, past_len + seq_len)` 2D padding mask, or None without a mask (used by attention).
            position_ids: `(batch, seq_len)`, or None (used by rotary attention).

        Returns:
            `(batch, seq_len, hidden_size)`.
        """
        state = cache.layers[self.layer_idx] if cache is not None else None
        normed = self.mixer_norm(hidden_states)
        mixed = self.mixer(
            normed, padding_mask, state, attention_mask=attention_mask, position_ids=position_ids
        )
        if self.mixer_gate is not None:
            mixed = self.mixer_gate(normed, mixed)
        if is_mixer_state(state):  # transformers' own layers count their tokens themselves
            state.advance(hidden_states.shape[1])
        hidden_states = hidden_states + mixed
        return hidden_states + self.mlp(self.mlp_norm(hidden_states))


class FiftyNetPreTrainedModel(PreTrainedModel):
    config: FiftyNetConfig
    config_class = FiftyNetConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["FiftyNetBlock"]
    _skip_keys_device_placement = ["cache", "past_key_values"]
    # The filters hold decay rates and phases that half precision would round away; FFTs run in float32 anyway.
    _keep_in_fp32_modules_strict = ["filter"]

    def __init__(self, config: FiftyNetConfig, *inputs, **kwargs):
        # The config may have changed since it was built (overrides, assignments): a model is only built from a valid
        # one, with the problem named.
        config.validate_architecture()
        super().__init__(config, *inputs, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, with four differences:

        - A save into the folder that a killed process left half moved in is finished first (see
          `saving.finish_interrupted_saves`), so the config and the weights loaded are one save's.

        - Weights are read from safetensors only: a folder holding only pickled weights (`pytorch_model.bin`, `.pt`)
          is an error naming the file, and `use_safetensors=False` is refused; an unreadable file is an `OSError`.
        - A checkpoint lacking weights of the FiftyNet backbone, or any weight of the class it was saved from, is an
          error instead of a warning followed by random weights. A head the checkpoint never had (a new task head)
          may still be missing, as usual.
        - Backbone weights the model has no place for (e.g. a checkpoint with more layers than the config), and
          weights whose shape differs from the config's (unless `ignore_mismatched_sizes=True`; a `RuntimeError`,
          as transformers raises), are an error instead of being dropped or reported in a table. Another head's weights (an LM head when loading a
          classifier) are not.
        """
        if kwargs.get("use_safetensors") is False:
            raise ValueError("FiftyNet reads weights from safetensors only; use_safetensors=False is not supported.")
        kwargs["use_safetensors"] = True
        folder = Path(pretrained_model_name_or_path or "", kwargs.get("subfolder") or "")
        config = kwargs.get("config")
        if isinstance(config, FiftyNetConfig) and any(folder.glob(f"{COMMIT_PREFIX}*")):
            # A config read from the folder (as AutoModel does) before a killed save's files are moved in is the old
            # save's: read it again once they are.
            unnamed = {"_name_or_path": ""}  # where it was read from is not what it describes
            before = FiftyNetConfig.from_json_file(folder / "config.json").to_dict() | unnamed
            if finish_before_loading(folder) and config.to_dict() | unnamed == before:
                kwargs["config"] = type(config).from_pretrained(folder)
        has_weights = any(WEIGHT_FILE.fullmatch(path.name) for path in folder.iterdir()) if folder.is_dir() else True
        if pretrained_model_name_or_path is not None and not has_weights:
            pickled = sorted(path.name for path in folder.iterdir() if path.suffix in PICKLED_WEIGHT_SUFFIXES)
            if pickled:
                raise OSError(
                    f"{folder} holds {pickled[0]} but no model.safetensors: FiftyNet reads weights as safetensors only "
                    "(pickled files can run code when loaded). Load it yourself if you trust it and save it with "
                    "save_pretrained."
                )
        return_loading_info = kwargs.pop("output_loading_info", False)
        # Weights of another shape are reported below by name, unless the caller tolerates them (a new head size).
        tolerate_mismatches = kwargs.pop("ignore_mismatched_sizes", False)
        try:
            model, loading_info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
        except SafetensorError as error:
            raise OSError(
                f"The weights of {pretrained_model_name_or_path} cannot be read (a truncated or corrupt safetensors "
                f"file?): {error}"
            ) from error
        # A list of (name, saved shape, model shape) or a set of names, depending on the transformers release.
        mismatched = sorted(
            key[0] if isinstance(key, tuple) else key
            for key in ([] if tolerate_mismatches else loading_info.get("mismatched_keys", []))
        )
        if mismatched:
            # A RuntimeError, as transformers raises for weights of another size.
            raise RuntimeError(
                f"{len(mismatched)} weight(s) of {pretrained_model_name_or_path} do not have the shape its config "
                f"describes, e.g. {', '.join(mismatched[:3])}. Does the config match the weights (e.g. vocab_size, "
                "hidden_size)?"
            )
        head_prefix = f"{cls.base_model_prefix}."
        # Saved from this very class, the checkpoint must hold every weight; otherwise only the backbone's, and a head
        # it never had (a new task head) starts at random, as usual.
        same_class = type(model).__name__ in (model.config.architectures or [])
        is_backbone_model = isinstance(model, FiftyNetModel)
        missing = sorted(
            key for key in loading_info["missing_keys"]
            if same_class or is_backbone_model or key.startswith(head_prefix)
        )
        if missing:
            raise ValueError(
                f"The checkpoint is incomplete: {len(missing)} weight(s) of the model are missing, e.g. "
                f"{', '.join(missing[:5])}. Is the weights file truncated or from another architecture?"
            )
        unexpected = sorted(
            key for key in loading_info["unexpected_keys"]
            if key.removeprefix(head_prefix).split(".")[0] in BACKBONE_MODULES
        )
        if unexpected:
            raise ValueError(
                f"The checkpoint has {len(unexpected)} backbone weight(s) this model has no place for, e.g. "
                f"{', '.join(unexpected[:5])}. Does the config match the weights (e.g. num_hidden_layers)?"
            )
        return (model, loading_info) if return_loading_info else model

    def save_pretrained(self, save_directory: str | os.PathLike, is_main_process: bool = True, **kwargs) -> None:
        """`PreTrainedModel.save_pretrained`, made safe for an existing folder, with a complete `auto_map`.

        The config is validated before anything is written. The folder is written beside `save_directory` and moved
        into place when complete (see `saving.staged_folder`): a failing or interrupted save leaves an existing
        folder as it was, never half-written; files of that folder the save does not rewrite (a tokenizer, a card)
        are kept. `config.json`'s `auto_map` names every Auto class FiftyNet provides, so the folder loads through
        `AutoModel`, `AutoModelForCausalLM` or `AutoModelForSequenceClassification` with `trust_remote_code=True`
        where this package is not installed. Processes other than the main one, and distributed checkpoints (every
        rank writes), save in place as usual.
        """
        self.config.validate_architecture()
        self._check_config_describes_model()
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **AUTO_MAP}
        if not is_main_process or kwargs.get("distributed_checkpoint"):
            return super().save_pretrained(save_directory, is_main_process=is_main_process, **kwargs)
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", Path(save_directory).absolute().name)
        with staged_folder(save_directory) as staged:
            super().save_pretrained(staged, is_main_process=True, **kwargs)

    def _check_config_describes_model(self) -> None:
        """Raises if the config was changed after the model was built in a way the weights do not follow (a saved
        folder would not load)."""
        backbone = self if isinstance(self, FiftyNetModel) else self.model
        built = [next(name for name, spec in MIXERS.items() if type(layer.mixer).__name__ == spec.class_name)
                 for layer in backbone.layers]
        described = {
            "mixer_types": (self.config.mixer_types, built),
            "vocab_size": (self.config.vocab_size, backbone.embed_tokens.num_embeddings),
            "hidden_size": (self.config.hidden_size, backbone.embed_tokens.embedding_dim),
        }
        for name, (configured, actual) in described.items():
            if configured != actual:
                raise ValueError(
                    f"config.{name}={configured} does not describe this model ({actual}); it was changed after the "
                    "model was built. Build a new model from the config, or restore the field."
                )

    def resize_token_embeddings(self, new_num_tokens: int | None = None, pad_to_multiple_of: int | None = None,
                                *args, **kwargs) -> nn.Embedding:
        """`PreTrainedModel.resize_token_embeddings`, refused when the new vocabulary would not hold the special
        tokens (the model could no longer emit its end of sequence, and its config could not be saved)."""
        if new_num_tokens is not None:
            size = new_num_tokens
            if pad_to_multiple_of is not None:
                size = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
            outside = [
                f"{name}={token_id}"
                # Only models that generate have a generation config.
                for source in (self.config, getattr(self, "generation_config", None))
                for name in BYTE_SPECIAL_TOKEN_IDS
                for token_id in _as_list(getattr(source, name, None))
                if token_id >= size
            ]
            if outside:
                raise ValueError(
                    f"resize_token_embeddings({new_num_tokens}) would leave {', '.join(dict.fromkeys(outside))} "
                    f"outside the vocabulary [0, {size}): set these ids in model.config and model.generation_config "
                    "to tokens the new vocabulary keeps (or to None) first."
                )
        return super().resize_token_embeddings(new_num_tokens, pad_to_multiple_of, *args, **kwargs)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.Conv1d):
            # Start as the identity (only the current token), so the gates see the projections unchanged.
            weight = torch.zeros_like(module.weight)
            weight[..., -1] = 1.0
            init.copy_(module.weight, weight)
            init.zeros_(module.bias)
        elif isinstance(module, (FiftyNetRMSNorm, nn.LayerNorm)):
            init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (FiftyNetModalFilter, FiftyNetFourierFilter)):
            module.reset_parameters()
        elif isinstance(module, FiftyNetFourierOperatorMixer):
            init.ones_(module.local_weight)
        elif isinstance(module, FiftyNetAdaptiveSpectralMixer):
            init.zeros_(module.modrelu_bias)
        elif isinstance(module, FiftyNetChunkHead):
            # Every draft starts as the next-token prediction.
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        # GPT-2's scaled init of the projections that write into the residual stream (two per block; FNet has none).
        if isinstance(module, (FiftyNetMLP, *map(mixer_class, MIXERS))):
            output = module.down_proj if isinstance(module, FiftyNetMLP) else getattr(module, "out_proj", None)
            if output is not None:
                init.normal_(output.weight, mean=0.0, std=std / math.sqrt(2 * self.config.num_hidden_layers))


class FiftyNetComplexEmbedding(nn.Embedding):
    """Token embeddings read as complex vectors (`embedding_type="complex"`): row `v` holds `hidden_size / 2` complex
    numbers, real and imaginary parts interleaved, i.e. the `(vocab, hidden_size / 2, 2)` real view of a complex
    matrix flattened to `(vocab, hidden_size)` so that the LM head can share it.

    What phase does and does not capture: a complex vector of `hidden_size / 2` entries is the same set of numbers as
    a real vector of `hidden_size` entries, so this embedding has exactly the capacity of a real one, and the model
    consumes it as real. The complex reading adds structure only where something acts on it as complex: a
    `"complex_rope"` rotation, a `"phase"` gate, or the helpers below. `semantic_similarity` is the magnitude of the
    complex cosine, blind to a common rotation of all entries of one vector; `phase_relationship` is that rotation
    (the angle of the Hermitian inner product). Phases mean nothing until training gives them meaning, and a small
    angle does not by itself say that two tokens are related.
    """

    def complex_weight(self) -> torch.Tensor:
        """`(vocab_size, hidden_size / 2)` complex view of the embedding matrix."""
        return torch.view_as_complex(at_least_float32(self.weight).unflatten(-1, (-1, 2)).contiguous())

    def _inner_products(self, token_ids_a: torch.Tensor, token_ids_b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        vectors = self.complex_weight()
        a, b = vectors[token_ids_a], vectors[token_ids_b]
        return (a.conj() * b).sum(-1), a.abs().pow(2).sum(-1).sqrt(), b.abs().pow(2).sum(-1).sqrt()

    def semantic_similarity(self, token_ids_a: torch.Tensor, token_ids_b: torch.Tensor) -> torch.Tensor:
        """`|<z_a, z_b>| / (|z_a| |z_b|)` in [0, 1] for broadcastable tensors of token ids."""
        inner, norm_a, norm_b = self._inner_products(token_ids_a, token_ids_b)
        return inner.abs() / (norm_a * norm_b).clamp_min(1e-12)

    def phase_relationship(self, token_ids_a: torch.Tensor, token_ids_b: torch.Tensor) -> torch.Tensor:
        """Angle in (-pi, pi] of `<z_a, z_b> = sum_k conj(z_a[k]) z_b[k]`: the common rotation that best maps
        `z_a` onto `z_b`."""
        return self._inner_products(token_ids_a, token_ids_b)[0].angle()


class FiftyNetModel(FiftyNetPreTrainedModel):
    """The bare FiftyNet stack: embeddings, `num_hidden_layers` [`FiftyNetBlock`]s and a final norm."""

    def __init__(self, config: FiftyNetConfig):
        super().__init__(config)
        embedding_class = FiftyNetComplexEmbedding if config.embedding_type == "complex" else nn.Embedding
        self.embed_tokens = embedding_class(config.vocab_size, config.hidden_size, config.pad_token_id)
        if config.position_encoding == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(FiftyNetBlock(config, layer_idx) for layer_idx in range(config.num_hidden_layers))
        self.norm = build_norm(config)
        self.gradient_checkpointing = False
        if config.compression is not None:
            build_compressed_layers(self, config.compression)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """
        Args:
            input_ids: `(batch, seq_len)` token ids; only the new tokens when `cache` holds the past.
            attention_mask: `(batch, past_len + seq_len)` (or `(batch, seq_len)`), 1 for tokens, 0 for padding.
            position_ids: `(batch, seq_len)`, used by every `position_encoding` but `"none"`; derived from
                `attention_mask` when omitted, so left padding does not shift positions.
            cache: the `DynamicCache` an earlier call returned, a new `DynamicCache(config=model.config)` (or an
                empty `DynamicCache()`), or None. `past_key_values` is the same argument under its name before
                transformers 5.24.
            inputs_embeds: `(batch, seq_len, hidden_size)`, instead of `input_ids`.
            use_cache: return the updated cache (defaults to `config.use_cache` outside training, and to
                False for a model with an `"fnet"` layer, which cannot decode incrementally).
            output_hidden_states: also return the input of every block and the final output.

        Returns:
            [`BaseModelOutputWithPast`] with `last_hidden_state` of shape `(batch, seq_len, hidden_size)`, and the
            cache under the field name of the running transformers release (`cache`, or `past_key_values` before
            5.24).

        Raises:
            ValueError: for inputs the model cannot take, named: ids outside the vocabulary, an empty sequence, a
                mask or positions that do not match the tokens and the cache (e.g. a decoding step whose past is
                missing), a cache of another kind. Checks that read tensor values run on calls without a past in
                eager mode, so a decoding step never waits for the device and traced graphs do not branch on data.
        """
        check_extra_kwargs(f"{type(self).__name__}.forward", kwargs)
        cache = one_cache(cache, past_key_values)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if not self.config.is_causal:
            if use_cache or cache is not None:
                raise ValueError(
                    "This model has 'fnet' layers, which mix the whole sequence at once: it has no incremental cache "
                    "(use_cache=False)."
                )
            use_cache = False
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if use_cache and self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            # The backward pass replays each block, which would advance the cache a second time.
            logger.warning_once("use_cache=True is incompatible with gradient checkpointing: the cache is not used.")
            use_cache, cache = False, None
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        if input_ids is not None:
            self._check_input_ids_shape(input_ids)
        elif inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"inputs_embeds must have shape (batch, seq_len, {self.config.hidden_size}), got "
                f"{tuple(inputs_embeds.shape)}"
            )
        batch_size, seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        if seq_len == 0:
            raise ValueError("The input sequence is empty: FiftyNet needs at least one token.")
        if self.config.num_hidden_layers > len(self.layers):
            raise ValueError(
                f"config.num_hidden_layers={self.config.num_hidden_layers} exceeds the {len(self.layers)} blocks this "
                "model was built with (it may only be lowered, as for early exit)"
            )
        if cache is not None:
            check_cache(cache, self.config, batch_size)
        past_len = cache.get_seq_length() if cache is not None else 0
        self._check_shapes(attention_mask, position_ids, batch_size, past_len, seq_len)
        if self.config.position_encoding != "none" and position_ids is None:
            device = (input_ids if input_ids is not None else inputs_embeds).device
            position_ids = self._positions_from_mask(attention_mask, batch_size, past_len, seq_len, device)
        if not is_tracing():
            if past_len == 0:
                self._check_values(input_ids, attention_mask, position_ids, seq_len)
                # A mask without pads changes nothing; dropping it lets attention layers take the plain causal path.
                if attention_mask is not None and bool(attention_mask.all()):
                    attention_mask = None
            if self.config.position_encoding == "learned" and past_len + seq_len > self.config.max_position_embeddings:
                self._check_learned_positions(position_ids)
        if input_ids is not None:
            inputs_embeds = self.embed_tokens(input_ids)
        hidden_states = self._add_positions(inputs_embeds, position_ids)

        padding_mask = None if attention_mask is None else attention_mask[:, None, -seq_len:].to(hidden_states.dtype)
        all_hidden_states = () if output_hidden_states else None
        # `config.num_hidden_layers` may be lowered for early exit (transformers' `assistant_early_exit`).
        for layer in self.layers[: self.config.num_hidden_layers]:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states = layer(
                hidden_states,
                padding_mask=padding_mask,
                cache=cache,
                attention_mask=attention_mask,
                position_ids=position_ids,
            )
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            **{CACHE_NAME: cache if use_cache else None},
        )

    def _add_positions(self, inputs_embeds: torch.Tensor, position_ids: torch.LongTensor | None) -> torch.Tensor:
        """Applies the position encodings that act on the embeddings (`"rope"` acts inside attention instead)."""
        encoding = self.config.position_encoding
        if encoding in ("none", "rope"):
            return inputs_embeds
        if encoding == "learned":
            return inputs_embeds + self.embed_positions(position_ids)
        pairs = self.config.hidden_size // 2
        angles = rotary_angles(position_ids, rotary_frequencies(pairs, self.config.rotary_base, position_ids.device))
        if encoding == "sinusoidal":
            table = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)
            return inputs_embeds + table.to(inputs_embeds.dtype)
        return rotate_pairs(inputs_embeds, angles)

    @staticmethod
    def _check_input_ids_shape(input_ids: torch.Tensor) -> None:
        if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be an integer tensor of token ids, got dtype {input_ids.dtype}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}")
        if input_ids.numel() == 0:
            raise ValueError("The input sequence is empty: FiftyNet needs at least one token.")

    @staticmethod
    def _check_shapes(
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        batch_size: int,
        past_len: int,
        seq_len: int,
    ) -> None:
        """Accepts a 2D padding mask covering the past and the new tokens, and `(batch, seq_len)` positions; a mask
        longer than that means the cache lacks the past it covers."""
        if attention_mask is not None:
            if attention_mask.dim() == 2 and attention_mask.shape[0] == batch_size and past_len == 0 and (
                attention_mask.shape[1] > seq_len
            ):
                raise ValueError(
                    f"attention_mask covers {attention_mask.shape[1]} tokens but the call has {seq_len} new token(s) "
                    "and no cache: the past it covers is missing. Pass the cache returned by the previous call "
                    f"(as `{CACHE_NAME}`)."
                )
            if attention_mask.dim() != 2 or attention_mask.shape[0] != batch_size or (
                attention_mask.shape[1] != past_len + seq_len
            ):
                raise ValueError(
                    f"attention_mask must be a 2D padding mask of shape (batch, past + new tokens) = "
                    f"{(batch_size, past_len + seq_len)}, got {tuple(attention_mask.shape)}"
                )
        if position_ids is not None and (position_ids.dim() != 2 or position_ids.shape[-1] != seq_len or (
            position_ids.shape[0] not in (1, batch_size)
        )):
            raise ValueError(
                f"position_ids must have shape (batch, seq_len) = {(batch_size, seq_len)}, got "
                f"{tuple(position_ids.shape)}"
            )

    def _check_values(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        seq_len: int,
    ) -> None:
        """Checks that read tensor values, for a call without a past (they would make the host wait for the device
        at every decoding step)."""
        if input_ids is not None:
            low, high = int(input_ids.min()), int(input_ids.max())
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(
                    f"input_ids must lie in [0, {self.config.vocab_size}) (config.vocab_size), got values from {low} "
                    f"to {high}"
                )
        if attention_mask is not None and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        if position_ids is not None:
            # Positions count the real tokens before each one, so they stay below the number of tokens seen.
            if int(position_ids.min()) < 0:
                raise ValueError(f"position_ids must not be negative, got {int(position_ids.min())}")
            if int(position_ids.max()) >= seq_len:
                raise ValueError(
                    f"position_ids reach {int(position_ids.max())} but the call has {seq_len} token(s) and no cache: "
                    f"the past they count is missing. Pass the cache returned by the previous call (as "
                    f"`{CACHE_NAME}`)."
                )
            if self.config.position_encoding == "learned":
                self._check_learned_positions(position_ids)

    def _check_learned_positions(self, position_ids: torch.Tensor) -> None:
        if int(position_ids.max()) >= self.config.max_position_embeddings:
            raise ValueError(
                f"Position {int(position_ids.max())} is beyond max_position_embeddings="
                f"{self.config.max_position_embeddings} of this model's learned position embeddings."
            )

    @staticmethod
    def _positions_from_mask(
        attention_mask: torch.Tensor | None, batch_size: int, past_len: int, seq_len: int, device: torch.device
    ) -> torch.LongTensor:
        """Position of each new token among the real tokens of its row (pads do not count)."""
        if attention_mask is None:
            return torch.arange(past_len, past_len + seq_len, device=device).expand(batch_size, seq_len)
        positions = attention_mask.long().cumsum(-1) - 1
        return positions.clamp(min=0)[:, -seq_len:]


class FiftyNetForCausalLM(FiftyNetPreTrainedModel, FiftyNetChunkHeadGenerationMixin, GenerationMixin):
    """FiftyNet with a language-modelling head (tied to the input embeddings by default)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: FiftyNetConfig):
        super().__init__(config)  # validates the config first
        if not config.is_causal:
            raise ValueError(
                f"FiftyNetForCausalLM needs causal mixers, but mixer_types={config.mixer_types} includes 'fnet', which "
                "mixes in future tokens. Use FiftyNetModel or FiftyNetForSequenceClassification for FNet."
            )
        self.model = FiftyNetModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.chunk_head = FiftyNetChunkHead(config) if config.chunk_head_size > 0 else None
        if config.tie_word_embeddings:
            # A tied LM head is not in the checkpoints the Trainer writes: not a missing key when it resumes.
            self._keys_to_ignore_on_save = ["lm_head.weight"]
        self.post_init()

    # What FiftyNet still takes from transformers' private API, tested under every admitted release (5.17.0, 5.18.0,
    # 5.19.0, 5.20.2, 5.21.1, 5.22.2, 5.23.0, 5.24.0, 5.25.0 by .ci/run):
    # - `_prepare_cache_for_generation` (extended below, transformers' own still builds the cache): no public hook
    #   tells a model how `generate()` will use a cache it is given, or lets it refuse a cache implementation or an
    #   early exit it cannot run;
    # - `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES` / `MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES` (end of this file),
    #   which the Trainer (label smoothing) and the pipelines read by class name, and which `AutoModel*.register`
    #   does not fill.
    # The cache itself is built by transformers from `config.layer_types`, through the `_layer_type` hook of its cache
    # layers (see cache_fiftynet.py).
    def _prepare_cache_for_generation(
        self, generation_config, model_kwargs: dict, generation_mode, *args, **kwargs
    ) -> None:
        if generation_config.cache_implementation not in (None, "dynamic"):
            # Static and quantized caches have no layer for a spectral state; offloading moves keys and values in
            # `Cache.update`, which FiftyNet's attention does not call (it updates its own layer).
            raise ValueError(
                f"cache_implementation={generation_config.cache_implementation!r} is not supported: FiftyNet's layers "
                "keep their state in a DynamicCache (cache_implementation='dynamic', the default)"
            )
        early_exit = generation_config.assistant_early_exit
        if early_exit is not None and not 0 < early_exit <= len(self.model.layers):
            # transformers lowers config.num_hidden_layers to it, and leaves it so when drafting fails.
            raise ValueError(
                f"assistant_early_exit={early_exit} must lie between 1 and {len(self.model.layers)}: the number "
                f"of this model's {len(self.model.layers)} blocks that draft"
            )
        # A cache the user passed under the other name (`cache=` before transformers 5.24, which would otherwise
        # forward it beside a new one) goes under the name this release passes to `forward`.
        other_name = "past_key_values" if CACHE_NAME == "cache" else "cache"
        if model_kwargs.get(other_name) is not None:
            model_kwargs[CACHE_NAME] = one_cache(model_kwargs.get(CACHE_NAME), model_kwargs.pop(other_name))
        cache = model_kwargs.get(CACHE_NAME)
        if isinstance(cache, Cache):
            fill_empty_cache(cache, self.config)  # its layers must exist when transformers starts their recording
        rolls_back = generation_config.is_assistant or generation_mode == GenerationMode.ASSISTED_GENERATION
        if cache is not None and not rolls_back:
            # Assisted generation hands its cache back still recording how to roll back; nothing will be rolled back
            # now, and recording every step would hold memory that grows with the output.
            for layer in cache.layers:
                if is_mixer_state(layer):
                    layer.record_past = False
        super()._prepare_cache_for_generation(generation_config, model_kwargs, generation_mode, *args, **kwargs)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        output_chunk_logits: bool = False,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> FiftyNetCausalLMOutputWithPast:
        """
        Args:
            labels: `(batch, seq_len)` next-token targets, shifted inside the model (`labels = input_ids` works);
                -100 is ignored. With a chunk head, they also give its `chunk_loss` (`loss` stays the LM loss).
            shift_labels (keyword): `(batch, seq_len)` targets already shifted (`shift_labels[:, t]` is the token after
                position t), as transformers' context- and sequence-parallel training passes them; they replace the
                shifted `labels`, which must be given too (they decide that a loss is computed).
            logits_to_keep: compute logits for the last `logits_to_keep` positions only (0: all), or for the given
                indices.
            output_chunk_logits: also return the chunk head's draft logits for the kept positions.
            num_items_in_batch (keyword): the number of target tokens in the whole accumulated batch, from the
                Trainer, so that gradient accumulation averages the loss over all of them.
            chunk_num_items_in_batch (keyword): the same for `chunk_loss`: the number of the drafts' targets in the
                whole accumulated batch, from `ChunkHeadTrainer`.
            Other arguments: see [`FiftyNetModel.forward`].

        Returns:
            [`FiftyNetCausalLMOutputWithPast`] with `logits` of shape `(batch, seq_len or logits_to_keep, vocab_size)`.
        """
        # `shift_labels` is a keyword, not a parameter: the Trainer takes every parameter named like a label for one
        # that each batch must carry.
        check_extra_kwargs(f"{type(self).__name__}.forward", kwargs, also=("shift_labels", "chunk_num_items_in_batch"))
        shift_labels = kwargs.get("shift_labels")
        if output_chunk_logits and self.chunk_head is None:
            raise ValueError("output_chunk_logits=True, but this model has no chunk head (config.chunk_head_size=0)")
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=one_cache(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state
        kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, kept, :])

        loss = chunk_logits = chunk_loss = None
        if shift_labels is not None and labels is None:
            raise ValueError("shift_labels replaces the shifted labels: pass labels too (e.g. labels=input_ids)")
        if labels is not None:
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.vocab_size,
                num_items_in_batch=kwargs.get("num_items_in_batch"), shift_labels=shift_labels,
            )
        if self.chunk_head is not None and (output_chunk_logits or labels is not None):
            chunk_logits = self.chunk_head(hidden_states[:, kept, :], self.lm_head)
        if self.chunk_head is not None and labels is not None:
            # The LM loss with the targets moved j further left for draft j. One loss over all drafts' targets, not a
            # mean of per-draft means: a sum over items divided by their count, as the LM loss is, so that gradient
            # accumulation can divide by one count, the whole batch's.
            chunk_loss = self.loss_function(
                logits=chunk_logits, labels=None, vocab_size=self.config.vocab_size,
                num_items_in_batch=kwargs.get("chunk_num_items_in_batch"),
                shift_labels=chunk_head_targets(labels, self.config.chunk_head_size, shift_labels),
            )

        return FiftyNetCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            chunk_logits=chunk_logits if output_chunk_logits else None,
            chunk_loss=chunk_loss,
            **{CACHE_NAME: getattr(outputs, CACHE_NAME)},
        )


class FiftyNetForSequenceClassification(FiftyNetPreTrainedModel):
    """FiftyNet with a classification head on the hidden state of each sequence's last real token: the last token
    whose `attention_mask` is 1 (so left and right padding both work), or without a mask the last one that is not
    `config.pad_token_id`, as transformers' decoder classifiers pool. Accepts every mixer, FNet included."""

    # The loss is a mean over the batch, not a sum to be divided by the Trainer's token count: with gradient
    # accumulation the Trainer must average the micro-batches itself.
    accepts_loss_kwargs = False

    def __init__(self, config: FiftyNetConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = FiftyNetModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """
        Args:
            labels: `(batch,)` class indices (a float `(batch, num_labels)` for regression or multi-label, following
                `config.problem_type`).
            Other arguments: see [`FiftyNetModel.forward`].

        Returns:
            [`SequenceClassifierOutputWithPast`] with `logits` of shape `(batch, num_labels)`.
        """
        check_extra_kwargs(f"{type(self).__name__}.forward", kwargs)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state
        batch_size, seq_len = hidden_states.shape[:2]
        positions = torch.arange(seq_len, device=hidden_states.device)
        if attention_mask is not None:
            last_token = (positions * attention_mask.to(hidden_states.device).bool()).argmax(-1)
        elif input_ids is not None and self.config.pad_token_id is not None:
            last_token = (positions * (input_ids != self.config.pad_token_id).to(hidden_states.device)).argmax(-1)
        else:
            last_token = torch.full((batch_size,), seq_len - 1, device=hidden_states.device)
        logits = self.score(hidden_states[torch.arange(batch_size, device=hidden_states.device), last_token])

        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        return SequenceClassifierOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


# `save_pretrained` then writes `auto_map` and copies these files, so a saved folder loads with trust_remote_code.
FiftyNetConfig.register_for_auto_class()
FiftyNetModel.register_for_auto_class("AutoModel")
FiftyNetForCausalLM.register_for_auto_class("AutoModelForCausalLM")
FiftyNetForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
# Code that asks whether a model is a causal LM or a classifier by its class name (the Trainer, to shift the labels
# of label smoothing; the pipelines) looks it up in these tables.
MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.setdefault(FiftyNetConfig.model_type, FiftyNetForCausalLM.__name__)
MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.setdefault(
    FiftyNetConfig.model_type, FiftyNetForSequenceClassification.__name__
)
# transformers writes only the saved class's own entry; a saved folder names them all, whichever class saved it.
AUTO_MAP = {
    auto_class: f"{cls.__module__.rpartition('.')[2]}.{cls.__name__}"
    for auto_class, cls in (
        ("AutoConfig", FiftyNetConfig),
        ("AutoModel", FiftyNetModel),
        ("AutoModelForCausalLM", FiftyNetForCausalLM),
        ("AutoModelForSequenceClassification", FiftyNetForSequenceClassification),
    )
}

__all__ = [
    "FiftyNetComplexEmbedding",
    "FiftyNetForCausalLM",
    "FiftyNetForSequenceClassification",
    "FiftyNetModel",
    "FiftyNetPreTrainedModel",
]
