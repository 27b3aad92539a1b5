"""Builds `kjv_validation.jsonl`, the data of the lm-evaluation-harness tasks in this folder, from the validation split
of the bundled corpus (chapters no model trained here has seen):

    python -m benchmarks.lm_eval_tasks.build

One line per sampled verse of at least `MIN_WORDS` words that ends in a word:

- `context`: the line before the verse (the previous verse, or the chapter's header for a first verse), a newline,
  and the verse without its last word, e.g. "...\\nAnd God said, Let there be light: and there was";
- `answer`: that last word without its punctuation ("light");
- `choices`: the answer and three distractors, last words of other sampled verses, in a seeded random order, and
  `label`, the answer's index in `choices`;
- `verse`: the whole verse line.

The file is deterministic (seeded), so rebuilding it reproduces the shipped one byte for byte.
"""

import argparse
import json
import random
import re
from pathlib import Path

from fiftynet.training.corpus import load_corpus


TASK_DIR = Path(__file__).parent
DATA_FILE = TASK_DIR / "kjv_validation.jsonl"
NUM_ITEMS = 500
NUM_CHOICES = 4
MIN_WORDS = 6
SEED = 0
# The verse body, the last word (letters only, so "LORD's" or "Gerar." give "LORD" / "Gerar"), then its punctuation.
LAST_WORD = re.compile(r"(?P<body>.*\S)\s+(?P<word>[A-Za-z]+)(?P<tail>[^A-Za-z\s]*)")


def verse_items(text: str) -> list[dict]:
    """Every verse of `text` (chapters of a header line and one verse per line) with its context and last word."""
    items = []
    for chapter in text.strip().split("\n\n"):
        lines = chapter.split("\n")
        for previous, verse in zip(lines, lines[1:]):
            match = LAST_WORD.fullmatch(verse)
            if match and len(verse.split()) >= MIN_WORDS:
                items.append({"context": f"{previous}\n{match['body']}", "answer": match["word"], "verse": verse})
    return items


def build_items(text: str, num_items: int = NUM_ITEMS, seed: int = SEED) -> list[dict]:
    """Samples `num_items` verses (kept in corpus order) and gives each its multiple-choice options."""
    rng = random.Random(seed)
    candidates = verse_items(text)
    items = [candidates[i] for i in sorted(rng.sample(range(len(candidates)), min(num_items, len(candidates))))]
    answers = sorted({item["answer"] for item in items})
    for item in items:
        # Distractors differ from the answer ignoring case too, so no item has two right answers.
        pool = [word for word in answers if word.lower() != item["answer"].lower()]
        choices = [item["answer"], *rng.sample(pool, NUM_CHOICES - 1)]
        rng.shuffle(choices)
        item["choices"] = choices
        item["label"] = choices.index(item["answer"])
    return items


def write_items(items: list[dict], path: Path = DATA_FILE) -> None:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DATA_FILE)
    parser.add_argument("--num-items", type=int, default=NUM_ITEMS)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    items = build_items(load_corpus("validation"), args.num_items, args.seed)
    write_items(items, args.output)
    print(f"{args.output}: {len(items)} items")


if __name__ == "__main__":
    main()
