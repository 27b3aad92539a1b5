"""`fiftynet convert`: retune a pretrained GPT-2, Llama (SmolLM2, TinyLlama), Qwen2/2.5, Qwen3 or Mistral into a
FiftyNet whose attention layers are replaced by spectral mixers, and measure how much of the teacher's quality comes
back (the families: `transplant.TEACHER_FAMILIES`).

    fiftynet convert --teacher gpt2 --out gpt2-spectral --keep_attention 5 11 --max_steps 2000 --bf16
    fiftynet convert --teacher gpt2 --out gpt2-hybrid --keep_attention auto --auto_keep 2

Stages (after each: the perplexity on the validation text and on any --eval_text, and `greedy_agreement`, the share of
the teacher's greedy continuations of held-out prompts that the model generates too; see docs/conversion.md):
1. exact transplant: every weight of the teacher is copied into a FiftyNet expressing its block;
2. spectral initialization: each replaced layer's mixer starts from the teacher's value and output projections and
   per-channel causal filters fitted by least squares to what each attention head outputs on calibration text;
3. layer-wise distillation: each mixer learns its attention layer's output from the teacher's inputs (MSE);
4. end-to-end distillation: KL on the teacher's logits plus the LM loss, optionally with LoRA on the MLPs;
5. optionally, Linear weights compressed (`--compress dct|svd|int8`).

OUT gets `model/` (Hub-ready: safetensors, config, remote code, the teacher's tokenizer, a model card with the stage
table), `report.json`, `layerwise/` (the student after stage 3, for `--resume`), `checkpoints/` and TensorBoard logs.
Every TrainingArguments flag applies to the end-to-end stage; several GPUs:
`accelerate launch -m fiftynet.conversion.convert`.
"""

import gc
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
    set_seed,
)

from fiftynet.hub_cards.card import CardRecord, Measurement, hub_model_id, run_model_name, source_name
from fiftynet.training.data import (
    DataArguments,
    LanguageModelingData,
    check_streamed_steps,
    first_blocks,
    load_texts,
    prepare_data,
    read_text_files,
)
from fiftynet.training.errors import UsageError, claimed, refuse_non_empty
from fiftynet.training.evaluation import (
    collate_blocks,
    evaluate_blocks,
    evaluate_text,
    greedy_agreement,
    greedy_continuations,
    greedy_prompts,
)
from fiftynet.training import train
from fiftynet.training.lora import LoraArguments, add_lora
from fiftynet.training.presets import device_memory
from fiftynet.training.tokenizer import from_pretrained
from modeling_fiftynet import FiftyNetForCausalLM
from modeling_fiftynet.saving import staged_folder

from .compress import compressed_copy
from .distill import DistillationTrainer, LayerwiseDistillation
from .transplant import FILTER_FITS, SPECTRAL_MIXERS, TEACHER_FAMILIES, check_replaceable, spectral_init, transplant


TEACHER_DTYPES = ("float32", "bfloat16", "float16")


@dataclass(kw_only=True)  # keyword-only, so that required fields may follow DataArguments' defaults
class ConvertArguments(DataArguments):
    _argument_group_name = "fiftynet convert: data, teacher, stages, output"

    teacher: str = field(metadata={"help": "a causal LM folder or Hub id of a family the conversion takes: GPT-2, "
                                           "Llama (SmolLM2, TinyLlama), Qwen2/2.5, Qwen3, Mistral"})
    out: str = field(metadata={"help": "output folder"})
    teacher_dtype: str = field(
        default="float32", metadata={"help": f"the frozen teacher's weights: {', '.join(TEACHER_DTYPES)} (bfloat16 "
                                             "halves its memory; the student trains in float32 either way)"}
    )
    mixer: str = field(default="spectral_conv", metadata={"help": f"the new mixer: {', '.join(SPECTRAL_MIXERS)}"})
    keep_attention: list[str] = field(
        default_factory=list,
        metadata={"help": "layers that keep their attention (a hybrid): indices, or `auto` for the --auto_keep layers "
                          "whose replacement alone costs the most perplexity on calibration text"},
    )
    auto_keep: int | None = field(
        default=None, metadata={"help": "with --keep_attention auto: how many layers keep attention (default: a "
                                        "quarter of the layers, at least 1)"}
    )
    block_size: int | None = field(
        default=None,
        metadata={"help": "tokens per sequence (default: the teacher's max_position_embeddings, at most 1024)"},
    )
    calibration_blocks: int = field(
        default=8, metadata={"help": "blocks of training text the filters are fitted on (and, as many more, on "
                                     "which --keep_attention auto measures each layer)"}
    )
    filter_fit: str = field(
        default="outputs",
        metadata={"help": "what each new filter is fitted to: 'outputs' (each attention head's output on the "
                          "calibration text) or 'profile' (its average attention weight by distance)"},
    )
    layerwise_steps: int = field(default=200, metadata={"help": "steps of layer-wise distillation, per group (0 skips "
                                                                "it)"})
    layerwise_group_size: int | None = field(
        default=None, metadata={"help": "distil this many layers at a time layer-wise, the teacher run only up to the "
                                        "group's last (default: all at once)"}
    )
    layerwise_learning_rate: float = field(default=1e-3, metadata={"help": "learning rate of layer-wise distillation"})
    kl_weight: float = field(default=1.0, metadata={"help": "weight of KL(teacher || student) per token"})
    lm_weight: float = field(default=1.0, metadata={"help": "weight of the language-modelling loss"})
    temperature: float = field(default=1.0, metadata={"help": "softening of both distributions in the KL"})
    lora: bool = field(default=False, metadata={"help": "end-to-end stage: LoRA on the MLPs, the new mixers in full"})
    lora_r: int = field(default=16, metadata={"help": "rank of the LoRA updates (with --lora)"})
    compress: str | None = field(default=None, metadata={"help": "compress Linear layers at the end: dct, svd, int8"})
    compress_ratio: float | None = field(default=None, metadata={"help": "bytes kept per compressed layer, (0, 1]"})
    compress_modules: str | None = field(default=None, metadata={"help": "e.g. mlp (default: all Linear layers)"})
    eval_text: list[str] | None = field(
        default=None, metadata={"help": "text files also measured after every stage (e.g. text the teacher never saw)"}
    )
    control: bool = field(
        default=False,
        metadata={"help": "the control experiment: the replaced layers mix no tokens (their mixers output only the "
                          "attention's output bias, frozen), so only the rest of the model learns; with "
                          "--layerwise_steps 0"},
    )
    resume: bool = field(default=False, metadata={"help": "continue a run in --out: skip the stages it finished"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "convert afresh into a non-empty --out: its earlier run is deleted first"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resume and self.overwrite_output_dir:
            raise ValueError("--resume continues the run in --out and --overwrite_output_dir replaces it: pass one")
        if self.teacher_dtype not in TEACHER_DTYPES:
            raise ValueError(f"--teacher_dtype {self.teacher_dtype!r} is not one of {', '.join(TEACHER_DTYPES)}")
        if self.mixer not in SPECTRAL_MIXERS:
            raise ValueError(f"--mixer {self.mixer!r} is not one of {SPECTRAL_MIXERS}")
        if self.layerwise_group_size is not None and self.layerwise_group_size < 1:
            raise ValueError(f"--layerwise_group_size must be at least 1 layer, got {self.layerwise_group_size}")
        if self.control and self.layerwise_steps > 0:
            raise ValueError("--control freezes the mixers that the layer-wise stage trains: pass --layerwise_steps 0")
        if self.filter_fit not in FILTER_FITS:
            raise ValueError(f"--filter_fit {self.filter_fit!r} is not one of {', '.join(FILTER_FITS)}")
        if self.auto_keep is not None and self.keep_attention != ["auto"]:
            raise ValueError("--auto_keep counts the layers --keep_attention auto chooses: pass both")


# `fiftynet train`'s defaults, but for distilling: the end-to-end stage; every TrainingArguments flag overrides them.
TRAINING_DEFAULTS = {
    **train.TRAINING_DEFAULTS,
    "output_dir": "OUT/checkpoints",  # what --help shows: parse_arguments sets it so
    "max_steps": 200,
    "per_device_train_batch_size": 8,
    "learning_rate": 5e-4,
    "weight_decay": 0.0,
    "eval_strategy": "no",  # each stage is evaluated on the validation text once it ends
    "save_total_limit": 2,
}


def parse_arguments(argv: list[str] | None) -> tuple[ConvertArguments, TrainingArguments]:
    parser = train.trainer_argument_parser((ConvertArguments, train.TrainerArguments), "fiftynet convert", __doc__,
                                           TRAINING_DEFAULTS)
    try:
        args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        raise UsageError(" ".join(str(error).split())) from None
    checkpoints = str(Path(args.out) / "checkpoints")
    if training_args.output_dir not in (TRAINING_DEFAULTS["output_dir"], checkpoints):  # it would be ignored
        raise UsageError(f"--output_dir {training_args.output_dir}: the conversion keeps its checkpoints in "
                         f"{checkpoints} (--out OUT/checkpoints); choose the folder with --out")
    return args, replace(training_args, output_dir=checkpoints)


def teacher_config(name_or_path: str) -> PretrainedConfig:
    """The teacher's config, read before its weights; a family the conversion does not take is refused by name."""
    config = from_pretrained(AutoConfig.from_pretrained, name_or_path, "teacher")
    if config.model_type not in TEACHER_FAMILIES:
        raise UsageError(f"--teacher {name_or_path} is a {' or '.join(config.architectures or ['model'])} "
                         f"({config.model_type}); the conversion takes {', '.join(TEACHER_FAMILIES)}")
    return config


def load_teacher(name_or_path: str, dtype: str = "float32") -> PreTrainedModel:
    """The teacher's weights in `dtype`, for inference only (its `teacher_config` checked first)."""
    return from_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, "teacher",
                           dtype=getattr(torch, dtype)).eval()


def memory_estimate(config: PretrainedConfig, args: ConvertArguments, training_args: TrainingArguments,
                    block_size: int) -> dict[str, float]:
    """Bytes per process of the end-to-end stage, the largest, by part, counted on the teacher's config before any
    weight is loaded: the frozen teacher in `--teacher_dtype`; the student (transplanted on the meta device, so with
    its own mixers' parameters) in float32, with gradients and AdamW's two moments for what trains (with `--lora`,
    the new mixers only, held twice, and LoRA's own small adapters left out); its activations
    (`train.activation_bytes`, a lower bound); the logits of the student, their gradient and the teacher's, in
    float32, which a vocabulary of 100k tokens or more makes the largest part. A teacher the transplant cannot
    express, or whose heads a spectral mixer cannot replace, is refused here, by name."""
    num_layers = config.num_hidden_layers
    kept = kept_layers(args, num_layers)
    count = len(kept) if kept is not None else auto_keep_count(args, num_layers)  # every layer has the same shapes
    with torch.device("meta"):
        teacher = AutoModelForCausalLM.from_config(config)
        try:
            student = transplant(teacher, ["attention"] * count + [args.mixer] * (num_layers - count))
            check_replaceable(teacher, num_layers - 1, config.hidden_size)
        except ValueError as error:
            raise UsageError(f"--teacher {args.teacher}: {error}") from None
    mixers = sum(parameter.numel() for layer in student.model.layers[count:] for parameter in layer.mixer.parameters())
    # LoRA's modules_to_save trains a copy of each new mixer beside the frozen original.
    weights, trained = (student.num_parameters() + mixers, mixers) if args.lora else (student.num_parameters(),) * 2
    tokens = training_args.per_device_train_batch_size * block_size
    return {
        f"teacher ({args.teacher_dtype})": teacher.num_parameters() * getattr(torch, args.teacher_dtype).itemsize,
        "student (float32, with gradients and AdamW states" + (" of the new mixers)" if args.lora else ")"):
            weights * 4 + trained * 12,
        "activations": train.activation_bytes(config.hidden_size, num_layers, block_size, training_args),
        "logits": tokens * config.vocab_size * 4 * 3,
    }


def check_memory(config: PretrainedConfig, args: ConvertArguments, training_args: TrainingArguments,
                 block_size: int) -> None:
    """Prints `memory_estimate` and refuses, before the teacher is loaded, a conversion it says cannot fit."""
    parts = memory_estimate(config, args, training_args, block_size)
    needed, available = sum(parts.values()), device_memory(training_args.device)
    described = ", ".join(f"{name} {size / 2**30:.1f} GiB" for name, size in parts.items())
    of_device = f" of the {available / 2**30:.0f} GiB of {training_args.device}" if available else ""
    if training_args.should_log:
        print(f"[convert] memory per process, estimated: {needed / 2**30:.1f} GiB{of_device} ({described})",
              file=sys.stderr)
    if available is not None and needed > available:
        raise UsageError(f"the conversion needs about {needed / 2**30:.0f} GiB per process ({described}), more than "
                         f"the {available / 2**30:.0f} GiB of {training_args.device}: lower "
                         f"--per_device_train_batch_size or --block_size, add {train.CHECKPOINTING_FLAG}, or pass "
                         "--teacher_dtype bfloat16")


def auto_keep_count(args: ConvertArguments, num_layers: int) -> int:
    """How many layers `--keep_attention auto` keeps: --auto_keep, or a quarter of the layers (at least 1)."""
    return args.auto_keep or max(1, num_layers // 4)


def kept_layers(args: ConvertArguments, num_layers: int) -> list[int] | None:
    """The --keep_attention layer indices, or None for `auto`."""
    if args.keep_attention == ["auto"]:
        if args.auto_keep is not None and not 0 < args.auto_keep < num_layers:
            raise UsageError(f"--auto_keep {args.auto_keep}: the teacher has {num_layers} layers; keep 1 to "
                             f"{num_layers - 1}")
        return None
    try:
        layers = [int(layer) for layer in args.keep_attention]
    except ValueError:
        raise UsageError(f"--keep_attention {' '.join(args.keep_attention)}: give layer indices, or `auto` alone") \
            from None
    outside = sorted(set(layers) - set(range(num_layers)))
    if outside:
        raise UsageError(f"--keep_attention {outside}: the teacher has layers 0 to {num_layers - 1}")
    if len(set(layers)) < len(layers):
        raise UsageError(f"--keep_attention {' '.join(args.keep_attention)} names a layer twice")
    if len(layers) == num_layers:
        raise UsageError(f"--keep_attention keeps all {num_layers} layers: nothing would be converted")
    return layers


@torch.no_grad()
def mean_loss(model: PreTrainedModel, blocks: torch.Tensor, batch_size: int) -> float:
    """The language-modelling loss over full `(n, seq_len)` blocks, in nats per token."""
    losses = [model(input_ids=batch, labels=batch).loss * len(batch) for batch in blocks.split(batch_size)]
    return float(torch.stack(losses).sum()) / len(blocks)


def layer_importance(teacher: PreTrainedModel, mixer: str, fitting: torch.Tensor, measuring: torch.Tensor,
                     filter_fit: str, batch_size: int) -> list[float]:
    """For each layer, the perplexity on the `measuring` blocks of the teacher with that layer alone replaced by its
    spectral initialization (fitted on the `fitting` blocks), over the teacher's own: what keeping its attention is
    worth, before any distillation."""
    teacher_loss = mean_loss(teacher, measuring, batch_size)
    ratios = []
    for layer in range(teacher.config.num_hidden_layers):
        mixers = [mixer if index == layer else "attention" for index in range(teacher.config.num_hidden_layers)]
        student = transplant(teacher, mixers).to(teacher.device).eval()
        spectral_init(student, teacher, fitting, [layer], filter_fit)
        ratios.append(math.exp(mean_loss(student, measuring, batch_size) - teacher_loss))
    return ratios


# The arguments that decide what the student is: a --resume must repeat them.
STUDENT_ARGUMENTS = ("mixer", "keep_attention", "auto_keep", "filter_fit", "calibration_blocks", "control")


def check_resumable(saved: dict, args: ConvertArguments) -> None:
    """Refuses to --resume a run made with other student-defining arguments (say, adding --control to a conversion
    would silence its distilled mixers)."""
    for name in STUDENT_ARGUMENTS:
        before, now = saved.get(name), getattr(args, name)
        if name == "keep_attention":  # runs before `auto` saved the indices as numbers
            before, now = [str(layer) for layer in before or []], [str(layer) for layer in now]
        if name in saved and before != now:
            raise UsageError(f"--resume: the run in {args.out} was made with --{name} {before}, not {now}; pass the "
                             "same, or start afresh with --overwrite_output_dir")


@torch.no_grad()
def silence_mixers(student: FiftyNetForCausalLM, layers: list[int]) -> None:
    """The control's replaced layers: each mixer outputs only its output projection's bias (the attention's), and
    is frozen, so these layers mix no tokens while everything else trains as in a conversion."""
    for layer in layers:
        mixer = student.model.layers[layer].mixer
        mixer.out_proj.weight.zero_()
        mixer.requires_grad_(False)


class ConversionReport:
    """The numbers of a conversion, stage by stage, kept in OUT/report.json as they come (by the main process only,
    `is_writer`)."""

    def __init__(self, path: Path, is_writer: bool, tokens_per_step: int, **run):
        self.path, self.is_writer, self.tokens_per_step = path, is_writer, tokens_per_step
        saved = json.loads(path.read_text()) if path.is_file() else {}
        self.data = {**run, "stages": saved.get("stages", [])}

    def has(self, stage: str) -> bool:
        return any(entry["stage"] == stage for entry in self.data["stages"])

    def add(self, stage: str, metrics: dict, **details) -> None:
        self.data["stages"] = [entry for entry in self.data["stages"] if entry["stage"] != stage]
        perplexity = metrics["eval_perplexity"]
        teacher_perplexity = self.data["stages"][0]["perplexity"] if self.data["stages"] else perplexity  # first
        self.data["stages"].append({
            "stage": stage,
            "perplexity": perplexity,
            "perplexity_vs_teacher": perplexity / teacher_perplexity,
            "bits_per_byte": metrics["eval_bits_per_byte"],
            "accuracy": metrics["eval_accuracy"],
            "greedy_agreement": metrics["greedy_agreement"],
            **({"eval_text_perplexity": metrics["eval_text"]["eval_perplexity"],
                "eval_text_bits_per_byte": metrics["eval_text"]["eval_bits_per_byte"]}
               if "eval_text" in metrics else {}),
            **details,
        })
        if not self.is_writer:
            return
        self.path.write_text(json.dumps(self.data, indent=2))
        print(f"[convert] {stage}: perplexity {metrics['eval_perplexity']:.3f}, "
              f"bits/byte {metrics['eval_bits_per_byte']:.4f}, greedy agreement {metrics['greedy_agreement']:.3f}",
              file=sys.stderr)

    def table(self) -> str:
        text = any("eval_text_perplexity" in e for e in self.data["stages"])  # a --resume may add or drop it
        rows = [f"| {e['stage']} | {e['perplexity']:.3f} | {e['bits_per_byte']:.4f} | "
                + (f"{e['eval_text_perplexity']:.3f} | " if "eval_text_perplexity" in e else "- | " if text else "")
                + (f"{e['greedy_agreement']:.3f} | " if "greedy_agreement" in e else "- | ")
                + f"{e.get('tokens', 0):,} | {e.get('wall_seconds', 0):.0f} |" for e in self.data["stages"]]
        header = "| stage | perplexity | bits per byte | " + ("--eval_text perplexity | " if text else "")
        return "\n".join([header + "greedy agreement | training tokens | seconds |", "|---" * (6 + text) + "|",
                          *rows])


def layerwise_distillation(teacher: PreTrainedModel, student: FiftyNetForCausalLM, layers: list[int],
                           data: LanguageModelingData, args: ConvertArguments,
                           training_args: TrainingArguments) -> dict:
    """Stage 3 through the Trainer, one run per group of `--layerwise_group_size` layers (one run of all by default);
    returns the steps of all groups together and the final loss, a mean over the layers."""
    # No activation checkpointing: only the mixers train, on the teacher's inputs to them, so little is kept for the
    # backward pass (and the wrapper is no PreTrainedModel, which the Trainer would ask to checkpoint itself).
    no_checkpointing = {name: False for name in ("activation_checkpointing", "gradient_checkpointing")
                        if name in TrainingArguments.__dataclass_fields__}
    stage_args = replace(
        training_args, output_dir=str(Path(args.out) / "layerwise"), max_steps=args.layerwise_steps,
        learning_rate=args.layerwise_learning_rate, save_strategy="no", eval_strategy="no", **no_checkpointing,
    )
    size = args.layerwise_group_size or len(layers)
    groups = [layers[start: start + size] for start in range(0, len(layers), size)]
    steps, final_loss = 0, 0.0
    for group in groups:
        trainer = Trainer(model=LayerwiseDistillation(teacher, student, group), args=stage_args,
                          train_dataset=data.train, data_collator=collate_blocks)
        result = trainer.train()
        steps += result.global_step
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        final_loss += (losses[-1] if losses else result.training_loss) * len(group) / len(layers)  # mean over layers
        del trainer, result
        gc.collect()  # the finished group's optimizer states go before the next group's are made
    student.requires_grad_(True)
    return {"steps": steps, "final_loss": final_loss, "groups": len(groups)}


def end_to_end_distillation(teacher: PreTrainedModel, student: FiftyNetForCausalLM, layers: list[int],
                            data: LanguageModelingData, args: ConvertArguments,
                            training_args: TrainingArguments) -> tuple[FiftyNetForCausalLM, int]:
    """Stage 4 through the Trainer (resuming from OUT/checkpoints with --resume); returns the student and steps."""
    model = student
    if args.lora:
        lora = LoraArguments(lora=True, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                             lora_target_modules=["up_proj", "down_proj"],
                             lora_modules_to_save=[] if args.control else [f"model.layers.{layer}.mixer"
                                                                           for layer in layers])
        model = add_lora(student, lora)
    trainer = DistillationTrainer(
        model=model, args=training_args, train_dataset=data.train, data_collator=collate_blocks, teacher=teacher,
        kl_weight=args.kl_weight, lm_weight=args.lm_weight, temperature=args.temperature,
    )
    resumable = args.resume and Path(training_args.output_dir).is_dir()
    checkpoint, passed_over = (train.newest_complete_checkpoint(Path(training_args.output_dir)) if resumable
                               else (None, []))
    if checkpoint is None and passed_over:
        print(f"no checkpoint in {training_args.output_dir} can be continued from ({passed_over[0][0]}: "
              f"{passed_over[0][1]}); this stage starts over", file=sys.stderr)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    if args.lora:
        student = model.merge_and_unload()
    return student, result.global_step


def initialized_student(teacher: PreTrainedModel, mixer_types: list[str], replaced: list[int],
                        data: LanguageModelingData, args: ConvertArguments, training_args: TrainingArguments,
                        report: ConversionReport, evaluate) -> FiftyNetForCausalLM:
    """Stages 1 to 3: the transplanted student with the mixers of the `replaced` layers initialized from the
    teacher and distilled layer-wise."""
    started = time.perf_counter()
    student = transplant(teacher, mixer_types).to(training_args.device)
    calibration = first_blocks(data.train, args.calibration_blocks).to(training_args.device)
    fit_errors = spectral_init(student, teacher, calibration, replaced, args.filter_fit)
    if args.control:
        silence_mixers(student, replaced)
    report.add("spectral_init", evaluate(student), filter_fit_error=fit_errors,
               wall_seconds=time.perf_counter() - started)
    if args.layerwise_steps > 0:
        started = time.perf_counter()
        result = layerwise_distillation(teacher, student, replaced, data, args, training_args)
        report.add("layerwise", evaluate(student), tokens=result["steps"] * report.tokens_per_step,
                   final_loss=result["final_loss"], groups=result["groups"], wall_seconds=time.perf_counter() - started)
    return student


def run(args: ConvertArguments, training_args: TrainingArguments) -> dict:
    set_seed(training_args.seed)
    out = Path(args.out)
    if args.overwrite_output_dir and training_args.should_save:  # the earlier run's stages must not mix into this one
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        shutil.rmtree(out / "layerwise", ignore_errors=True)
        (out / "report.json").unlink(missing_ok=True)
    elif not args.resume:
        refuse_non_empty(out, "--out", "continue its conversion with --resume, ")
    out.mkdir(parents=True, exist_ok=True)
    config = teacher_config(args.teacher)
    num_layers = config.num_hidden_layers
    kept = kept_layers(args, num_layers)
    context = config.max_position_embeddings  # n_positions for GPT-2
    block_size = args.block_size or min(1024, context)
    if block_size > context:
        raise UsageError(f"--block_size {block_size} exceeds the teacher's context of {context} tokens "
                         "(max_position_embeddings)")
    check_memory(config, args, training_args, block_size)
    check_streamed_steps(args, training_args.max_steps)
    teacher = load_teacher(args.teacher, args.teacher_dtype).to(training_args.device)
    tokenizer = from_pretrained(AutoTokenizer.from_pretrained, args.teacher, "the teacher's tokenizer")
    texts = load_texts(args)
    data = prepare_data(texts, tokenizer, block_size, args.validation_fraction)
    eval_documents = read_text_files(args.eval_text) if args.eval_text else None
    batch_size = training_args.per_device_eval_batch_size

    prompts, new_tokens = greedy_prompts(data.validation)
    reference = greedy_continuations(teacher, prompts, new_tokens, batch_size)

    def evaluate(model: PreTrainedModel) -> dict:
        metrics = evaluate_blocks(model, data.validation, data.tokens_per_byte, batch_size, training_args)
        metrics["greedy_agreement"] = greedy_agreement(
            greedy_continuations(model, prompts, new_tokens, batch_size), reference)
        if eval_documents:
            metrics["eval_text"] = evaluate_text(model, eval_documents, tokenizer, block_size, batch_size,
                                                  training_args)
        return metrics

    report_path, importance = out / "report.json", None
    saved = json.loads(report_path.read_text()) if args.resume and report_path.is_file() else None
    if saved is not None:
        check_resumable(saved["arguments"], args)
        kept = [layer for layer, mixer in enumerate(saved["mixer_types"]) if mixer == "attention"]
        importance = saved.get("layer_importance")
    elif kept is None:
        calibration = first_blocks(data.train, 2 * args.calibration_blocks).to(training_args.device)
        if len(calibration) < 2 * args.calibration_blocks:
            raise UsageError(f"--keep_attention auto fits on --calibration_blocks {args.calibration_blocks} training "
                             f"blocks and measures on as many more, but the training text has {len(calibration)}")
        fitting, measuring = calibration[: args.calibration_blocks], calibration[args.calibration_blocks:]
        importance = layer_importance(teacher, args.mixer, fitting, measuring, args.filter_fit, batch_size)
        count = auto_keep_count(args, num_layers)
        kept = sorted(sorted(range(num_layers), key=importance.__getitem__, reverse=True)[:count])
    mixer_types = ["attention" if layer in kept else args.mixer for layer in range(num_layers)]
    replaced = [layer for layer, mixer in enumerate(mixer_types) if mixer != "attention"]
    report = ConversionReport(
        report_path, is_writer=training_args.should_save, teacher=args.teacher, mixer_types=mixer_types,
        data=data.name, block_size=block_size, validation_tokens=len(data.validation) * block_size,
        arguments=asdict(args), tokens_per_step=train.sequences_per_step(training_args) * block_size,
        **({"layer_importance": importance} if importance is not None else {}),
    )
    if not report.has("teacher"):
        report.add("teacher", evaluate(teacher))

    layerwise_dir = out / "layerwise"
    if args.resume and (layerwise_dir / "config.json").is_file():
        student = FiftyNetForCausalLM.from_pretrained(layerwise_dir).to(training_args.device)
        if args.control:
            silence_mixers(student, replaced)
    else:
        student = initialized_student(teacher, mixer_types, replaced, data, args, training_args, report, evaluate)
        if training_args.should_save:
            student.save_pretrained(layerwise_dir)
            tokenizer.save_pretrained(layerwise_dir)  # so that `fiftynet eval` measures this stage's student too

    if training_args.max_steps != 0:
        started = time.perf_counter()
        student, steps = end_to_end_distillation(teacher, student, replaced, data, args, training_args)
        report.add("end_to_end", evaluate(student), tokens=steps * report.tokens_per_step,
                   wall_seconds=time.perf_counter() - started)
    if args.compress:
        modules = args.compress_modules.split(",") if args.compress_modules else None
        try:
            student = compressed_copy(student, args.compress, args.compress_ratio, modules)
        except ValueError as error:
            raise UsageError(str(error)) from None
        report.add("compressed", evaluate(student), method=args.compress, ratio=args.compress_ratio)

    if training_args.should_save:
        save_student(student, tokenizer, report, args, out / "model")
    return report.data


def save_student(student: FiftyNetForCausalLM, tokenizer, report: ConversionReport, args: ConvertArguments,
                 folder: Path) -> None:
    """The Hub-ready folder: weights, config, remote code, the teacher's tokenizer, and the card (with the stage
    table) and its record, written beside `folder` and moved into place whole."""
    stages = report.data["stages"]
    replaced = sum(mixer != "attention" for mixer in report.data["mixer_types"])
    replacement = (f"removed (the control experiment: {args.mixer} mixers frozen at zero weight)" if args.control
                   else f"replaced by `{args.mixer}` mixers initialized from it")
    summary = (
        f"Converted from {source_name(args.teacher)} by `fiftynet convert`: every weight copied, the "
        f"attention of {replaced} of {len(report.data['mixer_types'])} layers {replacement}, then distilled on "
        f"{sum(entry.get('tokens', 0) for entry in stages):,} tokens of {report.data['data']} (blocks of "
        f"{report.data['block_size']} tokens). Validation perplexity after each stage:\n\n{report.table()}"
    )
    dataset_type = args.dataset_name or "text"
    measurements = [
        Measurement(key, name, stages[-1][key], report.data["data"], "validation", dataset_type)
        for key, name in (("perplexity", "Perplexity"), ("bits_per_byte", "Bits per byte"))
    ]
    record = CardRecord(
        model_name=run_model_name(args.out), training_summary=summary, measurements=measurements,
        base_model=hub_model_id(args.teacher), datasets=[args.dataset_name] if args.dataset_name else [],
        num_parameters=student.num_parameters(),
    )
    with staged_folder(folder) as staged:
        student.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        record.save(staged, student.config)


def main(argv: list[str] | None = None) -> dict:
    args, training_args = parse_arguments(argv)
    with claimed(args.out, "--out", training_args.process_index == 0):
        return run(args, training_args)


if __name__ == "__main__":
    main()
