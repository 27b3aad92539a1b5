"""`fiftynet train`: train or fine-tune FiftyNet with `transformers.Trainer`.

Every TrainingArguments flag works as in any transformers script (`--bf16`, `--gradient_accumulation_steps`,
`--lr_scheduler_type`, `--save_steps`, `--eval_steps`, activation checkpointing, ...); the defaults below suit
training from scratch. Several GPUs or nodes: `accelerate launch -m fiftynet.training.train ...` (see docs/training.md).

OUTPUT_DIR gets checkpoints (`checkpoint-N`, for `--resume`), TensorBoard logs (`runs/`), `metrics.json`,
`loss_curve.png` and `model/`, the Hub-ready folder (safetensors, config, tokenizer, modeling code, model card);
with `--lora`, also `adapter/` (the PEFT adapter; `model/` then holds the merged model).
"""

import argparse
import json
import math
import re
import shutil
import sys
import zipfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from datasets import IterableDataset
from matplotlib.figure import Figure  # the object API draws without pyplot's global state or a display
from peft import PeftModel
from transformers import (
    EarlyStoppingCallback,
    HfArgumentParser,
    PreTrainedModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError, safe_open
from transformers.trainer_utils import get_last_checkpoint

from fiftynet.hub_cards.card import CardRecord, Measurement, hub_model_id, run_model_name, source_name
from fiftynet.hub_cards.help_format import HelpFormatter
from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM
from modeling_fiftynet.saving import staged_folder

from .data import (
    DataArguments,
    LanguageModelingData,
    Texts,
    check_streamed_steps,
    check_vocabulary,
    load_texts,
    prepare_data,
)
from .errors import UsageError, claimed, refuse_non_empty
from .evaluation import IGNORE_KEYS, load_model, trainer_evaluation
from .lora import LoraArguments, add_lora
from .presets import PRESETS, build_config, device_memory
from .tokenizer import load_tokenizer


@dataclass
class TrainScriptArguments(DataArguments):
    _argument_group_name = "fiftynet train: data, tokenizer, model, run"

    block_size: int = field(default=256, metadata={"help": "tokens per training sequence"})
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "'byte', a tokenizer folder (see `fiftynet tokenizer train`) or Hub id (default: 'byte', "
                          "or the --model's own)"},
    )
    preset: str | None = field(default=None, metadata={"help": f"model size: {', '.join(PRESETS)} (default: tiny)"})
    config_file: str | None = field(default=None, metadata={"help": "JSON or YAML file of FiftyNetConfig fields"})
    config_overrides: list[str] = field(
        default_factory=list,
        metadata={"help": "FiftyNetConfig fields, e.g. hidden_size=256 mixer_type=nfo", "metavar": "FIELD=VALUE",
                  "aliases": ["--set", "--config-override", "--config_override"]},
    )
    model: str | None = field(
        default=None, metadata={"help": "fine-tune this saved FiftyNet folder instead of training a new model"}
    )
    resume: str | None = field(
        default=None, metadata={"help": "a checkpoint-N folder, or a folder holding them (its latest is used)"}
    )
    resume_weights_only: bool = field(
        default=False,
        metadata={"help": "with --resume: start a new run from the checkpoint's weights, with a new optimizer and "
                          "schedule (for a checkpoint without optimizer.pt or scheduler.pt)"},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "train in a non-empty --output_dir: its earlier run's checkpoints and logs are deleted "
                          "first, and its model/, metrics.json and loss_curve.png replaced at the end"},
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "stop after this many evaluations without a better --metric_for_best_model"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block_size < 1:
            raise ValueError(f"--block_size must be a positive number of tokens, got {self.block_size}")
        if self.resume_weights_only and not self.resume:
            raise ValueError("--resume_weights_only restarts from a checkpoint: pass it with --resume")


class TrainerArguments(TrainingArguments):
    """`TrainingArguments`, listed after fiftynet's own options in `--help`."""

    _argument_group_name = ("transformers.Trainer: every TrainingArguments option works; --help lists the usual ones, "
                            "--help-all every one")

    def __post_init__(self) -> None:
        # Values the Trainer would only trip over later, with a traceback.
        for name in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if not (math.isfinite(self.learning_rate) and self.learning_rate >= 0):  # NaN too
            raise ValueError(f"--learning_rate must be a finite number of at least 0, got {self.learning_rate}")
        # The Trainer reads any max_steps <= 0 as "train --num_train_epochs epochs", and 0 as one step.
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"--max_steps must be a positive number of steps, or -1 to train --num_train_epochs "
                             f"epochs, got {self.max_steps}")
        for name in ("save_steps", "eval_steps", "logging_steps"):  # 0 would save, evaluate or log every step
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be a positive number of steps (below 1: a fraction of the run), got "
                                 f"{getattr(self, name)}")
        if self.max_steps == -1 and not (math.isfinite(self.num_train_epochs) and self.num_train_epochs > 0):
            raise ValueError(f"--num_train_epochs must be a positive number, got {self.num_train_epochs}")
        super().__post_init__()


# The TrainingArguments options every command's `--help` lists, besides those its description and help texts name. The
# 150 or so others work as well; `--help-all` lists them too.
USUAL_TRAINING_OPTIONS = frozenset({
    "output_dir", "num_train_epochs", "max_steps", "per_device_train_batch_size", "gradient_accumulation_steps",
    "learning_rate", "bf16",
})


class HelpAllAction(argparse.Action):
    """`--help-all`: the help with every TrainingArguments option, those `--help` leaves out included."""

    def __init__(self, option_strings: list[str], dest: str, hidden: dict[argparse.Action, str]) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="this help with every TrainingArguments option, and exit")
        self.hidden = hidden  # the help of each option `--help` leaves out

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: list[str],
                 option_string: str | None = None) -> None:
        for action, help_text in self.hidden.items():
            action.help = help_text
        parser.print_help()
        parser.exit()


def trainer_argument_parser(dataclass_types: tuple[type, ...], prog: str, description: str,
                            defaults: dict[str, object]) -> HfArgumentParser:
    """The parser of a command whose arguments are `dataclass_types`, `TrainerArguments` among them, with the command's
    own TrainingArguments `defaults`. Its `--help` lists the command's options, USUAL_TRAINING_OPTIONS and the
    TrainingArguments options its help names (all of them run over 500 lines), `--help-all` every option; its usage
    names the required options only."""
    parser = HfArgumentParser(dataclass_types, prog=prog, description=description, formatter_class=HelpFormatter)
    parser.set_defaults(**defaults)
    trainer_options = {option.name for option in fields(TrainingArguments)}
    own_help = [description, *(action.help or "" for action in parser._actions if action.dest not in trainer_options)]
    shown = USUAL_TRAINING_OPTIONS | set(re.findall(r"--(\w+)", " ".join(own_help)))
    hidden = {}
    for action in parser._actions:
        if action.dest in defaults and action.help:
            # transformers' help may name its own default, which the command's replaces (eval_steps)
            action.help = re.sub(r"\s*Defaults to [^.]*\.", "", action.help)
        if action.option_strings[0].startswith("--no_"):  # transformers repeats the option's own help there
            action.help = f"the same as --{action.dest} false"
        if action.dest in trainer_options and action.dest not in shown:
            hidden[action], action.help = action.help, argparse.SUPPRESS
    parser.add_argument("--help-all", "--help_all", action=HelpAllAction, hidden=hidden)
    required = [f"{action.option_strings[0]} {action.metavar or action.dest.upper()}" for action in parser._actions
                if action.required]
    parser.usage = " ".join([prog, *required, "[OPTIONS]"])
    return parser


# Defaults for training from scratch; any of them can be set on the command line.
TRAINING_DEFAULTS = dict(
    output_dir="fiftynet-run",
    per_device_train_batch_size=16,
    per_device_eval_batch_size=16,
    learning_rate=1e-3,
    weight_decay=0.1,
    warmup_steps=0.05,
    lr_scheduler_type="cosine",
    logging_steps=10,
    eval_strategy="steps",
    eval_steps=100,
    save_total_limit=3,
    report_to="tensorboard",
    dataloader_pin_memory=torch.cuda.is_available(),
    ddp_find_unused_parameters=False,  # every parameter is used in every step; the search costs a graph traversal
)


def parse_arguments(argv: list[str] | None, prog: str = "fiftynet train", description: str = __doc__
                    ) -> tuple[TrainScriptArguments, LoraArguments, TrainingArguments]:
    parser = trainer_argument_parser((TrainScriptArguments, LoraArguments, TrainerArguments), prog, description,
                                     TRAINING_DEFAULTS)
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # TrainingArguments' own checks, and unknown arguments
        raise UsageError(" ".join(str(error).split())) from None


def find_checkpoint(path: str, weights_only: bool) -> str:
    """`path` if it is a checkpoint, else the newest complete `checkpoint-N` inside it (see
    `newest_complete_checkpoint`)."""
    folder = Path(path)
    if (folder / "trainer_state.json").is_file():
        return str(folder)
    latest, passed_over = newest_complete_checkpoint(folder, weights_only) if folder.is_dir() else (None, [])
    if latest is None and passed_over:
        newest, problem = passed_over[0]
        raise UsageError(f"--resume {path}: none of its checkpoints can be continued from ({newest}: {problem})")
    if latest is None:
        raise UsageError(f"--resume {path}: no checkpoint there (expected a checkpoint-N folder, or a folder holding "
                         "them such as a previous --output_dir)")
    return latest


def newest_complete_checkpoint(folder: Path, weights_only: bool = False) -> tuple[str | None, list[tuple[Path, str]]]:
    """The newest `checkpoint-N` in `folder` a run can continue from (None if none can), and the newer ones passed
    over with their problem (a process killed while writing a checkpoint leaves it incomplete); says on stderr which
    it passed over."""
    steps = {path: int(path.name.split("-", 1)[1]) for path in folder.glob("checkpoint-*")
             if path.is_dir() and path.name.split("-", 1)[1].isdigit()}
    passed_over = []
    for checkpoint in sorted(steps, key=steps.get, reverse=True):
        problem = checkpoint_problem(checkpoint, weights_only)
        if problem is None:
            for newer, why in passed_over:
                print(f"{newer} cannot be continued from ({why}); resuming from {checkpoint}, the newest complete "
                      "checkpoint", file=sys.stderr)
            return str(checkpoint), passed_over
        passed_over.append((checkpoint, problem))
    return None, passed_over


def check_checkpoint(checkpoint: str, weights_only: bool) -> None:
    """Refuses a checkpoint the run could not continue from exactly (see `checkpoint_problem`)."""
    problem = checkpoint_problem(Path(checkpoint), weights_only)
    if problem is not None:
        raise UsageError(f"--resume: {problem}")


def checkpoint_problem(folder: Path, weights_only: bool) -> str | None:
    """Why a run could not continue exactly from the checkpoint `folder`: unreadable state or weights, or (unless only
    its weights are wanted) no optimizer or scheduler state; None if it can."""
    state = folder / "trainer_state.json"
    try:
        json.loads(state.read_text())
    except (OSError, ValueError) as error:
        return f"{state} cannot be read ({error}); the checkpoint is incomplete"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return f"{folder} holds no weights (*.safetensors)"
    for file in weights:
        try:
            with safe_open(file, framework="pt"):
                pass
        except (OSError, SafetensorError) as error:
            return f"{file} cannot be read ({error}); the checkpoint is incomplete"
    missing = [name for name in ("optimizer.pt", "scheduler.pt") if not (folder / name).is_file()]
    for name in () if weights_only else ("optimizer.pt", "scheduler.pt"):
        # torch.save writes a zip archive, whose directory comes last: a truncated file has none.
        if (folder / name).is_file() and not zipfile.is_zipfile(folder / name):
            return f"{folder / name} cannot be read (truncated?); the checkpoint is incomplete"
    if missing and not weights_only:
        return (
            f"{folder}: {' and '.join(missing)} missing, so the run cannot continue as it would have (the "
            "optimizer's state and the learning-rate schedule would restart); pass --resume_weights_only to start a "
            "new run from its weights"
        )
    return None


def check_checkpoint_config(checkpoint: str, config: FiftyNetConfig) -> None:
    """Refuses a checkpoint of another architecture than the model this run builds, naming the fields."""
    if not (Path(checkpoint) / "config.json").is_file():  # a LoRA checkpoint holds only the adapter
        return
    try:
        saved = FiftyNetConfig.from_pretrained(checkpoint)
    except (OSError, ValueError, StrictDataclassError) as error:
        raise UsageError(f"--resume: the config of {checkpoint} cannot be read ({error})") from None
    differences = [
        f"{name}={getattr(saved, name)!r} there, {getattr(config, name)!r} here"
        for name in FiftyNetConfig.__annotations__
        if name not in ("initializer_range", "use_cache") and getattr(saved, name) != getattr(config, name)
    ]
    if differences:
        raise UsageError(f"--resume {checkpoint} is a checkpoint of another model: {'; '.join(differences)}")


def check_output_dir(output_dir: str, checkpoint: str | None, overwrite: bool) -> bool:
    """Refuses to mix two runs in one folder: a non-empty --output_dir is only trained in to resume its own run, or
    when asked to overwrite it. Returns whether the earlier run's checkpoints and logs must go first (see
    `clear_earlier_run`)."""
    folder = Path(output_dir)
    if not folder.is_dir() or not any(folder.iterdir()):
        refuse_non_empty(folder, "--output_dir")  # only a file in the folder's place is refused here
        return False
    if checkpoint is not None and Path(checkpoint).resolve().is_relative_to(folder.resolve()):
        return False
    if not overwrite:
        resume = f"resume its run with --resume {folder}, " if get_last_checkpoint(str(folder)) else ""
        refuse_non_empty(folder, "--output_dir", resume)
    return True


def clear_earlier_run(output_dir: str) -> None:
    """Deletes the checkpoints and TensorBoard logs of the run --overwrite_output_dir replaces, so that checkpoint
    rotation and --resume never mix the two; its model/ and metrics are replaced when this run saves."""
    for entry in Path(output_dir).iterdir():
        if entry.is_dir() and (entry.name == "runs" or entry.name.startswith("checkpoint-")):
            shutil.rmtree(entry)


# Activation memory of one training step, in bytes per token, layer and channel: measured on CPU in float32 between
# 150 and 210 for the tiny preset at 256 to 4096 tokens; the lower end, so that a refusal is never a false alarm.
ACTIVATION_BYTES = 150
# The flag this transformers release documents (the older name became a deprecated alias).
CHECKPOINTING_FLAG = "--" + next(name for name in ("activation_checkpointing", "gradient_checkpointing")
                                 if name in TrainingArguments.__dataclass_fields__)


def activation_bytes(hidden_size: int, num_layers: int, block_size: int, args: TrainingArguments) -> float:
    """A lower bound of the activation memory of one training step of a FiftyNet of that width and depth, per
    process, at `args`' batch size, checkpointing and mixed precision."""
    tokens = args.per_device_train_batch_size * block_size
    # `gradient_checkpointing` mirrors `activation_checkpointing` (its new name, where it exists) once resolved.
    per_layer = 4 * 2 if args.gradient_checkpointing else ACTIVATION_BYTES  # checkpointing keeps each block's input
    needed = tokens * hidden_size * (num_layers * per_layer + ACTIVATION_BYTES)
    return needed * (0.5 if args.bf16 or args.fp16 else 1.0)


def check_memory(config: FiftyNetConfig, args: TrainingArguments, block_size: int) -> None:
    """Refuses, before anything is allocated, a batch whose activations alone would exceed the device's memory."""
    needed = activation_bytes(config.hidden_size, config.num_hidden_layers, block_size, args)
    available = device_memory(args.device)
    if available is not None and needed > available:
        raise UsageError(
            f"--block_size {block_size} with --per_device_train_batch_size {args.per_device_train_batch_size} needs "
            f"at least {needed / 2**30:.0f} GiB of activations per step, more than the {available / 2**30:.0f} GiB "
            f"of {args.device}: lower either, or add {CHECKPOINTING_FLAG}"
        )


def build_model(script: TrainScriptArguments, tokenizer) -> PreTrainedModel:
    """The saved `--model`, or a new FiftyNet sized by the preset, config file and overrides for the tokenizer;
    either way, one with an embedding for every token id of the tokenizer."""
    if script.model:
        if script.preset or script.config_file or script.config_overrides:
            raise UsageError("--preset, --config_file and --set describe a new model; --model keeps its saved config")
        model = load_model(script.model)
        if not isinstance(model.config, FiftyNetConfig):
            raise UsageError(f"--model {script.model} is a {model.config.model_type} model, not a FiftyNet")
        check_vocabulary(tokenizer, model.config)
        return model
    config = build_config(
        script.preset or "tiny", script.config_file, script.config_overrides,
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    check_vocabulary(tokenizer, config)  # before the embedding is built around out-of-range special ids
    try:
        return FiftyNetForCausalLM(config)
    except ValueError as error:  # e.g. a bidirectional mixer, which a causal LM refuses
        raise UsageError(f"invalid model config: {error}") from None


def plot_losses(log_history: list[dict], path: Path) -> None:
    """Training and validation loss against the step, as a PNG."""
    loss_figure(log_history).savefig(path, dpi=120, bbox_inches="tight")


def loss_figure(log_history: list[dict]) -> Figure:
    """Training and validation loss against the step, every logged point marked."""
    figure = Figure(figsize=(7, 4))
    axes = figure.add_subplot()
    for key, label, style in (("loss", "training", ".-"), ("eval_loss", "validation", "o-")):
        points = [(entry["step"], entry[key]) for entry in log_history if key in entry]
        if points:  # with markers: a run with one logged point still shows it
            axes.plot(*zip(*points), style, markersize=3, label=label)
    axes.set(xlabel="step", ylabel="loss (nats per token)", title="FiftyNet training")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def writable(folder: Path, is_writer: bool) -> AbstractContextManager[Path]:
    """Where to write `folder`: on the process that writes, a staged folder moved into place once complete (see
    `modeling_fiftynet.saving.staged_folder`); on the others, which write nothing, the folder itself."""
    return staged_folder(folder) if is_writer else nullcontext(folder)


def sequences_per_step(args: TrainingArguments) -> int:
    """Training sequences per optimizer step, over all processes."""
    return args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size


def training_blocks(data: LanguageModelingData) -> str:
    """How many training blocks there are, for the log: a stream's are counted as they are read."""
    return "streamed" if isinstance(data.train, IterableDataset) else str(len(data.train))


def evaluation_text(script: TrainScriptArguments, texts: Texts) -> tuple[str, str]:
    """The name and split of the text the validation metrics are measured on, for the model card."""
    if texts.validation is None:
        return texts.name, f"last {script.validation_fraction:.0%} of the tokens, held out from training"
    if script.validation_data:
        return ", ".join(Path(file).name for file in script.validation_data), "validation"
    return texts.name, "validation"


def save_outputs(trainer: Trainer, script: TrainScriptArguments, data: LanguageModelingData, tokenizer,
                 metrics: dict, evaluated_on: tuple[str, str]) -> Path:
    """Writes the Hub-ready model folder with its card, metrics.json and loss_curve.png; returns the folder.
    `evaluated_on` names the validation text and its split (see `evaluation_text`)."""
    output_dir = Path(trainer.args.output_dir)
    model_dir = output_dir / "model"
    writer = trainer.is_world_process_zero()
    model = trainer.model
    if isinstance(model, PeftModel):
        with writable(output_dir / "adapter", writer) as adapter_dir:
            trainer.save_model(str(adapter_dir))
            (adapter_dir / "training_args.bin").unlink(missing_ok=True)  # pickled: see below
        model = model.merge_and_unload()
    with writable(model_dir, writer) as folder:
        if model is trainer.model:
            trainer.save_model(str(folder))  # every process takes part in gathering FSDP / DeepSpeed shards
        elif writer:
            model.save_pretrained(folder)
        if not writer:
            return model_dir
        # Trainer.save_model also pickles the TrainingArguments; the Hub-ready folder holds safetensors only (the
        # checkpoints keep their copy for --resume).
        (folder / "training_args.bin").unlink(missing_ok=True)
        tokenizer.save_pretrained(folder)
        if script.model:
            how = "LoRA, merged" if isinstance(trainer.model, PeftModel) else "fine-tuned"
            source = f"{how} from {source_name(script.model)}"
        else:
            overridden = " with config overrides" if script.config_file or script.config_overrides else ""
            source = f"preset {script.preset or 'tiny'}{overridden}"
        summary = (
            f"`fiftynet train` ({source}): {trainer.state.global_step} steps of "
            f"{sequences_per_step(trainer.args)} blocks of {script.block_size} tokens "
            f"({len(tokenizer)}-token {type(tokenizer).__name__}) "
            f"on {data.name}, on {trainer.args.device}."
        )
        measurements = [
            Measurement(key, name, metrics[f"eval_{key}"], *evaluated_on, script.dataset_name or "text")
            for key, name in (("bits_per_byte", "Bits per byte"), ("perplexity", "Perplexity"),
                              ("accuracy", "Next-token accuracy"))
        ]
        CardRecord(
            run_model_name(output_dir), summary, measurements, base_model=hub_model_id(script.model),
            datasets=[script.dataset_name] if script.dataset_name else [], num_parameters=model.num_parameters(),
        ).save(folder, model.config)
    (output_dir / "metrics.json").write_text(json.dumps(
        {"validation": metrics, "parameters": model.num_parameters(), "tokens_per_byte": data.tokens_per_byte,
         "data": data.name, "log_history": trainer.state.log_history}, indent=2))
    plot_losses(trainer.state.log_history, output_dir / "loss_curve.png")
    return model_dir


def final_evaluation(trainer: Trainer) -> dict:
    """The validation metrics after the last step: the evaluation the Trainer ran at that step, if it ran one, else a
    new one."""
    last = trainer.state.log_history[-2:-1]  # the entry before the training summary
    ran_at_the_end = last and "eval_loss" in last[0] and last[0].get("step") == trainer.state.global_step
    if ran_at_the_end and not trainer.args.load_best_model_at_end:  # else the final model is another checkpoint
        return {key: value for key, value in last[0].items() if key.startswith("eval_") or key == "epoch"}
    return trainer.evaluate(ignore_keys=IGNORE_KEYS)


def run(script: TrainScriptArguments, lora_args: LoraArguments, training_args: TrainingArguments,
        callbacks: list[TrainerCallback] = ()) -> dict:
    """Trains, evaluates and saves; returns the final validation metrics. `callbacks` are added to the Trainer's."""
    if lora_args.lora and not script.model:
        raise UsageError("--lora fine-tunes a saved model: pass --model DIR")
    resume = script.resume or training_args.resume_from_checkpoint
    checkpoint = find_checkpoint(resume, script.resume_weights_only) if resume else None
    if checkpoint is not None:
        check_checkpoint(checkpoint, script.resume_weights_only)
    clear_output_dir = check_output_dir(training_args.output_dir, None if script.resume_weights_only else checkpoint,
                                        script.overwrite_output_dir)
    set_seed(training_args.seed)
    tokenizer = load_tokenizer(script.tokenizer or script.model or "byte")
    model = build_model(script, tokenizer)
    if checkpoint is not None:
        check_checkpoint_config(checkpoint, model.config)
    if script.resume_weights_only:
        # A new run (step 0, new optimizer and schedule) from the checkpoint's weights.
        model = type(model).from_pretrained(checkpoint)
        checkpoint = None
    check_memory(model.config, training_args, script.block_size)
    if getattr(model, "chunk_head", None) is not None:
        # The LM loss does not reach the chunk head: frozen, it keeps its drafts (`fiftynet chunk-head` retrains it),
        # and DDP has no parameter without a gradient.
        model.chunk_head.requires_grad_(False)
    check_streamed_steps(script, training_args.max_steps)
    texts = load_texts(script)
    data = prepare_data(texts, tokenizer, script.block_size, script.validation_fraction)
    if lora_args.lora:
        try:
            model = add_lora(model, lora_args)
        except ValueError as error:  # e.g. a target module name that the model does not have
            raise UsageError(f"LoRA: {' '.join(str(error).split())}") from None
    if script.early_stopping_patience:
        # EarlyStoppingCallback needs a metric; the validation loss unless one was named.
        if training_args.metric_for_best_model is None:
            training_args.metric_for_best_model, training_args.greater_is_better = "eval_loss", False
        callbacks = [EarlyStoppingCallback(script.early_stopping_patience), *callbacks]
    trainable = sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)
    if training_args.should_log:  # once per machine, as the Trainer logs
        print(f"{type(model).__name__}: {model.num_parameters() / 1e6:.2f}M parameters ({trainable / 1e6:.2f}M "
              f"trainable); {training_blocks(data)} training and {len(data.validation)} validation blocks of "
              f"{script.block_size} tokens from {data.name}")

    if clear_output_dir and training_args.should_save:
        clear_earlier_run(training_args.output_dir)
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        processing_class=tokenizer,
        callbacks=list(callbacks),
        **trainer_evaluation(data.tokens_per_byte),
    )
    trainer.train(resume_from_checkpoint=checkpoint, ignore_keys_for_eval=IGNORE_KEYS)
    metrics = final_evaluation(trainer)
    model_dir = save_outputs(trainer, script, data, tokenizer, metrics, evaluation_text(script, texts))
    if trainer.is_world_process_zero():
        print(f"validation: loss {metrics['eval_loss']:.4f}, perplexity {metrics['eval_perplexity']:.3f}, "
              f"{metrics['eval_bits_per_byte']:.4f} bits per byte, next-token accuracy {metrics['eval_accuracy']:.4f}")
        print(f"saved to {model_dir}; metrics.json, loss_curve.png and TensorBoard logs in {training_args.output_dir}")
    return metrics


def main(argv: list[str] | None = None, prog: str = "fiftynet train", description: str = __doc__) -> dict:
    script, lora_args, training_args = parse_arguments(argv, prog, description)
    with claimed(training_args.output_dir, "--output_dir", training_args.process_index == 0):
        return run(script, lora_args, training_args)


def lora_main(argv: list[str]) -> dict:
    """`fiftynet lora ...` is `fiftynet train --lora ...`."""
    return main(["--lora", *argv], "fiftynet lora", f"{lora_main.__doc__}\n\n{__doc__}")


if __name__ == "__main__":
    from . import cli

    cli.main(["train", *sys.argv[1:]])
