"""LoRA fine-tuning of a saved FiftyNet with `peft`: `fiftynet lora --model DIR ...` (= `fiftynet train --lora`).

Target modules, by name inside each block:
- mixers: `in_proj` and `out_proj` (every mixer type; the attention mixer's `out_proj` too; add `q_proj k_proj
  v_proj` for its other projections);
- gated MLP: `gate_proj`, `up_proj`, `down_proj`.
The long-convolution filters (the `filter` module of each mixer: `FiftyNetModalFilter`, or the Fourier filter of
`nfo` / `fftnet`) hold few parameters, so they are trained in full through `modules_to_save` rather than adapted.
"""

from dataclasses import dataclass, field

from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel


TARGET_MODULES = ["in_proj", "out_proj", "gate_proj", "up_proj", "down_proj"]
MODULES_TO_SAVE = ["filter"]


@dataclass
class LoraArguments:
    _argument_group_name = "fiftynet train --lora: LoRA"

    lora: bool = field(default=False, metadata={"help": "fine-tune --model with LoRA adapters instead of in full"})
    lora_r: int = field(default=8, metadata={"help": "rank of the LoRA updates"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (updates are scaled by alpha/r)"})
    lora_dropout: float = field(default=0.0, metadata={"help": "dropout probability of the LoRA layers' input"})
    lora_target_modules: list[str] = field(
        default_factory=lambda: list(TARGET_MODULES), metadata={"help": "module names that get LoRA adapters"}
    )
    lora_modules_to_save: list[str] = field(
        default_factory=lambda: list(MODULES_TO_SAVE),
        metadata={"help": "module names trained in full and saved with the adapter ('none' for none)"},
    )


def add_lora(model: PreTrainedModel, args: LoraArguments) -> PeftModel:
    """Wraps `model` with LoRA adapters; only they and `modules_to_save` train."""
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=args.lora_target_modules,
        modules_to_save=[name for name in args.lora_modules_to_save if name != "none"] or None,
    )
    return get_peft_model(model, config)
