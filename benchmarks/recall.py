"""Multi-query associative recall (MQAR): can a mixer look up a value it saw earlier in the context?

    python -m benchmarks.recall --output-dir benchmarks/results/recall      # 25 minutes on 2 CPU cores, see docs

The task is Zoology's probe of gated convolutions against attention (Arora et al., "Zoology: Measuring and Improving
Recall in Efficient Language Models", arXiv 2312.04927). Each sequence opens with `length // 16` key-value pairs
`k1 v1 k2 v2 ...` (keys and values drawn without repetition from two disjoint halves of the vocabulary); every key is
then queried once, at a random place in the rest of the sequence, as the two tokens `k v`; every other position holds
token 0. A model must predict `v` after `k`, which no statistics of the training set can do: the pairs are new in
every sequence. Accuracy counts those predictions only, on sequences the model never trained on.

Every causal FiftyNet mixer as a two-block stack, the hybrid (`spectral_conv`, then attention), and
transformers' GPT-2 with SDPA attention train with the same recipe at every width. As in Zoology, one model per width
learns all lengths at once: each step draws a fresh batch of one length, cycling through `--lengths`, and every batch
holds the same number of tokens, so the same number of queries. A plain PyTorch loop does it (AdamW, warm-up then
cosine decay), since no batch is ever seen twice and the lengths alternate. The runs are independent and go to
`--workers` processes that share the CPU threads. Writes OUTPUT_DIR/results.json, results.md (the table) and
recall.png (accuracy against width, one panel per length, as Zoology's figure).
"""

import argparse
import json
import multiprocessing
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import torch
import transformers
from transformers import PreTrainedModel, get_cosine_schedule_with_warmup, set_seed

from benchmarks.baselines import attention_baseline
from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM

# name -> (mixers repeated over the layers, other FiftyNetConfig fields)
FIFTYNET_MODELS = {
    "spectral_conv": (["spectral_conv"], {}),
    "nfo": (["nfo"], {}),
    "fftnet": (["fftnet"], {}),
    "attention (rope)": (["attention"], dict(position_encoding="rope")),
    "hybrid spectral_conv/attention": (["spectral_conv", "attention"], dict(position_encoding="rope")),
}
BASELINES = {"gpt2 (sdpa)": "gpt2"}
MODELS = (*FIFTYNET_MODELS, *BASELINES)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
BLANK = 0  # the token of every position that is neither a pair nor a query
TOKENS_PER_PAIR = 16  # a sequence of length L holds L // 16 pairs


def mqar(num_sequences: int, length: int, vocab_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """`num_sequences` MQAR sequences of `length` tokens drawn with `generator`: `input_ids` and `labels` (the value
    after each query key, -100 elsewhere), both `(num_sequences, length)` int64.

    Raises:
        ValueError: when the vocabulary cannot hold `length // 16` distinct keys and values.
    """
    pairs = length // TOKENS_PER_PAIR
    half = (vocab_size - 1) // 2  # keys are 1 .. half, values half + 1 .. 2 * half
    if not 1 <= pairs <= half:
        raise ValueError(f"length {length} asks for {pairs} pairs, but the vocabulary ({vocab_size}) holds 1 to {half}")
    # Distinct keys and values per sequence: the argsort of uniform noise is a random permutation of each row.
    keys = 1 + torch.rand(num_sequences, half, generator=generator).argsort(-1)[:, :pairs]
    values = 1 + half + torch.rand(num_sequences, half, generator=generator).argsort(-1)[:, :pairs]
    input_ids = torch.full((num_sequences, length), BLANK)
    input_ids[:, 0 : 2 * pairs : 2] = keys
    input_ids[:, 1 : 2 * pairs : 2] = values
    # Each key is queried once, in a distinct two-token slot after the pairs, in random order.
    slots = torch.rand(num_sequences, (length - 2 * pairs) // 2, generator=generator).argsort(-1)[:, :pairs]
    query_positions = 2 * pairs + 2 * slots
    input_ids.scatter_(1, query_positions, keys)
    input_ids.scatter_(1, query_positions + 1, values)
    labels = torch.full_like(input_ids, -100)
    labels.scatter_(1, query_positions + 1, values)  # the model predicts position p + 1 from position p
    return {"input_ids": input_ids, "labels": labels}


def build_model(name: str, hidden_size: int, max_length: int, args: argparse.Namespace) -> PreTrainedModel:
    """A `args.num_layers`-block model `hidden_size` wide, with heads of `args.head_dim` channels, for sequences of
    up to `max_length` tokens."""
    num_heads = max(1, hidden_size // args.head_dim)
    no_special_tokens = dict(pad_token_id=None, bos_token_id=None, eos_token_id=None)
    if name in BASELINES:
        return attention_baseline(BASELINES[name], args.vocab_size, hidden_size, args.num_layers, num_heads,
                                  max_length, **no_special_tokens)
    pattern, fields = FIFTYNET_MODELS[name]
    config = FiftyNetConfig(
        vocab_size=args.vocab_size, hidden_size=hidden_size, num_hidden_layers=args.num_layers,
        num_attention_heads=num_heads, mixer_types=[pattern[i % len(pattern)] for i in range(args.num_layers)],
        # nfo/fftnet filters reach back over the whole sequence, with every frequency learned
        fourier_kernel_size=max_length, fourier_modes=max_length // 2 + 1, **no_special_tokens, **fields,
    )
    return FiftyNetForCausalLM(config)


@torch.no_grad()
def recall_accuracy(model: PreTrainedModel, data: dict[str, torch.Tensor], batch_size: int) -> float:
    """Share of query values the model predicts exactly (argmax)."""
    model.eval()
    correct = total = 0
    for start in range(0, len(data["input_ids"]), batch_size):
        input_ids = data["input_ids"][start : start + batch_size].to(model.device)
        targets = data["labels"][start : start + batch_size, 1:].to(model.device)
        predictions = model(input_ids=input_ids, use_cache=False).logits[:, :-1].argmax(-1)
        queried = targets != -100
        correct += (predictions[queried] == targets[queried]).sum().item()
        total += queried.sum().item()
    return correct / total


def train_and_measure(name: str, hidden_size: int, args: argparse.Namespace) -> list[dict]:
    """Trains one model on fresh MQAR batches of every length; returns its accuracy per length on test sequences."""
    torch.set_num_threads(args.threads_per_worker)
    set_seed(args.seed)
    model = build_model(name, hidden_size, max(args.lengths), args).to(DEVICE)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.1)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, args.max_steps // 20), args.max_steps)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    model.train()
    for step in range(args.max_steps):
        length = args.lengths[step % len(args.lengths)]
        batch = mqar(max(1, args.batch_tokens // length), length, args.vocab_size, generator)
        loss = model(**{key: value.to(DEVICE) for key, value in batch.items()}).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    seconds = time.perf_counter() - start
    test_generator = torch.Generator().manual_seed(args.seed + 1)  # another stream: sequences never trained on
    return [
        {"model": name, "hidden_size": hidden_size, "length": length, "pairs": length // TOKENS_PER_PAIR,
         "accuracy": recall_accuracy(model, mqar(args.test_sequences, length, args.vocab_size, test_generator),
                                     max(1, args.batch_tokens // length)),
         "parameters": model.num_parameters(), "train_seconds": seconds}
        for length in args.lengths
    ]


def table(results: list[dict], args: argparse.Namespace) -> str:
    """Accuracy in percent, one row per model, one column per (length, width)."""
    columns = [(length, width) for length in args.lengths for width in args.widths]
    header = [f"L={length}, d={width}" for length, width in columns]
    rows = ["| model | " + " | ".join(header) + " |", "|---|" + "---:|" * len(columns)]
    accuracy = {(r["model"], r["length"], r["hidden_size"]): r["accuracy"] for r in results}
    for name in args.models:
        cells = [f"{accuracy[name, length, width]:.1%}" for length, width in columns]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def plot(results: list[dict], args: argparse.Namespace, path: Path) -> None:
    figure, axes = plt.subplots(1, len(args.lengths), figsize=(4 * len(args.lengths), 3.6), sharey=True, squeeze=False)
    for axis, length in zip(axes[0], args.lengths):
        for name in args.models:
            runs = sorted((r["hidden_size"], r["accuracy"]) for r in results
                          if r["model"] == name and r["length"] == length)
            axis.plot(*zip(*runs), marker="o", label=name)
        axis.set_xscale("log", base=2)
        axis.set_xticks(args.widths, [str(width) for width in args.widths])
        axis.set_title(f"length {length}, {length // TOKENS_PER_PAIR} pairs")
        axis.set_xlabel("model width")
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("MQAR accuracy")
    axes[0][0].set_ylim(-0.02, 1.02)
    figure.legend(*axes[0][0].get_legend_handles_labels(), loc="lower center", ncol=3, fontsize=8)
    figure.tight_layout(rect=(0, 0.14, 1, 1))  # room for the legend below the panels
    figure.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results/recall"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--widths", nargs="+", type=int, default=[32, 64, 128])
    parser.add_argument("--lengths", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--head-dim", type=int, default=32, help="channels per attention head")
    parser.add_argument("--vocab-size", type=int, default=65, help="token 0, then equal halves of keys and values")
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--batch-tokens", type=int, default=2048, help="tokens per training batch at every length")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--test-sequences", type=int, default=256, help="per length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="runs trained at once")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in OUTPUT_DIR")
    args = parser.parse_args(argv)
    if (args.output_dir / "results.json").exists() and not args.overwrite:
        parser.error(f"{args.output_dir} already holds a recall sweep; pass --overwrite to replace it")
    args.threads_per_worker = max(1, torch.get_num_threads() // args.workers)
    for length in args.lengths:  # a bad length or vocabulary fails before any training
        try:
            mqar(1, length, args.vocab_size, torch.Generator())
        except ValueError as error:
            parser.error(str(error))
    command = "python -m benchmarks.recall " + shlex.join(sys.argv[1:] if argv is None else argv)

    start = time.perf_counter()
    runs = [(name, width) for width in args.widths for name in args.models]
    # "spawn": fresh interpreters, whatever threads torch has started in this one
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(train_and_measure, *run, args) for run in runs]
        results = []
        for (name, width), future in zip(runs, futures):
            results += future.result()
            accuracies = " ".join(f"{r['accuracy']:.3f}" for r in results[-len(args.lengths):])
            print(f"{name}, width {width}: accuracy {accuracies} ({results[-1]['train_seconds']:.0f} s)", flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    environment = {
        "command": command, "torch": torch.__version__, "transformers": transformers.__version__,
        "device": "cuda: " + torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "total_seconds": time.perf_counter() - start,
        "settings": {key: str(value) for key, value in vars(args).items()},
    }
    (args.output_dir / "results.json").write_text(json.dumps({"environment": environment, "runs": results}, indent=2))
    markdown = table(results, args)
    (args.output_dir / "results.md").write_text(markdown)
    plot(results, args, args.output_dir / "recall.png")
    print(markdown)


if __name__ == "__main__":
    main()
