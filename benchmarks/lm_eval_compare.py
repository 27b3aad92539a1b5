"""Train a FiftyNet and a GPT-2 of the same width and depth on the bundled corpus, then score both with EleutherAI's
lm-evaluation-harness on the local KJV tasks of `benchmarks/lm_eval_tasks`:

    python -m benchmarks.lm_eval_compare --output-dir benchmarks/results/lm_eval_compare

Run it from the repository root: the tasks' `data_files` are relative to it. Both models use the byte tokenizer, see
the same blocks of the train split in the same order with the same recipe through `transformers.Trainer`, and are
saved as folders that `lm_eval --model hf --model_args pretrained=DIR,trust_remote_code=True` loads (in
`OUTPUT_DIR/models/`). lm-eval sees at most `--block-size` tokens of context for both: the length they trained on.
Writes `results.json` and `results.md` (the table, with context-free baselines computed from the train split).
"""

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import lm_eval
import torch
import transformers
from lm_eval.tasks import TaskManager
from transformers import DataCollatorForLanguageModeling, PreTrainedModel, Trainer, set_seed

from benchmarks.baselines import attention_baseline
from benchmarks.lm_eval_tasks import build
from fiftynet.training.corpus import load_corpus
from fiftynet.training.data import packed_blocks
from fiftynet.training.quickstart import training_arguments, unigram_bits_per_byte
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


MODELS = ("fiftynet", "gpt2")
REPO_ROOT = Path(__file__).resolve().parents[1]
TASK_DIR = build.TASK_DIR
# (task, lm-eval metric, column header, format) of the table's lm-eval columns
COLUMNS = [
    ("kjv_cloze", "acc", "cloze acc", "{:.1%}"),
    ("kjv_cloze", "acc_norm", "cloze acc_norm", "{:.1%}"),
    ("kjv_verse_end", "exact_match", "verse end exact match", "{:.1%}"),
    ("kjv_verse_perplexity", "bits_per_byte", "verse bits/byte", "{:.3f}"),
]
TASKS = list(dict.fromkeys(task for task, *_ in COLUMNS))


def build_model(name: str, args: argparse.Namespace, tokenizer: FiftyNetByteTokenizer) -> PreTrainedModel:
    """The default FiftyNet, or transformers' GPT-2 with SDPA attention, `args.hidden_size` wide and
    `args.num_layers` deep."""
    special_ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    if name == "gpt2":
        return attention_baseline(name, len(tokenizer), args.hidden_size, args.num_layers, args.num_heads,
                                  args.block_size, **special_ids)
    config = FiftyNetConfig(vocab_size=len(tokenizer), hidden_size=args.hidden_size, num_hidden_layers=args.num_layers,
                            max_position_embeddings=args.block_size, **special_ids)
    return FiftyNetForCausalLM(config)


def train(model: PreTrainedModel, train_set, validation_set, tokenizer, args: argparse.Namespace) -> dict:
    """Trains with the quickstart's recipe; returns the validation bits per byte and the training time."""
    with tempfile.TemporaryDirectory() as trainer_dir:
        trainer = Trainer(
            model=model, args=training_arguments(args, trainer_dir, disable_tqdm=True), train_dataset=train_set,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        )
        train_seconds = trainer.train().metrics["train_runtime"]
        # One token is one byte, so nats per token / ln 2 is bits per byte.
        bits_per_byte = trainer.evaluate(validation_set)["eval_loss"] / math.log(2)
    return {"parameters": model.num_parameters(), "train_seconds": train_seconds,
            "validation_bits_per_byte": bits_per_byte}


def lm_eval_scores(folder: Path, args: argparse.Namespace) -> dict:
    """Runs lm-eval's `hf` model on the saved folder; returns {task: {metric: value}} and the number of items."""
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(folder), "trust_remote_code": True, "max_length": args.block_size},
        tasks=TASKS, task_manager=TaskManager(include_path=str(TASK_DIR)), batch_size=args.eval_batch_size,
        device="cuda" if torch.cuda.is_available() else "cpu", limit=args.limit,
    )
    scores = {task: {} for task in TASKS}
    for task, metric, *_ in COLUMNS:
        scores[task][metric] = results["results"][task][f"{metric},none"]  # "none": lm-eval's name for no filter
    scores["samples"] = {task: results["n-samples"][task]["effective"] for task in TASKS}
    return scores


def baselines(items: list[dict], train_text: str) -> dict:
    """Scores that need no context, from the train split: the choice that most often ends a train verse, the most
    frequent verse-ending word as every generation, and a unigram byte model's bits per byte on the verses."""
    last_words = Counter(item["answer"] for item in build.verse_items(train_text))
    most_frequent = last_words.most_common(1)[0][0]
    picks = [max(item["choices"], key=lambda choice: last_words[choice]) for item in items]
    verses = "".join(item["verse"] for item in items).encode("utf-8")
    return {
        "kjv_cloze": {"acc": sum(pick == item["answer"] for pick, item in zip(picks, items)) / len(items),
                      "chance": 1 / build.NUM_CHOICES},
        "kjv_verse_end": {"exact_match": sum(item["answer"] == most_frequent for item in items) / len(items),
                          "word": most_frequent},
        "kjv_verse_perplexity": {"bits_per_byte": unigram_bits_per_byte(train_text.encode("utf-8"), verses)},
    }


def table(results: dict, reference: dict) -> str:
    """The markdown table: one row per model, then the context-free baselines."""
    header = ["model", "parameters", "training s", "validation bits/byte", *(column[2] for column in COLUMNS)]
    rows = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, result in results.items():
        cells = [name, f"{result['parameters'] / 1e6:.2f}M", f"{result['train_seconds']:.0f}",
                 f"{result['validation_bits_per_byte']:.3f}"]
        cells += [style.format(result[task][metric]) for task, metric, _, style in COLUMNS]
        rows.append("| " + " | ".join(cells) + " |")
    chance = f"{reference['kjv_cloze']['chance']:.1%}"
    context_free = [f"{reference['kjv_cloze']['acc']:.1%}", "", f"{reference['kjv_verse_end']['exact_match']:.1%}",
                    f"{reference['kjv_verse_perplexity']['bits_per_byte']:.3f}"]
    rows.append(f"| chance | | | | {chance} | {chance} | | |")
    rows.append("| context-free baseline (train split) | | | | " + " | ".join(context_free) + " |")
    return "\n".join(rows) + "\n"


def write_report(results: dict, reference: dict, args: argparse.Namespace, command: str, total_seconds: float) -> None:
    environment = {
        "command": command,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "lm_eval": lm_eval.__version__,
        "device": "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "total_seconds": total_seconds,
        "settings": {key: str(value) for key, value in vars(args).items()},
    }
    report = {"environment": environment, "models": results, "baselines": reference}
    (args.output_dir / "results.json").write_text(json.dumps(report, indent=2))
    markdown = table(results, reference)
    (args.output_dir / "results.md").write_text(markdown)
    print(markdown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results/lm_eval_compare"))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--num-layers", type=int, default=4)
    parser.add_argument("--num-heads", type=int, default=6, help="GPT-2's attention heads")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation-blocks", type=int, default=None, help="validation blocks scored (default all)")
    parser.add_argument("--eval-batch-size", type=int, default=32, help="lm-eval's batch size")
    parser.add_argument("--limit", type=int, default=None, help="items per task (default all)")
    args = parser.parse_args(argv)
    if Path.cwd().resolve() != REPO_ROOT:
        parser.error(f"run from the repository root ({REPO_ROOT}): the tasks' data_files are relative to it")
    command = "python -m benchmarks.lm_eval_compare " + shlex.join(sys.argv[1:] if argv is None else argv)

    start = time.time()
    tokenizer = FiftyNetByteTokenizer()
    train_text = load_corpus("train")
    train_set = packed_blocks(tokenizer(train_text)["input_ids"], args.block_size)
    validation_set = packed_blocks(tokenizer(load_corpus("validation"))["input_ids"], args.block_size)
    if args.validation_blocks is not None:
        validation_set = validation_set.select(range(min(args.validation_blocks, len(validation_set))))
    args.output_dir.mkdir(parents=True, exist_ok=True)

    results = {}
    for name in args.models:
        set_seed(args.seed)
        model = build_model(name, args, tokenizer)
        results[name] = train(model, train_set, validation_set, tokenizer, args)
        folder = args.output_dir / "models" / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)  # GPT-2 too: lm-eval loads the byte tokenizer through its remote code
        results[name] |= lm_eval_scores(folder, args)
        print(f"{name}: {json.dumps(results[name])}")

    items = [json.loads(line) for line in build.DATA_FILE.read_text(encoding="utf-8").splitlines()][: args.limit]
    write_report(results, baselines(items, train_text), args, command, time.time() - start)


if __name__ == "__main__":
    main()
