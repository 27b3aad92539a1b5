"""Llama-architecture teachers -> FiftyNet, weight for weight: Llama 2 and 3.x (SmolLM2, TinyLlama), Qwen2/Qwen2.5,
Qwen3 and Mistral, whose blocks differ only in options FiftyNet's config has (grouped-query attention, head size,
query/key/value biases, query/key RMSNorm, rope scaling).

A FiftyNet whose every mixer is `"attention"` computes what the teacher computes. Two layouts differ: FiftyNet's
rotary embedding rotates consecutive channel pairs `(2k, 2k + 1)` of a head, Llama's pairs `k` with `k + head_dim / 2`
("rotate half"), so the query and key projections' rows (and the query/key norms' weights) are permuted within each
head; the dot products `q . k`, hence the attention, are unchanged.
"""

import torch
from torch import nn
from transformers import PreTrainedModel

from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM
from modeling_fiftynet.configuration_fiftynet import ROPE_TYPES

from .families import AttentionProjections, TeacherFamily, special_ids_in_vocabulary


def check_teacher(teacher: PreTrainedModel) -> None:
    """Refuses, by name, what a Llama-architecture teacher has and FiftyNet's attention does not compute."""
    config = teacher.config
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    # Qwen2/Qwen3 keep a sliding_window that only use_sliding_window turns on; Mistral's is on when set.
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    rope = config.rope_parameters or {}
    unsupported = [
        (window is not None, f"sliding-window attention (sliding_window={window})"),
        (layer_types != {"full_attention"}, f"layer_types {sorted(layer_types)}"),
        (rope.get("rope_type", "default") not in ROPE_TYPES,
         f"rope_type={rope.get('rope_type')!r} (FiftyNet computes {ROPE_TYPES})"),
        (rope.get("partial_rotary_factor", 1.0) != 1.0, "partial_rotary_factor"),
        (getattr(config, "pretraining_tp", 1) not in (None, 1), "pretraining_tp > 1"),
    ]
    for present, name in unsupported:
        if present:
            raise ValueError(f"the teacher ({config.model_type}) has {name}, which the conversion does not support")


def student_config(teacher: PreTrainedModel, mixer_types: list[str], **overrides) -> FiftyNetConfig:
    """The FiftyNet config of a Llama-architecture teacher with the given mixer per layer (`"attention"` keeps the
    teacher's). Biases and query/key norms are read from the teacher's first attention, as the families hard-code
    some of them (Qwen2: biases on q/k/v but not on o)."""
    check_teacher(teacher)
    config, attention = teacher.config, teacher.model.layers[0].self_attn
    rope_parameters = dict(config.rope_parameters)
    return FiftyNetConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        mixer_types=mixer_types,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=attention.head_dim,
        attention_bias=attention.q_proj.bias is not None,
        attention_out_bias=attention.o_proj.bias is not None,
        attention_qk_norm=hasattr(attention, "q_norm"),
        mixer_bias=True,  # spectral_init starts a spectral_conv mixer's gates at its in_proj bias
        mlp_type="gated",
        mlp_bias=teacher.model.layers[0].mlp.up_proj.bias is not None,
        hidden_act=config.hidden_act,
        norm_type="rms_norm",
        rms_norm_eps=config.rms_norm_eps,
        # Rotary positions belong to the attention layers; a student without any has none (a spectral mixer's
        # causal filters see relative positions by construction).
        **(dict(position_encoding="rope", rotary_base=rope_parameters["rope_theta"], rope_parameters=rope_parameters)
           if "attention" in mixer_types else dict(position_encoding="none")),
        tie_word_embeddings=config.tie_word_embeddings,
        **special_ids_in_vocabulary(config),
        **overrides,
    )


def rotate_half_to_pairs(head_dim: int) -> torch.Tensor:
    """`(head_dim,)` source channel of each FiftyNet channel: `2k` is Llama's `k`, `2k + 1` is `k + head_dim / 2`."""
    half = torch.arange(head_dim // 2)
    return torch.stack([half, half + head_dim // 2], dim=-1).flatten()


def _rows_per_head(tensor: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """`tensor` (`(heads * head_dim, ...)`) with each head's rows taken in `order`."""
    head_dim = order.numel()
    return tensor.unflatten(0, (-1, head_dim))[:, order].flatten(0, 1)


@torch.no_grad()
def transplant_llama(teacher: PreTrainedModel, mixer_types: list[str], **config_overrides) -> FiftyNetForCausalLM:
    """A FiftyNet carrying every weight of a Llama-architecture `teacher`: embeddings, norms, MLPs, head, and the
    attention of the layers whose mixer is `"attention"`. The other mixers keep their fresh initialization."""
    student = FiftyNetForCausalLM(student_config(teacher, mixer_types, **config_overrides))
    source, target = teacher.model, student.model
    target.embed_tokens.weight.copy_(source.embed_tokens.weight)
    target.norm.weight.copy_(source.norm.weight)
    if not student.config.tie_word_embeddings:
        student.lm_head.weight.copy_(teacher.lm_head.weight)
    order = rotate_half_to_pairs(student.config.attention_head_dim)
    for block, layer in zip(source.layers, target.layers):
        layer.mixer_norm.weight.copy_(block.input_layernorm.weight)
        layer.mlp_norm.weight.copy_(block.post_attention_layernorm.weight)
        layer.mlp.load_state_dict(block.mlp.state_dict())  # gate/up/down_proj, the same names
        if mixer_types[layer.layer_idx] != "attention":
            continue
        attention, mixer = block.self_attn, layer.mixer
        for name in ("q_proj", "k_proj"):
            mixer.get_submodule(name).load_state_dict(
                {key: _rows_per_head(value, order) for key, value in attention.get_submodule(name).state_dict().items()}
            )
        mixer.v_proj.load_state_dict(attention.v_proj.state_dict())
        mixer.out_proj.load_state_dict(attention.o_proj.state_dict())
        if hasattr(attention, "q_norm"):
            mixer.q_norm.weight.copy_(attention.q_norm.weight[order])
            mixer.k_norm.weight.copy_(attention.k_norm.weight[order])
    return student


def attention(teacher: PreTrainedModel, layer: int) -> nn.Module:
    return teacher.model.layers[layer].self_attn


def projections(teacher: PreTrainedModel, layer: int) -> AttentionProjections:
    """The value projection repeated for the query heads each key/value head serves: channel `c` of query head `h`
    reads key/value head `h // group`, as transformers' `repeat_kv` has it."""
    module = attention(teacher, layer)
    group = teacher.config.num_attention_heads // teacher.config.num_key_value_heads

    def per_query_head(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
        dim %= tensor.dim()
        heads = tensor.unflatten(dim, (-1, module.head_dim))
        return heads.repeat_interleave(group, dim=dim).flatten(dim, dim + 1)

    bias = module.v_proj.bias
    return AttentionProjections(
        value_weight=per_query_head(module.v_proj.weight), value_bias=None if bias is None else per_query_head(bias),
        output_weight=module.o_proj.weight, output_bias=module.o_proj.bias,
        value_module=module.v_proj, values_of=lambda values: per_query_head(values, dim=-1),
        output_module=module.o_proj,
    )


LLAMA_FAMILY = TeacherFamily(transplant=transplant_llama, attention=attention, projections=projections)

__all__ = ["LLAMA_FAMILY", "check_teacher", "student_config", "transplant_llama"]
