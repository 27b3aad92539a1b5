"""Train every causal FiftyNet mixer and transformers' attention models of the same width and depth with the same
budget, then compare.

    python -m benchmarks.compare_mixers --output-dir benchmarks/results/compare_mixers

Each model sees the same byte-level blocks of the bundled corpus in the same order, with the same optimizer and
schedule, through `transformers.Trainer`. The baselines are transformers' own `GPT2LMHeadModel` and
`LlamaForCausalLM` with PyTorch SDPA attention (see `benchmarks.baselines`); FiftyNet's own attention stack runs
with rotary and with learned positions, which isolates what positions do to attention at this budget. Writes
`results.json`, `results.md` (the table) and `validation_curves.png`.
"""

import argparse
import json
import math
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedModel, Trainer, set_seed

from benchmarks.baselines import attention_baseline
from fiftynet.training.corpus import load_corpus
from fiftynet.training.quickstart import packed_blocks, training_arguments
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM

# name -> (mixers repeated over the layers, other FiftyNetConfig fields)
FIFTYNET_VARIANTS = {
    "spectral_conv": (["spectral_conv"], {}),
    "nfo": (["nfo"], {}),
    "fftnet": (["fftnet"], {}),
    "spectral_conv + glu gate": (["spectral_conv"], dict(mixer_gate="glu")),
    "hybrid spectral_conv/attention": (["spectral_conv", "attention"], dict(position_encoding="rope")),
    "attention (rope)": (["attention"], dict(position_encoding="rope")),
    "attention (learned positions)": (["attention"], dict(position_encoding="learned")),
}
# name -> `benchmarks.baselines` model
BASELINES = {"gpt2 (sdpa)": "gpt2", "llama (sdpa)": "llama"}


def build_model(name: str, args: argparse.Namespace, tokenizer: FiftyNetByteTokenizer) -> PreTrainedModel:
    if name in BASELINES:
        return attention_baseline(
            BASELINES[name], len(tokenizer), args.hidden_size, args.num_layers, args.num_heads, args.block_size,
            pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    pattern, fields = FIFTYNET_VARIANTS[name]
    config = FiftyNetConfig(
        vocab_size=len(tokenizer), hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads, max_position_embeddings=args.block_size,
        mixer_types=[pattern[i % len(pattern)] for i in range(args.num_layers)], **fields,
    )
    return FiftyNetForCausalLM(config)


def train(model: PreTrainedModel, train_set, curve_set, validation_set, tokenizer, args) -> dict:
    """Trains with the shared recipe; returns the validation curve, the final validation loss and the speed."""
    with tempfile.TemporaryDirectory() as trainer_dir:
        training_args = training_arguments(
            args, trainer_dir, eval_strategy="steps", eval_steps=args.eval_every, logging_steps=args.eval_every,
            disable_tqdm=True,
        )
        trainer = Trainer(
            model=model, args=training_args, train_dataset=train_set, eval_dataset=curve_set,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        )
        train_metrics = trainer.train().metrics
        curve = [(entry["step"], entry["eval_loss"]) for entry in trainer.state.log_history if "eval_loss" in entry]
        final_loss = trainer.evaluate(validation_set)["eval_loss"]
    return {
        "validation_bits_per_byte": final_loss / math.log(2),
        "curve_bits_per_byte": [(step, loss / math.log(2)) for step, loss in curve],
        "train_tokens_per_second": args.max_steps * args.batch_size * args.block_size / train_metrics["train_runtime"],
        "parameters": model.num_parameters(),
    }


def write_report(results: dict, args: argparse.Namespace) -> None:
    args.output_dir.mkdir(parents=True, exist_ok=True)
    environment = {
        "torch": torch.__version__,
        "device": "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "settings": {key: str(value) for key, value in vars(args).items()},
    }
    (args.output_dir / "results.json").write_text(json.dumps({"environment": environment, "models": results}, indent=2))

    rows = ["| model | validation bits/byte | parameters | training tokens/s |", "|---|---:|---:|---:|"]
    for name, result in results.items():
        rows.append(f"| {name} | {result['validation_bits_per_byte']:.3f} | {result['parameters'] / 1e6:.2f}M | "
                    f"{result['train_tokens_per_second']:,.0f} |")
    (args.output_dir / "results.md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, result in results.items():
        steps, bits = zip(*result["curve_bits_per_byte"])
        axes.plot(steps, bits, marker="o", markersize=3, label=name)
    axes.set_xlabel("training step")
    axes.set_ylabel(f"validation bits per byte ({args.curve_blocks} blocks)")
    axes.set_title(f"{args.hidden_size} wide, {args.num_layers} layers, {args.max_steps} steps x {args.batch_size} "
                   f"x {args.block_size} bytes")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(args.output_dir / "validation_curves.png", dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results/compare_mixers"))
    parser.add_argument("--models", nargs="+", default=[*FIFTYNET_VARIANTS, *BASELINES],
                        choices=[*FIFTYNET_VARIANTS, *BASELINES])
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=6)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--curve-blocks", type=int, default=64, help="validation blocks scored along the way")
    parser.add_argument("--validation-blocks", type=int, default=None, help="validation blocks scored at the end "
                        "(default all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    tokenizer = FiftyNetByteTokenizer()
    train_set = packed_blocks(tokenizer(load_corpus("train"))["input_ids"], args.block_size)
    validation_set = packed_blocks(tokenizer(load_corpus("validation"))["input_ids"], args.block_size)
    curve_set = validation_set.select(range(min(args.curve_blocks, len(validation_set))))
    if args.validation_blocks is not None:
        validation_set = validation_set.select(range(min(args.validation_blocks, len(validation_set))))
    results = {}
    for name in args.models:
        set_seed(args.seed)
        model = build_model(name, args, tokenizer)
        results[name] = train(model, train_set, curve_set, validation_set, tokenizer, args)
        print(f"{name}: {results[name]['validation_bits_per_byte']:.3f} bits/byte, "
              f"{results[name]['train_tokens_per_second']:,.0f} tokens/s")
    write_report(results, args)


if __name__ == "__main__":
    main()
