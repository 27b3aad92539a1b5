"""GPT-2 with compressed Linear (`Conv1D`) layers, loadable as remote code.

`fiftynet compress` on a `GPT2LMHeadModel` folder saves a [`CompressedGPT2LMHeadModel`]: transformers' own GPT-2,
whose layers listed in `config.compression` are built as compressed layers (see `compression.py`) so that
`from_pretrained` fills them from safetensors.
"""

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config, GPT2LMHeadModel

from .compression import build_compressed_layers


@strict
class CompressedGPT2Config(GPT2Config):
    r"""
    [`GPT2Config`] plus `compression` (`dict`): the layers of the transformer (paths inside `model.transformer`,
    e.g. `"h.0.mlp.c_fc"`) stored compressed, and how, as written by `compress_layers`.
    """

    model_type = "fiftynet_compressed_gpt2"

    compression: dict | None = None


class CompressedGPT2LMHeadModel(GPT2LMHeadModel):
    """`GPT2LMHeadModel` whose transformer layers named in `config.compression` are compressed; the tied LM head
    and the embeddings stay dense."""

    config_class = CompressedGPT2Config

    def __init__(self, config: CompressedGPT2Config):
        super().__init__(config)
        if config.compression is not None:
            build_compressed_layers(self.transformer, config.compression)


# `save_pretrained` then writes `auto_map` and copies this file and `compression.py`, so the folder loads as remote code.
CompressedGPT2Config.register_for_auto_class()
CompressedGPT2LMHeadModel.register_for_auto_class("AutoModelForCausalLM")

__all__ = ["CompressedGPT2Config", "CompressedGPT2LMHeadModel"]
