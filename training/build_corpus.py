"""Builds the bundled corpus (see `training/corpus.py`) from the King James Bible.

The text comes from Debian's `bible` program (`apt-get install bible-kjv`, which pulls in `bible-kjv-text`):

    bible -m 8192 -l100000 "Gen1:1-Rev22:21"

prints the whole Bible, with each chapter header ("Genesis 1") on its own line between blank lines and each verse on
one indented line after its number ("  1 In the beginning God created..."). This script keeps the headers, drops the
indentation and verse numbers, and writes every `--validation-every`-th chapter to the validation split and the rest
to the train split, both compressed with xz. Run it from the repository root:

    python -m fiftynet.training.build_corpus
"""

import argparse
import lzma
import re
import subprocess
from pathlib import Path

from .corpus import CORPUS_DIR, corpus_files


# -m: buffer size in KiB, enough to hold the whole text; -l: line width, wide enough that no verse is wrapped
BIBLE_COMMAND = ["bible", "-m", "8192", "-l100000", "Gen1:1-Rev22:21"]
VERSE_LINE = re.compile(r"\s+\d+ (?P<text>.*)")
# The files are shipped inside the package, so keep them small
MAX_TOTAL_BYTES = 2_000_000


def parse_chapters(bible_output: str) -> list[list[str]]:
    """Splits the `bible` output into chapters, each a list of lines: its header, then its verses."""
    chapters = []
    for line in bible_output.splitlines():
        line = line.rstrip()
        if not line:
            continue
        verse = VERSE_LINE.fullmatch(line)
        if verse is None:
            chapters.append([line])
        elif chapters:
            chapters[-1].append(verse["text"])
        else:
            raise ValueError(f"Verse before the first chapter header: {line!r}")
    if any(len(chapter) == 1 for chapter in chapters):
        raise ValueError("A chapter without verses: is this the output of the `bible` command?")
    return chapters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--validation-every", type=int, default=20, help="put every n-th chapter in validation")
    args = parser.parse_args()

    bible_output = subprocess.run(BIBLE_COMMAND, capture_output=True, text=True, check=True).stdout
    chapters = parse_chapters(bible_output)
    splits = {"train": [], "validation": []}
    for number, chapter in enumerate(chapters, start=1):
        split = "validation" if number % args.validation_every == 0 else "train"
        splits[split].append("\n".join(chapter))

    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    total_bytes = 0
    for split, file in corpus_files().items():
        text = ("\n\n".join(splits[split]) + "\n").encode("utf-8")
        path = Path(file)
        path.write_bytes(lzma.compress(text, preset=9))
        size = path.stat().st_size
        total_bytes += size
        print(f"{split}: {len(splits[split])} chapters, {len(text):,} bytes -> {path} ({size:,} bytes compressed)")
    print(f"total compressed: {total_bytes:,} bytes")
    if total_bytes > MAX_TOTAL_BYTES:
        raise SystemExit(f"The corpus files take {total_bytes:,} bytes, more than the {MAX_TOTAL_BYTES:,} allowed.")


if __name__ == "__main__":
    main()
