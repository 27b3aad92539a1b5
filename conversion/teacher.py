"""Train a teacher offline: transformers' GPT2LMHeadModel, or LlamaForCausalLM (`--arch llama`: RMSNorm, SwiGLU,
rotary positions, grouped-query attention 2:1), with a byte-level BPE trained by `tokenizers`, on the bundled corpus,
through the Trainer. `fiftynet convert` then takes the saved folder as `--teacher`, exactly as it takes `gpt2` or a
Llama from the Hub.

    python -m fiftynet.conversion.teacher --output_dir gpt2-kjv-cpu  # 2 CPU cores, about an hour
    python -m fiftynet.conversion.teacher --arch llama --output_dir llama-kjv-cpu
    python -m fiftynet.conversion.teacher --size small --output_dir gpt2-kjv --max_steps 4000 --bf16  # a GPU

The folder gets the model, the tokenizer and `teacher_report.json` (training tokens, validation metrics, and in
`data_arguments` the text options it was trained with), from which a conversion's budget is read as a fraction of the
teacher's own training tokens, and `python -m benchmarks.conversion` reads which text to distil and validate on.
"""

import json
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    LlamaConfig,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
    set_seed,
)

from fiftynet.training import cli, train
from fiftynet.training.data import DataArguments, load_texts, prepare_data
from fiftynet.training.errors import UsageError, claimed, refuse_non_empty
from fiftynet.training.evaluation import IGNORE_KEYS, trainer_evaluation
from fiftynet.training.tokenizer import train_bpe
from modeling_fiftynet.saving import staged_folder


# Shapes, as width, layers and heads. "cpu" (4.3M parameters as a GPT-2 with the default 4096-token BPE) is the
# benchmark's teacher: the default 2400 steps train it on 2 CPU cores in about an hour, long enough that its attention
# matters (removing it triples the perplexity; see docs/conversion.md). "small" is GPT-2 small's (124M parameters with
# its 50k vocabulary).
SIZES = {
    "tiny": dict(width=128, layers=4, heads=4),
    "cpu": dict(width=256, layers=4, heads=4),
    "small": dict(width=768, layers=12, heads=12),
}


def gpt2_config(width: int, layers: int, heads: int, vocab_size: int, block_size: int, eos_token_id: int) -> GPT2Config:
    return GPT2Config(vocab_size=vocab_size, n_positions=block_size, n_embd=width, n_layer=layers, n_head=heads,
                      bos_token_id=eos_token_id, eos_token_id=eos_token_id)


def llama_config(width: int, layers: int, heads: int, vocab_size: int, block_size: int, eos_token_id: int
                 ) -> LlamaConfig:
    """Llama's block at the shape: a SwiGLU MLP 8/3 as wide (GPT-2's 4x MLP's parameters), 2 query heads per
    key/value head, a tied head as in SmolLM2 and Llama 3.2."""
    return LlamaConfig(vocab_size=vocab_size, max_position_embeddings=block_size, hidden_size=width,
                       intermediate_size=-(-8 * width // 3 // 64) * 64, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads // 2, tie_word_embeddings=True,
                       bos_token_id=eos_token_id, eos_token_id=eos_token_id)


# The teachers' architectures: the config of each at a shape.
ARCHITECTURES = {"gpt2": gpt2_config, "llama": llama_config}


@dataclass
class TeacherArguments(DataArguments):
    arch: str = field(default="gpt2", metadata={"help": f"architecture: {', '.join(ARCHITECTURES)}"})
    size: str = field(default="cpu", metadata={"help": f"model shape: {', '.join(SIZES)}"})
    vocab_size: int = field(default=4096, metadata={"help": "BPE vocabulary size"})
    block_size: int = field(default=256, metadata={"help": "tokens per sequence (and n_positions)"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "replace the teacher in a non-empty --output_dir"}
    )


TRAINING_DEFAULTS = {**train.TRAINING_DEFAULTS, "output_dir": "gpt2-teacher", "max_steps": 2400, "eval_steps": 400,
                     "save_strategy": "no", "report_to": "none"}


def build_teacher(size: str, vocab_size: int, block_size: int, eos_token_id: int, arch: str = "gpt2"
                  ) -> PreTrainedModel:
    check_choices(size, arch)
    shape = dict(**SIZES[size], vocab_size=vocab_size, block_size=block_size, eos_token_id=eos_token_id)
    config = ARCHITECTURES[arch](**shape)
    return AutoModelForCausalLM.from_config(config)


def check_choices(size: str, arch: str) -> None:
    for option, value, choices in (("--size", size, SIZES), ("--arch", arch, ARCHITECTURES)):
        if value not in choices:
            raise UsageError(f"{option} {value!r} is not one of {', '.join(choices)}")


def data_arguments(args: DataArguments) -> dict:
    """The text options as given (`fiftynet convert` takes the same ones), files as absolute paths so that they are
    found again from any working directory."""
    recorded = {option.name: getattr(args, option.name) for option in fields(DataArguments)}
    for name in ("data", "validation_data"):
        if recorded[name]:
            recorded[name] = [str(Path(path).resolve()) for path in recorded[name]]
    return recorded


PROG = "python -m fiftynet.conversion.teacher"


def main(argv: list[str] | None = None) -> dict:
    parser = train.trainer_argument_parser((TeacherArguments, train.TrainerArguments), PROG, __doc__,
                                           TRAINING_DEFAULTS)
    try:
        args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # TrainingArguments' own checks, and unknown arguments
        raise UsageError(" ".join(str(error).split())) from None
    with claimed(training_args.output_dir, "--output_dir", training_args.process_index == 0):
        return train_teacher(args, training_args)


def train_teacher(args: TeacherArguments, training_args: TrainingArguments) -> dict:
    """Trains, evaluates and saves the teacher with its report; returns the report."""
    check_choices(args.size, args.arch)  # before minutes of tokenizer training
    if args.streaming:
        raise UsageError("--streaming: the teacher's tokenizer is trained on the whole training text; drop "
                         "--streaming")
    if not args.overwrite_output_dir:
        refuse_non_empty(training_args.output_dir, "--output_dir")
    set_seed(training_args.seed)
    texts = load_texts(args)  # the bundled corpus and its validation split unless --data says otherwise
    tokenizer = train_bpe(texts.train, args.vocab_size)
    data = prepare_data(texts, tokenizer, args.block_size, args.validation_fraction)
    model = build_teacher(args.size, len(tokenizer), args.block_size, tokenizer.eos_token_id, args.arch)
    trainer = Trainer(model=model, args=training_args, train_dataset=data.train, eval_dataset=data.validation,
                      **trainer_evaluation(data.tokens_per_byte))
    # Full blocks: the plain mean is exact (see fiftynet.training.evaluation).
    trainer.model_accepts_loss_kwargs = False
    started = time.perf_counter()
    trainer.train()
    wall_seconds = time.perf_counter() - started
    metrics = trainer.evaluate(ignore_keys=IGNORE_KEYS)
    # One point per step: when the last step is an evaluation step, the final evaluation logs that step again.
    curve = {entry["step"]: entry["eval_perplexity"]
             for entry in trainer.state.log_history if "eval_perplexity" in entry}
    report = {
        "arch": args.arch,
        "size": args.size,
        "parameters": model.num_parameters(),
        "training_tokens": trainer.state.global_step * train.sequences_per_step(training_args) * args.block_size,
        "data": data.name,
        "data_arguments": data_arguments(args),
        "training_wall_seconds": wall_seconds,
        "validation_curve": [{"step": step, "perplexity": perplexity} for step, perplexity in curve.items()],
        "validation": metrics,
    }
    if trainer.is_world_process_zero():
        with staged_folder(training_args.output_dir) as folder:  # moved into place whole, beside the checkpoints
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            (folder / "teacher_report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    cli.run(PROG, main, sys.argv[1:])
