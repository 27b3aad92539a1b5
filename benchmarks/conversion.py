"""How much of a GPT-2 teacher's quality `fiftynet convert` brings back, within a budget of distillation tokens
given as a fraction of the teacher's own training tokens.

    python -m benchmarks.conversion --teacher gpt2-kjv --output-dir /tmp/conversion --budget 0.05 --keep 2 --bf16

Trains the teacher first if `--teacher` does not exist yet (`conversion.teacher`, with `--teacher-size` and
`--teacher-steps`), then converts it twice, all-spectral and keeping `--keep` evenly spaced attention layers, splitting
the budget between the layer-wise and end-to-end stages (`--layerwise-share`). Writes `results.json` and prints a
markdown table of the validation perplexity after each stage, with a floor for context: the teacher with every
attention layer's output zeroed (its bias kept), i.e. what the MLPs and embeddings alone do without token mixing.
"""

import argparse
import json
from pathlib import Path

import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from conversion import convert, teacher
from training.corpus import load_corpus
from training.evaluation import evaluate_text


@torch.no_grad()
def without_mixing(folder: Path, block_size: int, batch_size: int) -> dict:
    """Validation metrics of the teacher whose attention layers output only their bias."""
    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    for block in model.transformer.h:
        block.attn.c_proj.weight.zero_()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return evaluate_text(model, [load_corpus("validation")], tokenizer, block_size, batch_size)


def budget_steps(tokens: int, batch_size: int, block_size: int) -> int:
    return max(1, tokens // (batch_size * block_size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--teacher-size", default="tiny")
    parser.add_argument("--teacher-steps", type=int, default=600)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--budget", type=float, default=0.05, help="distillation tokens / teacher training tokens")
    parser.add_argument("--layerwise-share", type=float, default=0.25, help="share of the budget for stage 3")
    parser.add_argument("--keep", type=int, default=1, help="attention layers the hybrid keeps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--mixer", default="spectral_conv")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    precision = ["--bf16"] if args.bf16 else []

    if not (args.teacher / "teacher_report.json").is_file():
        teacher.main(["--size", args.teacher_size, "--output_dir", str(args.teacher), "--max_steps",
                      str(args.teacher_steps), *precision])
    teacher_report = json.loads((args.teacher / "teacher_report.json").read_text())
    teacher_config = json.loads((args.teacher / "config.json").read_text())
    block_size, num_layers = teacher_config["n_positions"], teacher_config["n_layer"]
    budget = int(args.budget * teacher_report["training_tokens"])
    layerwise_steps = budget_steps(int(args.layerwise_share * budget), args.batch_size, block_size)
    end_to_end_steps = budget_steps(budget - layerwise_steps * args.batch_size * block_size, args.batch_size, block_size)
    # Evenly spaced kept layers, the last one included (e.g. 5 and 11 of 12).
    kept = [round((index + 1) * num_layers / args.keep) - 1 for index in range(args.keep)]

    results = {"teacher": teacher_report, "budget_tokens": budget,
               "no_mixing": without_mixing(args.teacher, block_size, args.batch_size)}
    for name, keep in (("all_spectral", []), (f"hybrid_keep_{args.keep}", kept)):
        report = convert.main([
            "--teacher", str(args.teacher), "--out", str(args.output_dir / name), "--mixer", args.mixer,
            "--layerwise_steps", str(layerwise_steps), "--max_steps", str(end_to_end_steps),
            "--per_device_train_batch_size", str(args.batch_size), "--save_strategy", "no", "--report_to", "none",
            *(["--keep_attention", *map(str, keep)] if keep else []), *precision,
        ])
        results[name] = report
    (args.output_dir / "results.json").write_text(json.dumps(results, indent=2))

    print(f"teacher: {teacher_report['parameters']:,} parameters, {teacher_report['training_tokens']:,} training "
          f"tokens; budget {budget:,} tokens ({args.budget:.0%})\n")
    print("| student | stage | perplexity | x teacher | tokens |\n|---|---|---|---|---|")
    teacher_perplexity = results["all_spectral"]["stages"][0]["perplexity"]
    print(f"| no token mixing (floor) | - | {results['no_mixing']['eval_perplexity']:.2f} | "
          f"{results['no_mixing']['eval_perplexity'] / teacher_perplexity:.3f} | 0 |")
    for name in ("all_spectral", f"hybrid_keep_{args.keep}"):
        stages = results[name]["stages"]
        for entry in stages:
            print(f"| {name} | {entry['stage']} | {entry['perplexity']:.2f} | "
                  f"{entry['perplexity'] / stages[0]['perplexity']:.3f} | {entry.get('tokens', 0):,} |")


if __name__ == "__main__":
    main()
