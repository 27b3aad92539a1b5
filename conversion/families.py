"""What every teacher family's transplant reads alike from a teacher's config."""

import logging

from transformers import PretrainedConfig


SPECIAL_ID_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id")

logger = logging.getLogger(__name__)


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
