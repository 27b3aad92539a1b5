"""How much of a GPT-2 teacher's quality `fiftynet convert` brings back within a distillation budget, against a
control that mixes no tokens at all.

    python -m benchmarks.conversion --eval-text /usr/lib/python3.11/LICENSE.txt     # 2 CPU cores, see docs

Trains the teacher first when `--teacher` holds none (`python -m fiftynet.conversion.teacher`, the `cpu` preset unless
`--teacher-size` says otherwise). The budget is `--budget` times the teacher's own training tokens, split between the
layer-wise and the end-to-end stage (`--layerwise-share`). It then converts the teacher:

1. every layer spectral, once for each `--mixers` and `--filter-fits` entry (each is reported; the best is
   `all_spectral_ratio`);
2. a hybrid with the best of those, keeping attention in the `--keep` layers (default: a quarter) whose replacement
   costs the most perplexity (`--keep_attention auto`);
3. the control: the same all-spectral student with its mixers frozen at zero weight, trained on the whole budget end
   to end, so the report shows how much of the recovery is the MLPs relearning rather than the spectral mixers.

Writes OUTPUT_DIR/report.json with `teacher_perplexity`, `floor_ratio` (the teacher without token mixing, i.e. the
control before training, over the teacher), `all_spectral_ratio`, `hybrid_ratio`, `control_ratio` (final
perplexities over the teacher's), `budget_fraction` (distillation tokens over the teacher's), the teacher's report
and every run's stages; and OUTPUT_DIR/report.md, its tables. The conversions themselves go to OUTPUT_DIR/runs.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

from fiftynet.conversion import convert, teacher
from fiftynet.conversion.transplant import FILTER_FITS, SPECTRAL_MIXERS


def final_perplexity(run: dict) -> float:
    return run["stages"][-1]["perplexity"]


def markdown(report: dict) -> str:
    """The report's summary and stage tables."""
    teacher_perplexity = report["teacher_perplexity"]
    text = "eval_text_perplexity" in report["runs"]["control"]["stages"][0]
    lines = [
        f"Teacher: {report['teacher']['parameters']:,} parameters, {report['teacher']['training_tokens']:,} training "
        f"tokens in {report['teacher'].get('training_wall_seconds', 0) / 60:.0f} min; validation perplexity "
        f"{teacher_perplexity:.2f}; without token mixing {report['floor_ratio']:.3f}x. Budget: "
        f"{report['budget_tokens']:,} tokens ({report['budget_fraction']:.1%} of the teacher's).",
        "",
        "| run | stage | perplexity | x teacher |" + (" --eval-text perplexity | x teacher |" if text else "")
        + " tokens | seconds |",
        "|---" * (6 + 2 * text) + "|",
    ]
    text_teacher = report["runs"]["control"]["stages"][0].get("eval_text_perplexity")
    for name, run in report["runs"].items():
        for entry in run["stages"][1:]:
            perplexity = entry["perplexity"]
            cells = [name, entry["stage"], f"{perplexity:.2f}", f"{perplexity / teacher_perplexity:.3f}"]
            if text:
                cells += [f"{entry['eval_text_perplexity']:.1f}", f"{entry['eval_text_perplexity'] / text_teacher:.3f}"]
            cells += [f"{entry.get('tokens', 0):,}", f"{entry.get('wall_seconds', 0):.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results/conversion_cpu"))
    parser.add_argument("--teacher", type=Path,
                        help="a teacher folder, trained there if empty (default: OUTPUT_DIR/teacher)")
    parser.add_argument("--teacher-size", default="cpu")
    parser.add_argument("--teacher-steps", type=int, help="(default: the teacher script's)")
    parser.add_argument("--budget", type=float, default=0.05, help="distillation tokens / teacher training tokens")
    parser.add_argument("--layerwise-share", type=float, default=0.5, help="share of the budget for stage 3")
    parser.add_argument("--keep", type=int, help="attention layers the hybrid keeps (default: a quarter, at least 1)")
    parser.add_argument("--mixers", nargs="+", default=["spectral_conv"], choices=SPECTRAL_MIXERS)
    parser.add_argument("--filter-fits", nargs="+", default=["outputs"], choices=FILTER_FITS)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, help="(default: the teacher's n_positions)")
    parser.add_argument("--calibration-blocks", type=int, default=8)
    parser.add_argument("--data", nargs="+", help="training text files (default: the bundled corpus)")
    parser.add_argument("--validation-data", nargs="+", help="validation text files (default: the corpus's split)")
    parser.add_argument("--eval-text", nargs="+", help="text files measured after every stage too")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--overwrite", action="store_true", help="replace the conversions of an earlier run")
    args = parser.parse_args(argv)
    if not (args.budget > 0 and 0 <= args.layerwise_share < 1):
        parser.error("--budget must be positive and --layerwise-share in [0, 1)")
    runs_dir, teacher_dir = args.output_dir / "runs", args.teacher or args.output_dir / "teacher"
    if not args.overwrite and runs_dir.is_dir() and any(runs_dir.iterdir()):
        parser.error(f"{runs_dir} holds an earlier run's conversions: pass --overwrite to replace them")

    data = [*(["--data", *args.data] if args.data else []),
            *(["--validation_data", *args.validation_data] if args.validation_data else [])]
    if not (teacher_dir / "teacher_report.json").is_file():
        steps = ["--max_steps", str(args.teacher_steps)] if args.teacher_steps else []
        teacher.main(["--size", args.teacher_size, "--output_dir", str(teacher_dir), *steps,
                      *(["--bf16"] if args.bf16 else []), *data])
    teacher_report = json.loads((teacher_dir / "teacher_report.json").read_text())
    teacher_config = json.loads((teacher_dir / "config.json").read_text())
    block_size = args.block_size or teacher_config["n_positions"]
    budget = int(args.budget * teacher_report["training_tokens"])
    tokens_per_step = args.batch_size * block_size
    layerwise_steps = int(args.layerwise_share * budget) // tokens_per_step
    end_to_end_steps = budget // tokens_per_step - layerwise_steps
    if end_to_end_steps < 1:
        parser.error(f"--budget {args.budget} buys {budget:,} tokens, less than the end-to-end stage's one step of "
                     f"{tokens_per_step:,} after the layer-wise share")

    def conversion(name: str, *options: str, layerwise: int = layerwise_steps, end_to_end: int = end_to_end_steps):
        return convert.main([
            "--teacher", str(teacher_dir), "--out", str(runs_dir / name), "--block_size", str(block_size),
            "--calibration_blocks", str(args.calibration_blocks), "--layerwise_steps", str(layerwise),
            "--max_steps", str(end_to_end), "--per_device_train_batch_size", str(args.batch_size),
            "--save_strategy", "no", "--report_to", "none", *(["--bf16"] if args.bf16 else []),
            *data, *(["--eval_text", *args.eval_text] if args.eval_text else []), *options,
        ])

    if args.overwrite:  # only once every argument has been checked
        shutil.rmtree(runs_dir, ignore_errors=True)
    started, runs = time.perf_counter(), {}
    for mixer in args.mixers:
        for fit in args.filter_fits:
            runs[f"all_spectral ({mixer}, fit {fit})"] = conversion(
                f"all_{mixer}_{fit}", "--mixer", mixer, "--filter_fit", fit)
    best = min(runs, key=lambda name: final_perplexity(runs[name]))
    best_options = ["--mixer", runs[best]["arguments"]["mixer"], "--filter_fit", runs[best]["arguments"]["filter_fit"]]
    keep = ["--auto_keep", str(args.keep)] if args.keep else []
    runs["hybrid (keep_attention auto)"] = conversion("hybrid", *best_options, "--keep_attention", "auto", *keep)
    runs["control"] = conversion("control", *best_options, "--control", layerwise=0,
                                 end_to_end=layerwise_steps + end_to_end_steps)

    teacher_perplexity = runs["control"]["stages"][0]["perplexity"]
    spent = (layerwise_steps + end_to_end_steps) * tokens_per_step
    report = {
        "teacher_perplexity": teacher_perplexity,
        "floor_ratio": runs["control"]["stages"][1]["perplexity"] / teacher_perplexity,
        "all_spectral_ratio": final_perplexity(runs[best]) / teacher_perplexity,
        "hybrid_ratio": final_perplexity(runs["hybrid (keep_attention auto)"]) / teacher_perplexity,
        "control_ratio": final_perplexity(runs["control"]) / teacher_perplexity,
        "budget_fraction": spent / teacher_report["training_tokens"],
        "budget_tokens": spent,
        "best_all_spectral": best,
        "hybrid_kept_layers": [index for index, mixer in enumerate(runs["hybrid (keep_attention auto)"]["mixer_types"])
                               if mixer == "attention"],
        "layerwise_steps": layerwise_steps,
        "end_to_end_steps": end_to_end_steps,
        "batch_size": args.batch_size,
        "block_size": block_size,
        "eval_text": args.eval_text,
        "wall_seconds": time.perf_counter() - started,
        "teacher": teacher_report,
        "runs": {name: {"stages": run["stages"], "mixer_types": run["mixer_types"],
                        **({"layer_importance": run["layer_importance"]} if "layer_importance" in run else {})}
                 for name, run in runs.items()},
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.output_dir / "report.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
