"""What a conversion needs of each teacher family (`TeacherFamily`, the rows of `transplant.TEACHER_FAMILIES`), and
what every family's transplant reads alike from a teacher's config."""

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from modeling_fiftynet import FiftyNetForCausalLM


SPECIAL_ID_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttentionProjections:
    """A teacher attention layer's value and output projections in `nn.Linear`'s layout, with one value channel per
    query channel (grouped-query attention's key/value heads repeated for the query heads they serve), and where to
    catch its values and its heads' outputs on calibration text.

    Attributes:
        value_weight / value_bias: `(heads * head_dim, hidden_size)` / `(heads * head_dim,)` or None.
        output_weight / output_bias: `(hidden_size, heads * head_dim)` / `(hidden_size,)` or None.
        value_module: the module whose output holds the values; `values_of` maps that output to
            `(batch, seq_len, heads * head_dim)` values, channel `c` in query head `c // head_dim`.
        output_module: the module whose input is the heads' outputs, `(batch, seq_len, heads * head_dim)`.
    """

    value_weight: torch.Tensor
    value_bias: torch.Tensor | None
    output_weight: torch.Tensor
    output_bias: torch.Tensor | None
    value_module: nn.Module
    values_of: Callable[[torch.Tensor], torch.Tensor]
    output_module: nn.Module


@dataclass(frozen=True)
class TeacherFamily:
    """One family of teachers a conversion takes.

    Attributes:
        transplant: `(teacher, mixer_types, **config_overrides)` -> the FiftyNet carrying the teacher's weights.
        attention: `(teacher, layer)` -> the layer's attention module, called with the block's normed hidden states
            (positionally or as `hidden_states=`) and returning its output first.
        projections: `(teacher, layer)` -> the layer's `AttentionProjections`.
    """

    transplant: Callable[..., FiftyNetForCausalLM]
    attention: Callable[[PreTrainedModel, int], nn.Module]
    projections: Callable[[PreTrainedModel, int], AttentionProjections]


def special_ids_in_vocabulary(teacher: PretrainedConfig) -> dict[str, int | list[int] | None]:
    """The teacher's pad/bos/eos ids, without those outside its vocabulary.

    GPT2Config defaults bos and eos to 50256 whatever the vocabulary, and transformers accepts such a config (the ids
    can never be generated or fed); FiftyNetConfig refuses ids it has no embedding for, so they are dropped, with a
    warning naming them.
    """
    special_ids = {}
    for name in SPECIAL_ID_FIELDS:
        value = getattr(teacher, name)
        ids = value if isinstance(value, list) else [value]
        kept = [token_id for token_id in ids if token_id is None or 0 <= token_id < teacher.vocab_size]
        if len(kept) < len(ids):
            logger.warning(f"The teacher's {name}={value} lies outside its vocabulary of {teacher.vocab_size} tokens; "
                           "the student does not carry it.")
        special_ids[name] = (kept or None) if isinstance(value, list) else (kept[0] if kept else None)
    return special_ids
