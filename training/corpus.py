"""The corpus bundled with FiftyNet: the King James Bible, as xz-compressed plain text in `training/data`.

`python -m fiftynet.training.build_corpus` makes the two files, `kjv_train.txt.xz` and `kjv_validation.txt.xz`. Each
holds whole chapters: a header line such as "Genesis 1", then one verse per line, with a blank line between chapters.
"""

import lzma
from pathlib import Path


CORPUS_DIR: Path = Path(__file__).parent / "data"
CORPUS_NAME = "King James Version of the Bible (public domain), via Debian's bible-kjv-text"
SPLITS = ("train", "validation")


def corpus_files() -> dict[str, str]:
    """Split name -> path of its compressed file, for `datasets.load_dataset("text", data_files=corpus_files())`."""
    # `datasets` needs paths as `str`: it rejects `Path` objects in `data_files`
    return {split: str(CORPUS_DIR / f"kjv_{split}.txt.xz") for split in SPLITS}


def load_corpus(split: str = "train") -> str:
    """Returns the text of one split, `"train"` or `"validation"`."""
    files = corpus_files()
    if split not in files:
        raise ValueError(f"Unknown corpus split {split!r}; the splits are {', '.join(map(repr, SPLITS))}.")
    with lzma.open(files[split], "rt", encoding="utf-8") as file:
        return file.read()
