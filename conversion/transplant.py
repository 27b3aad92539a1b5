"""Teacher -> FiftyNet, weight for weight: the exact transplant of every family in `TEACHER_FAMILIES` (GPT-2 here,
the Llama-architecture families in `llama.py`), and the spectral initialization of the layers whose attention is
replaced.

FiftyNet expresses GPT-2's block with config options (LayerNorm with bias, learned absolute positions, a plain MLP
with GPT-2's GELU, biased projections, a tied head), so a FiftyNet whose every mixer is `"attention"` computes what
the GPT-2 computes. A replaced layer keeps everything but its attention; its new mixer starts from the teacher's
value and output projections and causal filters fitted to what the attention computes on calibration text (or to
its average weight at each distance).
"""

from functools import partial

import torch
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedModel

from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM
from modeling_fiftynet.configuration_fiftynet import MIXERS
from modeling_fiftynet.modeling_fiftynet import (
    FiftyNetAdaptiveSpectralMixer,
    FiftyNetFourierFilter,
    FiftyNetFourierFilterMixer,
    FiftyNetModalFilter,
    FiftyNetSpectralConvMixer,
)
from modeling_fiftynet.spectral_ops import frequency_response_to_kernel

from .families import AttentionProjections, TeacherFamily, special_ids_in_vocabulary
from .llama import LLAMA_FAMILY


# The mixers a conversion can put in place of attention (the mixer table's `convertible` column).
SPECTRAL_MIXERS = tuple(name for name, spec in MIXERS.items() if spec.convertible)


def check_teacher(config: GPT2Config) -> None:
    """Refuses GPT-2 variants whose attention FiftyNet's attention mixer does not compute."""
    unsupported = [
        (config.add_cross_attention, "add_cross_attention=True"),
        (not config.scale_attn_weights, "scale_attn_weights=False"),
        (config.scale_attn_by_inverse_layer_idx, "scale_attn_by_inverse_layer_idx=True"),
    ]
    for present, name in unsupported:
        if present:
            raise ValueError(f"the teacher's config has {name}, which the conversion does not support")


def student_config(teacher: GPT2Config, mixer_types: list[str], **overrides) -> FiftyNetConfig:
    """The FiftyNet config of a GPT-2 with the given mixer per layer (`"attention"` keeps the teacher's)."""
    check_teacher(teacher)
    return FiftyNetConfig(
        vocab_size=teacher.vocab_size,
        hidden_size=teacher.n_embd,
        num_hidden_layers=teacher.n_layer,
        intermediate_size=teacher.n_inner or 4 * teacher.n_embd,
        max_position_embeddings=teacher.n_positions,
        mixer_types=mixer_types,
        num_attention_heads=teacher.n_head,
        attention_bias=True,
        mixer_bias=True,
        mlp_type="plain",
        mlp_bias=True,
        hidden_act=teacher.activation_function,
        norm_type="layer_norm",
        layer_norm_epsilon=teacher.layer_norm_epsilon,
        position_encoding="learned",
        tie_word_embeddings=teacher.tie_word_embeddings,
        **special_ids_in_vocabulary(teacher),
        **overrides,
    )


def _copy_linear(target: nn.Linear, conv1d_weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    """GPT-2's Conv1D computes `x @ W + b` with `W` of shape `(in, out)`: the transpose of `nn.Linear`'s weight."""
    target.weight.copy_(conv1d_weight.t())
    if bias is not None:
        target.bias.copy_(bias)


@torch.no_grad()
def transplant_gpt2(teacher: GPT2LMHeadModel, mixer_types: list[str], **config_overrides) -> FiftyNetForCausalLM:
    """A FiftyNet carrying every weight of `teacher`: embeddings, norms, MLPs, head, and the attention of the layers
    whose mixer is `"attention"`. The other mixers keep their fresh initialization (see `spectral_init`)."""
    student = FiftyNetForCausalLM(student_config(teacher.config, mixer_types, **config_overrides))
    source, target = teacher.transformer, student.model
    target.embed_tokens.weight.copy_(source.wte.weight)
    target.embed_positions.weight.copy_(source.wpe.weight)
    target.norm.load_state_dict(source.ln_f.state_dict())
    if not student.config.tie_word_embeddings:
        student.lm_head.weight.copy_(teacher.lm_head.weight)
    width = teacher.config.n_embd
    for block, layer in zip(source.h, target.layers):
        layer.mixer_norm.load_state_dict(block.ln_1.state_dict())
        layer.mlp_norm.load_state_dict(block.ln_2.state_dict())
        _copy_linear(layer.mlp.up_proj, block.mlp.c_fc.weight, block.mlp.c_fc.bias)
        _copy_linear(layer.mlp.down_proj, block.mlp.c_proj.weight, block.mlp.c_proj.bias)
        if mixer_types[layer.layer_idx] == "attention":
            projections = (layer.mixer.q_proj, layer.mixer.k_proj, layer.mixer.v_proj)
            for index, projection in enumerate(projections):
                columns = slice(index * width, (index + 1) * width)
                _copy_linear(projection, block.attn.c_attn.weight[:, columns], block.attn.c_attn.bias[columns])
            _copy_linear(layer.mixer.out_proj, block.attn.c_proj.weight, block.attn.c_proj.bias)
    return student


def gpt2_attention(teacher: GPT2LMHeadModel, layer: int) -> nn.Module:
    return teacher.transformer.h[layer].attn


def gpt2_projections(teacher: GPT2LMHeadModel, layer: int) -> AttentionProjections:
    """GPT-2's fused `c_attn` computes queries, keys and values; its Conv1D weights are `(in, out)`."""
    module, width = gpt2_attention(teacher, layer), teacher.config.n_embd
    return AttentionProjections(
        value_weight=module.c_attn.weight[:, 2 * width:].t(), value_bias=module.c_attn.bias[2 * width:],
        output_weight=module.c_proj.weight.t(), output_bias=module.c_proj.bias,
        value_module=module.c_attn, values_of=lambda fused: fused[..., 2 * width:], output_module=module.c_proj,
    )


# The teachers a conversion takes, by transformers `model_type`.
TEACHER_FAMILIES = {
    "gpt2": TeacherFamily(transplant=transplant_gpt2, attention=gpt2_attention, projections=gpt2_projections),
    "llama": LLAMA_FAMILY,  # Llama 2, 3.x, SmolLM, SmolLM2, TinyLlama
    "mistral": LLAMA_FAMILY,
    "qwen2": LLAMA_FAMILY,  # Qwen2, Qwen2.5
    "qwen3": LLAMA_FAMILY,
}


def teacher_family(teacher: PreTrainedModel) -> TeacherFamily:
    """The row of `TEACHER_FAMILIES` of `teacher`; a `ValueError` naming the families for another model."""
    model_type = teacher.config.model_type
    if model_type not in TEACHER_FAMILIES:
        raise ValueError(f"the teacher is a {model_type!r} model; the conversion takes {', '.join(TEACHER_FAMILIES)}")
    return TEACHER_FAMILIES[model_type]


def transplant(teacher: PreTrainedModel, mixer_types: list[str], **config_overrides) -> FiftyNetForCausalLM:
    """The FiftyNet with `mixer_types` that carries every weight of `teacher` (a causal LM of one of
    `TEACHER_FAMILIES`): with every mixer `"attention"` it computes what the teacher computes. A teacher of another
    family, or with an option FiftyNet does not compute, is a `ValueError` naming it."""
    family = teacher_family(teacher)
    if len(mixer_types) != teacher.config.num_hidden_layers:
        raise ValueError(f"{len(mixer_types)} mixer types for a teacher of {teacher.config.num_hidden_layers} layers")
    return family.transplant(teacher, mixer_types, **config_overrides)


@torch.no_grad()
def attention_by_distance(teacher: PreTrainedModel, input_ids: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """`(len(layers), heads, seq_len)`: each head's attention weight at each distance `d` (query `t`, key `t - d`),
    averaged over the calibration batch and over the queries that have a key at that distance."""
    previous = teacher.config._attn_implementation
    teacher.set_attn_implementation("eager")  # the fused kernels do not return attention weights
    try:
        attentions = teacher(input_ids, output_attentions=True).attentions
    finally:
        teacher.set_attn_implementation(previous)
    seq_len = input_ids.shape[1]
    profiles = []
    for layer in layers:
        weights = attentions[layer].float().mean(0)  # (heads, query, key)
        profiles.append(torch.stack(
            [weights.diagonal(offset=-distance, dim1=-2, dim2=-1).mean(-1) for distance in range(seq_len)], dim=-1
        ))
    return torch.stack(profiles)


def _modal_basis(filter: FiftyNetModalFilter, length: int) -> torch.Tensor:
    """`(channels, length, 2 * modes)`: the filter is `basis @ [Re C, Im C]`, since `Re(C z) = Re C Re z - Im C Im z`."""
    powers = filter.powers(length).transpose(1, 2)
    return torch.cat([powers.real, -powers.imag], dim=-1)


def _fourier_basis(filter: FiftyNetFourierFilter) -> torch.Tensor:
    """`(kernel_size, 2 * modes)`: the filter is `basis @ c` with `c` the coefficients' `(modes, 2)` real view
    flattened (the inverse FFT is linear)."""
    modes = filter.coefficients.shape[2]
    unit = torch.eye(2 * modes, device=filter.coefficients.device).view(2 * modes, modes, 2)
    kernels = frequency_response_to_kernel(torch.view_as_complex(unit), filter.kernel_size)
    return kernels.view(2 * modes, -1).t()


@torch.no_grad()
def set_real_poles(filter: FiftyNetModalFilter, longest_memory: int) -> None:
    """Non-oscillating modes whose memories (`1 / decay` tokens) are spread log-uniformly from a third of a token to
    `longest_memory` tokens, in every channel: sums of such decays fit the smooth, mostly monotone profile of
    attention by distance far better than the default modes spread over all frequencies."""
    modes = filter.log_decay.shape[1]
    log_decay = torch.linspace(torch.log(torch.tensor(3.0)), -torch.log(torch.tensor(float(longest_memory))), modes)
    filter.log_decay.copy_(log_decay.expand_as(filter.log_decay))
    filter.frequency.zero_()


def _filter_basis(filter: nn.Module, length: int) -> torch.Tensor:
    """`(channels or 1, lags, parameters)`: the filter's kernel over lags `0 .. lags - 1` is `basis @ p` for its linear
    parameters `p` (a modal filter's residues at its current poles; a Fourier filter's coefficients, shared basis,
    lags limited to its kernel size)."""
    if isinstance(filter, FiftyNetModalFilter):
        return _modal_basis(filter, length)
    return _fourier_basis(filter)[: min(length, filter.kernel_size)][None]


def _set_linear_parameters(filter: nn.Module, solution: torch.Tensor, bank_index: int) -> None:
    """Writes `(channels, parameters)` into the parameters `_filter_basis` describes."""
    if isinstance(filter, FiftyNetModalFilter):
        filter.residues.copy_(torch.stack(solution.chunk(2, dim=-1), dim=-1))
    else:
        filter.coefficients[bank_index].copy_(solution.view(solution.shape[0], -1, 2))


@torch.no_grad()
def fit_filter(filter: nn.Module, target: torch.Tensor, bank_index: int = 0) -> float:
    """Sets the filter's linear parameters (a modal filter's residues at its current poles, or a Fourier filter's
    coefficients) to the least-squares fit of `target`, a `(channels, length)` kernel over lags `0 .. length - 1`.
    Returns the relative error of the fit."""
    basis = _filter_basis(filter, target.shape[-1]).double()
    target = target[:, : basis.shape[1]].double()
    solution = (torch.linalg.pinv(basis) @ target[..., None])[..., 0]
    _set_linear_parameters(filter, solution, bank_index)
    fitted = (basis @ solution[..., None])[..., 0]
    return float((fitted - target).norm() / target.norm().clamp_min(1e-12))


@torch.no_grad()
def fit_filter_to_outputs(filter: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor, bank_index: int = 0,
                          ridge: float = 1e-6, channels_per_chunk: int = 32) -> float:
    """Sets the filter's linear parameters so that filtering `inputs` gives `outputs` in the least-squares sense, per
    channel: `inputs` and `outputs` are `(batch, channels, seq_len)`, e.g. an attention head's values and what the
    head computed from them on calibration text. Unlike `fit_filter` on the average attention by distance, this fits
    what the head does to the text it sees (a head that attends to the previous token only when it starts a word
    gets the filter that best reproduces that on average over positions, weighted by the values' size).

    Solved through the normal equations in float64, with a `ridge` relative to the mean diagonal; the columns are
    the inputs convolved (FFT, padded to 2 * seq_len) with each basis kernel. Returns the relative error of the fit.
    """
    seq_len = inputs.shape[-1]
    basis = _filter_basis(filter, seq_len).double()
    basis_spectrum = torch.fft.rfft(basis.transpose(1, 2), n=2 * seq_len)  # (channels or 1, parameters, freq)
    solutions, residual_energy = [], 0.0
    for start in range(0, inputs.shape[1], channels_per_chunk):
        channels = slice(start, start + channels_per_chunk)
        spectrum = torch.fft.rfft(inputs[:, channels].double(), n=2 * seq_len)[:, :, None]
        kernels = basis_spectrum if basis_spectrum.shape[0] == 1 else basis_spectrum[channels]
        design = torch.fft.irfft(spectrum * kernels, n=2 * seq_len)[..., :seq_len]  # (batch, channels, params, len)
        target = outputs[:, channels].double()
        gram = torch.einsum("bcpt,bcqt->cpq", design, design)
        rhs = torch.einsum("bcpt,bct->cp", design, target)
        scale = gram.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-30)[:, None, None]
        identity = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        # pinv, not solve: a Fourier basis has null columns (the imaginary parts at frequency 0 and Nyquist).
        solution = (torch.linalg.pinv(gram + ridge * scale * identity, hermitian=True) @ rhs[..., None])[..., 0]
        residual_energy += float((torch.einsum("bcpt,cp->bct", design, solution) - target).pow(2).sum())
        solutions.append(solution)
    _set_linear_parameters(filter, torch.cat(solutions), bank_index)
    return (residual_energy / float(outputs.double().pow(2).sum().clamp_min(1e-30))) ** 0.5


@torch.no_grad()
def attention_values_and_outputs(teacher: PreTrainedModel, input_ids: torch.Tensor,
                                 layers: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each of `layers`, the attention's values and its heads' outputs (before the output projection), both
    `(batch, heads * head_dim, seq_len)` with channel `c` in query head `c // head_dim`, from one pass over
    `input_ids`."""
    family, caught = teacher_family(teacher), {}

    def catch_values(layer, values_of, module, args, output):
        caught[layer, "values"] = values_of(output)

    def catch_outputs(layer, module, args):
        caught[layer, "outputs"] = args[0]

    hooks = []
    for layer in layers:
        projections = family.projections(teacher, layer)
        hooks += [projections.value_module.register_forward_hook(partial(catch_values, layer, projections.values_of)),
                  projections.output_module.register_forward_pre_hook(partial(catch_outputs, layer))]
    try:
        teacher(input_ids)
    finally:
        for hook in hooks:
            hook.remove()
    return [(caught[layer, "values"].transpose(1, 2).float(), caught[layer, "outputs"].transpose(1, 2).float())
            for layer in layers]


def _copy_bias(target: nn.Linear, rows: slice, source: torch.Tensor | None) -> None:
    """`target`'s bias over `rows` from `source`, zero where the teacher has none."""
    if target.bias is None:
        if source is not None:
            raise ValueError("the student's mixer has no bias for the teacher's: build it with mixer_bias=True")
        return
    if source is None:
        target.bias[rows].zero_()
    else:
        target.bias[rows].copy_(source)


FILTER_FITS = ("outputs", "profile")


def check_replaceable(teacher: PreTrainedModel, layer: int, hidden_size: int) -> None:
    """A `ValueError` naming the layer if a spectral mixer cannot start from its attention: the heads hold another
    number of channels than the residual stream (Qwen3-0.6B: 16 heads of 128 for 1,024), which a spectral mixer's
    values have."""
    channels = teacher_family(teacher).projections(teacher, layer).value_weight.shape[0]
    if channels != hidden_size:
        raise ValueError(f"layer {layer}: the teacher's {teacher.config.num_attention_heads} attention heads hold "
                         f"{channels} channels, not hidden_size={hidden_size}, which a spectral mixer's values have; "
                         "keep its attention")


@torch.no_grad()
def spectral_init(student: FiftyNetForCausalLM, teacher: PreTrainedModel, calibration_ids: torch.Tensor,
                  layers: list[int], fit: str = "outputs") -> list[float]:
    """Initializes the spectral mixer of each layer in `layers` from the teacher's attention there: its value and
    output projections, and per-channel causal filters. The `spectral_conv` and `fftnet` mixers then start as
    `out_proj(h * v)`, the linear time-invariant part of the attention (`nfo` as `out_proj(act(h * v))`).

    `fit="outputs"` fits each channel's filter `h` so that `h * v` reproduces the head's output on the calibration
    text (`fit_filter_to_outputs`); `fit="profile"` fits it to the head's average attention weight by distance
    (`attention_by_distance`). Returns each layer's relative fit error.
    """
    if fit not in FILTER_FITS:
        raise ValueError(f"fit={fit!r} is not one of {FILTER_FITS}")
    family, width, heads = teacher_family(teacher), student.config.hidden_size, teacher.config.num_attention_heads
    if fit == "profile":
        targets = attention_by_distance(teacher, calibration_ids, layers)
    else:
        targets = attention_values_and_outputs(teacher, calibration_ids, layers)
    errors = []
    for layer, target in zip(layers, targets):
        check_replaceable(teacher, layer, width)
        projections, mixer = family.projections(teacher, layer), student.model.layers[layer].mixer
        everything = slice(None)
        if isinstance(mixer, FiftyNetSpectralConvMixer):
            # Query and key gates start at a constant 1 (zero weights, unit bias): out_proj(1 * h * (1 * v)).
            if mixer.in_proj.bias is None:
                raise ValueError("spectral_init starts a spectral_conv mixer's gates at its bias: build the student "
                                 "with mixer_bias=True")
            mixer.in_proj.weight[: 2 * width].zero_()
            mixer.in_proj.bias[: 2 * width].fill_(1.0)
            mixer.in_proj.weight[2 * width:].copy_(projections.value_weight)
            _copy_bias(mixer.in_proj, slice(2 * width, None), projections.value_bias)
        elif isinstance(mixer, FiftyNetFourierFilterMixer):
            mixer.in_proj.weight.copy_(projections.value_weight)
            _copy_bias(mixer.in_proj, everything, projections.value_bias)
            if isinstance(mixer, FiftyNetAdaptiveSpectralMixer):
                mixer.filter.coefficients[1:].zero_()  # no token-dependent part yet; modReLU with bias 0 is identity
            else:
                mixer.local_weight.zero_()
        else:
            raise ValueError(f"layer {layer} has a {type(mixer).__name__}, not one of the mixers {SPECTRAL_MIXERS}")
        mixer.out_proj.weight.copy_(projections.output_weight)
        _copy_bias(mixer.out_proj, everything, projections.output_bias)
        if isinstance(mixer.filter, FiftyNetModalFilter):
            set_real_poles(mixer.filter, calibration_ids.shape[-1])
        if fit == "profile":
            channel_profiles = target.repeat_interleave(width // heads, dim=0)  # channel c is in head c // head_dim
            errors.append(fit_filter(mixer.filter, channel_profiles))
        else:
            errors.append(fit_filter_to_outputs(mixer.filter, *target))
    return errors
