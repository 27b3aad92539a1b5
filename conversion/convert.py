"""`fiftynet convert`: retune a pretrained GPT-2 into a FiftyNet whose attention layers are replaced by spectral
mixers, and measure how much of the teacher's quality comes back.

    fiftynet convert --teacher gpt2 --out gpt2-spectral --keep_attention 5 11 --max_steps 2000 --bf16

Stages (the perplexity on the validation text is measured after each; see docs/conversion.md):
1. exact transplant: every GPT-2 weight is copied into a FiftyNet expressing GPT-2's block;
2. spectral initialization: each replaced layer's mixer starts from the teacher's value and output projections and
   causal filters fitted to the layer's average attention by distance, per head;
3. layer-wise distillation: each mixer learns its attention layer's output from the teacher's inputs (MSE);
4. end-to-end distillation: KL on the teacher's logits plus the LM loss, optionally with LoRA on the MLPs;
5. optionally, Linear weights compressed (`--compress dct|svd|int8`).

OUT gets `model/` (Hub-ready: safetensors, config, remote code, the teacher's tokenizer, a model card with the stage
table), `report.json`, `layerwise/` (the student after stage 3, for `--resume`), `checkpoints/` and TensorBoard logs.
Every TrainingArguments flag applies to the end-to-end stage; several GPUs: `accelerate launch -m conversion.convert`.
"""

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2LMHeadModel,
    HfArgumentParser,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from hub_cards.card import CardRecord, Measurement, hub_model_id, source_name
from modeling_fiftynet import FiftyNetForCausalLM
from modeling_fiftynet.saving import staged_folder
from training.data import DataArguments, LanguageModelingData, load_texts, prepare_data
from training.errors import UsageError, refuse_non_empty
from training.evaluation import collate_blocks, evaluate_blocks
from training import train
from training.lora import LoraArguments, add_lora
from training.tokenizer import from_pretrained

from .compress import compressed_copy
from .distill import DistillationTrainer, LayerwiseDistillation
from .transplant import SPECTRAL_MIXERS, attention_by_distance, spectral_init, transplant_gpt2


@dataclass(kw_only=True)  # keyword-only, so that required fields may follow DataArguments' defaults
class ConvertArguments(DataArguments):
    teacher: str = field(metadata={"help": "a GPT2LMHeadModel folder or Hub id (gpt2, distilgpt2, gpt2-medium, ...)"})
    out: str = field(metadata={"help": "output folder"})
    mixer: str = field(default="spectral_conv", metadata={"help": f"the new mixer: {', '.join(SPECTRAL_MIXERS)}"})
    keep_attention: list[int] = field(
        default_factory=list, metadata={"help": "indices of layers that keep their attention (a hybrid)"}
    )
    block_size: int | None = field(
        default=None, metadata={"help": "tokens per sequence (default: the teacher's n_positions, at most 1024)"}
    )
    calibration_blocks: int = field(default=8, metadata={"help": "blocks of text for the attention profiles"})
    layerwise_steps: int = field(default=200, metadata={"help": "steps of layer-wise distillation (0 skips it)"})
    layerwise_learning_rate: float = field(default=1e-3)
    kl_weight: float = field(default=1.0, metadata={"help": "weight of KL(teacher || student) per token"})
    lm_weight: float = field(default=1.0, metadata={"help": "weight of the language-modelling loss"})
    temperature: float = field(default=1.0, metadata={"help": "softening of both distributions in the KL"})
    lora: bool = field(default=False, metadata={"help": "end-to-end stage: LoRA on the MLPs, the new mixers in full"})
    lora_r: int = field(default=16)
    compress: str | None = field(default=None, metadata={"help": "compress Linear layers at the end: dct, svd, int8"})
    compress_ratio: float | None = field(default=None, metadata={"help": "bytes kept per compressed layer, (0, 1]"})
    compress_modules: str | None = field(default=None, metadata={"help": "e.g. mlp (default: all Linear layers)"})
    resume: bool = field(default=False, metadata={"help": "continue a run in --out: skip the stages it finished"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "convert afresh into a non-empty --out: its earlier run is deleted first"}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resume and self.overwrite_output_dir:
            raise ValueError("--resume continues the run in --out and --overwrite_output_dir replaces it: pass one")


# `fiftynet train`'s defaults, but for distilling: the end-to-end stage; every TrainingArguments flag overrides them.
TRAINING_DEFAULTS = {
    **train.TRAINING_DEFAULTS,
    "output_dir": "unused",  # set to OUT/checkpoints
    "max_steps": 200,
    "per_device_train_batch_size": 8,
    "learning_rate": 5e-4,
    "weight_decay": 0.0,
    "eval_strategy": "no",  # each stage is evaluated on the validation text once it ends
    "save_total_limit": 2,
}


def parse_arguments(argv: list[str] | None) -> tuple[ConvertArguments, TrainingArguments]:
    parser = HfArgumentParser((ConvertArguments, train.TrainerArguments), prog="fiftynet convert", description=__doc__)
    parser.set_defaults(**TRAINING_DEFAULTS)
    try:
        args, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        raise UsageError(" ".join(str(error).split())) from None
    return args, replace(training_args, output_dir=str(Path(args.out) / "checkpoints"))


def load_teacher(name_or_path: str) -> GPT2LMHeadModel:
    teacher = from_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, "teacher", dtype=torch.float32)
    if not isinstance(teacher, GPT2LMHeadModel):
        raise UsageError(
            f"--teacher {name_or_path} is a {type(teacher).__name__}; the conversion takes a GPT2LMHeadModel"
        )
    return teacher.eval()


def student_mixers(args: ConvertArguments, num_layers: int) -> list[str]:
    if args.mixer not in SPECTRAL_MIXERS:
        raise UsageError(f"--mixer {args.mixer!r} is not one of {SPECTRAL_MIXERS}")
    outside = sorted(set(args.keep_attention) - set(range(num_layers)))
    if outside:
        raise UsageError(f"--keep_attention {outside}: the teacher has layers 0 to {num_layers - 1}")
    return ["attention" if layer in args.keep_attention else args.mixer for layer in range(num_layers)]


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
            **details,
        })
        if not self.is_writer:
            return
        self.path.write_text(json.dumps(self.data, indent=2))
        print(f"[convert] {stage}: perplexity {metrics['eval_perplexity']:.3f}, "
              f"bits/byte {metrics['eval_bits_per_byte']:.4f}", file=sys.stderr)

    def table(self) -> str:
        rows = [f"| {e['stage']} | {e['perplexity']:.3f} | {e['bits_per_byte']:.4f} | {e.get('tokens', 0):,} | "
                f"{e.get('wall_seconds', 0):.0f} |" for e in self.data["stages"]]
        return "\n".join(["| stage | perplexity | bits per byte | training tokens | seconds |", "|---|---|---|---|---|",
                          *rows])


def layerwise_distillation(teacher: GPT2LMHeadModel, student: FiftyNetForCausalLM, layers: list[int],
                           data: LanguageModelingData, args: ConvertArguments,
                           training_args: TrainingArguments) -> dict:
    """Stage 3 through the Trainer; returns its step count and final loss."""
    stage_args = replace(
        training_args, output_dir=str(Path(args.out) / "layerwise"), max_steps=args.layerwise_steps,
        learning_rate=args.layerwise_learning_rate, save_strategy="no", eval_strategy="no",
    )
    distillation = LayerwiseDistillation(teacher, student, layers)
    trainer = Trainer(model=distillation, args=stage_args, train_dataset=data.train, data_collator=collate_blocks)
    result = trainer.train()
    student.requires_grad_(True)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"steps": result.global_step, "final_loss": losses[-1] if losses else result.training_loss}


def end_to_end_distillation(teacher: GPT2LMHeadModel, student: FiftyNetForCausalLM, layers: list[int],
                            data: LanguageModelingData, args: ConvertArguments,
                            training_args: TrainingArguments) -> tuple[FiftyNetForCausalLM, int]:
    """Stage 4 through the Trainer (resuming from OUT/checkpoints with --resume); returns the student and steps."""
    model = student
    if args.lora:
        lora = LoraArguments(lora=True, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                             lora_target_modules=["up_proj", "down_proj"],
                             lora_modules_to_save=[f"model.layers.{layer}.mixer" for layer in layers])
        model = add_lora(student, lora)
    trainer = DistillationTrainer(
        model=model, args=training_args, train_dataset=data.train, data_collator=collate_blocks, teacher=teacher,
        kl_weight=args.kl_weight, lm_weight=args.lm_weight, temperature=args.temperature,
    )
    resumable = args.resume and Path(training_args.output_dir).is_dir()
    checkpoint = get_last_checkpoint(training_args.output_dir) if resumable else None
    result = trainer.train(resume_from_checkpoint=checkpoint)
    if args.lora:
        student = model.merge_and_unload()
    return student, result.global_step


def initialized_student(teacher: GPT2LMHeadModel, mixer_types: list[str], replaced: list[int],
                        data: LanguageModelingData, args: ConvertArguments, training_args: TrainingArguments,
                        report: ConversionReport, evaluate) -> FiftyNetForCausalLM:
    """Stages 1 to 3: the transplanted student with the mixers of the `replaced` layers initialized from the
    teacher and distilled layer-wise."""
    started = time.perf_counter()
    student = transplant_gpt2(teacher, mixer_types).to(training_args.device)
    calibration = data.train[: args.calibration_blocks]["input_ids"].to(training_args.device)
    fit_errors = spectral_init(student, teacher, attention_by_distance(teacher, calibration, replaced), replaced)
    report.add("spectral_init", evaluate(student), filter_fit_error=fit_errors,
               wall_seconds=time.perf_counter() - started)
    if args.layerwise_steps > 0:
        started = time.perf_counter()
        result = layerwise_distillation(teacher, student, replaced, data, args, training_args)
        report.add("layerwise", evaluate(student), tokens=result["steps"] * report.tokens_per_step,
                   final_loss=result["final_loss"], wall_seconds=time.perf_counter() - started)
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
    teacher = load_teacher(args.teacher).to(training_args.device)
    tokenizer = from_pretrained(AutoTokenizer.from_pretrained, args.teacher, "the teacher's tokenizer")
    mixer_types = student_mixers(args, teacher.config.n_layer)
    replaced = [layer for layer, mixer in enumerate(mixer_types) if mixer != "attention"]
    block_size = args.block_size or min(1024, teacher.config.n_positions)
    if block_size > teacher.config.n_positions:
        raise UsageError(f"--block_size {block_size} exceeds the teacher's n_positions={teacher.config.n_positions}")
    texts = load_texts(args)
    data = prepare_data(texts, tokenizer, block_size, args.validation_fraction)

    def evaluate(model: PreTrainedModel) -> dict:
        return evaluate_blocks(model, data.validation, data.tokens_per_byte, training_args.per_device_eval_batch_size)

    report = ConversionReport(
        out / "report.json", is_writer=training_args.should_save, teacher=args.teacher, mixer_types=mixer_types,
        data=data.name, block_size=block_size, validation_tokens=len(data.validation) * block_size,
        arguments=asdict(args), tokens_per_step=train.sequences_per_step(training_args) * block_size,
    )
    if not report.has("teacher"):
        report.add("teacher", evaluate(teacher))

    layerwise_dir = out / "layerwise"
    if args.resume and (layerwise_dir / "config.json").is_file():
        student = FiftyNetForCausalLM.from_pretrained(layerwise_dir).to(training_args.device)
    else:
        student = initialized_student(teacher, mixer_types, replaced, data, args, training_args, report, evaluate)
        if training_args.should_save:
            student.save_pretrained(layerwise_dir)

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
    summary = (
        f"Converted from the GPT-2 {source_name(args.teacher)} by `fiftynet convert`: every weight copied, the "
        f"attention of {replaced} of {len(report.data['mixer_types'])} layers replaced by `{args.mixer}` mixers "
        f"initialized from it, then distilled layer-wise and end to end on "
        f"{sum(entry.get('tokens', 0) for entry in stages):,} tokens of {report.data['data']} (blocks of "
        f"{report.data['block_size']} tokens). Validation perplexity after each stage:\n\n{report.table()}"
    )
    dataset_type = args.dataset_name or "text"
    measurements = [
        Measurement(key, name, stages[-1][key], report.data["data"], "validation", dataset_type)
        for key, name in (("perplexity", "Perplexity"), ("bits_per_byte", "Bits per byte"))
    ]
    record = CardRecord(
        model_name=Path(args.out).resolve().name, training_summary=summary, measurements=measurements,
        base_model=hub_model_id(args.teacher), datasets=[args.dataset_name] if args.dataset_name else [],
        num_parameters=student.num_parameters(),
    )
    with staged_folder(folder) as staged:
        student.save_pretrained(staged)
        tokenizer.save_pretrained(staged)
        record.save(staged, student.config)


def main(argv: list[str] | None = None) -> dict:
    return run(*parse_arguments(argv))


if __name__ == "__main__":
    main()
