"""Tests for `FiftyNetByteTokenizer`: exact byte round trips, special tokens, padding, saving, remote-code loading."""

import json

import pytest
import torch
from conftest import run_isolated
from transformers import AutoTokenizer

from modeling_fiftynet import FiftyNetByteTokenizer


TEXTS = [
    "Hello, world!",
    "naïve café, Ærøskøbing, Straße",
    "日本語のテキスト，中文",
    "emoji 😀👍🏽 and a family 👩‍👩‍👧",
    "line one\nline\ttwo\r\n",
    "",
    "  spaces around  ",
    "nul \x00 and separator \u2028",
    "text with <|endoftext|> inside",
    "<|pad|><|bos|><|endoftext|>",
]


@pytest.fixture(scope="module")
def tokenizer() -> FiftyNetByteTokenizer:
    return FiftyNetByteTokenizer()


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip_is_exact(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    # Exactly the UTF-8 bytes, with no special tokens added, even for text that spells one
    assert ids == list(text.encode("utf-8"))
    assert tokenizer.encode(text) == ids
    assert tokenizer.decode(ids) == text


def test_batch_round_trip(tokenizer):
    ids = tokenizer(TEXTS)["input_ids"]
    assert all(0 <= i < len(tokenizer) for sequence in ids for i in sequence)
    assert tokenizer.batch_decode(ids) == TEXTS


def test_special_tokens_in_text_only_when_asked(tokenizer):
    ids = tokenizer("a<|endoftext|>", split_special_tokens=False)["input_ids"]
    assert ids == [ord("a"), tokenizer.eos_token_id]


@pytest.mark.parametrize(
    "ids, expected",
    [
        ([0xFF, 0xFE], "\ufffd\ufffd"),
        ([ord("h"), 0x80, ord("i")], "h\ufffdi"),  # lone continuation byte
        (list("é".encode())[:1] + [ord("x")], "\ufffdx"),  # cut-off two-byte character
        ([0xE6, 0x97, 258], "\ufffd<|endoftext|>"),  # cut off by a special token
    ],
)
def test_invalid_utf8_decodes_to_replacement_characters(tokenizer, ids, expected):
    assert tokenizer.decode(ids) == expected


def test_special_tokens(tokenizer):
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|pad|>", 256)
    assert (tokenizer.bos_token, tokenizer.bos_token_id) == ("<|bos|>", 257)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|endoftext|>", 258)
    assert tokenizer.unk_token is None
    assert tokenizer.vocab_size == len(tokenizer) == 259
    vocab = tokenizer.get_vocab()
    assert len(vocab) == 259
    assert sorted(vocab.values()) == list(range(259))
    assert all(tokenizer.convert_ids_to_tokens(i) == token for token, i in vocab.items())
    assert tokenizer.decode([ord("h"), ord("i"), 258, 256]) == "hi<|endoftext|><|pad|>"
    assert tokenizer.decode([257, ord("h"), ord("i"), 258, 256], skip_special_tokens=True) == "hi"


def test_out_of_vocabulary_id_raises(tokenizer):
    with pytest.raises(ValueError, match="outside"):
        tokenizer.decode([ord("a"), 259])


def test_padding(tokenizer):
    batch = tokenizer(["ab", "abcd"], padding=True, return_tensors="pt")
    assert tokenizer.padding_side == "right"
    assert batch["input_ids"].tolist() == [[97, 98, 256, 256], [97, 98, 99, 100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert batch["attention_mask"].dtype == torch.long

    left = tokenizer(["ab", "abcd"], padding=True, padding_side="left")
    assert left["input_ids"] == [[256, 256, 97, 98], [97, 98, 99, 100]]
    assert left["attention_mask"] == [[0, 0, 1, 1], [1, 1, 1, 1]]
    assert FiftyNetByteTokenizer(padding_side="left")(["ab", "abcd"], padding=True)["input_ids"] == left["input_ids"]


def test_save_and_load_with_auto_tokenizer(tmp_path):
    FiftyNetByteTokenizer(padding_side="left").save_pretrained(tmp_path)
    assert (tmp_path / "tokenization_fiftynet.py").is_file()
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["auto_map"]["AutoTokenizer"][0] == "tokenization_fiftynet.FiftyNetByteTokenizer"

    loaded = AutoTokenizer.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(loaded).__name__ == "FiftyNetByteTokenizer"
    assert loaded.padding_side == "left"
    assert loaded.get_vocab() == FiftyNetByteTokenizer().get_vocab()
    for text in TEXTS:
        assert loaded.decode(loaded.encode(text)) == text


def test_loads_as_remote_code_without_the_package(tmp_path):
    FiftyNetByteTokenizer().save_pretrained(tmp_path / "tokenizer")
    run_isolated(
        """
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained("tokenizer", trust_remote_code=True)
        assert type(tokenizer).__name__ == "FiftyNetByteTokenizer"
        assert type(tokenizer).__module__.startswith("transformers_modules."), type(tokenizer).__module__
        text = "Ünïcödé <|endoftext|> 😀"
        ids = tokenizer.encode(text)
        assert ids == list(text.encode("utf-8")), ids
        assert tokenizer.decode(ids + [tokenizer.eos_token_id]) == text + "<|endoftext|>"
        """,
        cwd=tmp_path,
    )
