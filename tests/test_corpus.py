"""Tests for the bundled King James Bible corpus and the script that builds it."""

import re
from pathlib import Path

import pytest

from fiftynet.training.build_corpus import MAX_TOTAL_BYTES, parse_chapters
from fiftynet.training.corpus import CORPUS_DIR, CORPUS_NAME, SPLITS, corpus_files, load_corpus


CHAPTER_HEADER = re.compile(r"(\d )?[A-Z][A-Za-z ]+ \d+")


@pytest.fixture(scope="module")
def corpus() -> dict[str, str]:
    return {split: load_corpus(split) for split in SPLITS}


def chapters(text: str) -> list[list[str]]:
    """The chapters of a split, each as its list of lines."""
    return [chapter.split("\n") for chapter in text.rstrip("\n").split("\n\n")]


def test_files_are_shipped_and_small():
    files = corpus_files()
    assert set(files) == {"train", "validation"}
    for path in map(Path, files.values()):
        assert path.is_file() and path.parent == CORPUS_DIR and path.name.endswith(".txt.xz")
    assert sum(Path(path).stat().st_size for path in files.values()) < MAX_TOTAL_BYTES
    assert "King James" in CORPUS_NAME


def test_splits_are_plain_english_text(corpus):
    assert corpus["train"].startswith("Genesis 1\nIn the beginning God created the heaven and the earth.\n")
    assert corpus["train"].endswith("The grace of our Lord Jesus Christ be with you all. Amen.\n")
    for text in corpus.values():
        assert len(text.encode("utf-8")) > 100_000
        assert text.isascii() and text.count(" the ") > 1_000
        for header, *verses in chapters(text):
            assert CHAPTER_HEADER.fullmatch(header), header
            assert verses and all(verse and verse == verse.strip() for verse in verses)
            assert not any(verse[0].isdigit() for verse in verses), "verse numbers should be removed"


def test_validation_is_held_out(corpus):
    assert corpus["validation"] not in corpus["train"]
    validation_headers = {header for header, *_ in chapters(corpus["validation"])}
    train_headers = {header for header, *_ in chapters(corpus["train"])}
    assert not validation_headers & train_headers
    assert len(validation_headers) + len(train_headers) == 1189  # every chapter of the Bible, in one split or other
    assert len(corpus["validation"]) < len(corpus["train"]) / 10


def test_unknown_split_raises():
    with pytest.raises(ValueError, match="'train', 'validation'"):
        load_corpus("test")


def test_parse_chapters_cleans_bible_output():
    bible_output = "\nGenesis 1\n\n  1 In the beginning.  \n  2 And the earth.\n\n1 Samuel 3\n\n  10 The LORD came.\n"
    assert parse_chapters(bible_output) == [
        ["Genesis 1", "In the beginning.", "And the earth."],
        ["1 Samuel 3", "The LORD came."],
    ]
    with pytest.raises(ValueError):
        parse_chapters("  1 A verse with no chapter.\n")
