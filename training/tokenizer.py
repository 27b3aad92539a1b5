"""Tokenizers for `fiftynet train`: the byte tokenizer, a saved one, or a byte-level BPE trained with `tokenizers`.

`fiftynet tokenizer train --text FILE... --vocab_size N --output_dir DIR` trains the BPE and saves it as a
transformers `PreTrainedTokenizerFast` folder, which `fiftynet train --tokenizer DIR` (or `AutoTokenizer`) loads.
"""

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import constants
from huggingface_hub.errors import StrictDataclassError
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from fiftynet.hub_cards.push import TOKENIZER_FILES
from modeling_fiftynet import FiftyNetByteTokenizer

from .corpus import load_corpus
from .data import read_text_files
from .errors import UsageError, positive_int


# The byte tokenizer's special tokens, so that either tokenizer works with the same model code and generation.
PAD_TOKEN, BOS_TOKEN, EOS_TOKEN = "<|pad|>", "<|bos|>", "<|endoftext|>"


def looks_like_a_path(name: str) -> bool:
    """Whether `name` can only be meant as a local path: it starts like one, has more parts than a Hub id
    (`owner/name`), uses the system's separator, or its first part is an existing local folder."""
    first = name.split("/")[0]
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name.replace("/", "")
            or ("/" in name and Path(first).is_dir()))


def from_pretrained(loader: Callable, name_or_path: str, what: str, **kwargs):
    """`loader(name_or_path)` for a local folder or a Hub id; a folder that does not exist, or a load that fails, is
    a `UsageError` naming it. A name that can only be a path, or any missing folder while offline
    (`HF_HUB_OFFLINE`), fails at once instead of being sent to the Hub as a repository id."""
    if not Path(name_or_path).exists() and (looks_like_a_path(name_or_path) or constants.HF_HUB_OFFLINE):
        offline = "" if looks_like_a_path(name_or_path) else " (and HF_HUB_OFFLINE is set, so not a Hub id either)"
        raise UsageError(f"{what} {name_or_path}: no such folder{offline}")
    try:
        return loader(name_or_path, **kwargs)
    except (OSError, ValueError, RuntimeError, StrictDataclassError) as error:
        # e.g. a missing or unreadable weights file, an invalid config value, weights of another shape
        cause = error.__cause__ if isinstance(error, StrictDataclassError) else error  # the config's own message
        message = next((line for line in str(cause).splitlines() if line.strip()), type(error).__name__)
        raise UsageError(f"cannot load {what} {name_or_path}: {message.strip()}") from None


def load_tokenizer(name_or_path: str) -> PreTrainedTokenizerBase:
    """`"byte"` for `FiftyNetByteTokenizer`, else a tokenizer folder or Hub id.

    Raises:
        UsageError: for a model folder without tokenizer files whose vocabulary is not the byte tokenizer's: the
            Auto classes would pair it with the byte tokenizer (FiftyNet's default), and its ids would be garbage.
    """
    if name_or_path == "byte":
        return FiftyNetByteTokenizer()
    folder = Path(name_or_path).expanduser()
    if (folder / "config.json").is_file() and not any((folder / name).exists() for name in TOKENIZER_FILES):
        vocab_size = json.loads((folder / "config.json").read_text()).get("vocab_size")
        if vocab_size != len(FiftyNetByteTokenizer()):
            raise UsageError(
                f"{name_or_path} holds no tokenizer files, and its vocabulary of {vocab_size} ids is not the byte "
                "tokenizer's: pass the tokenizer it was trained with (--tokenizer NAME_OR_FOLDER), or save it there"
            )
    return from_pretrained(AutoTokenizer.from_pretrained, name_or_path, "tokenizer")


def train_bpe(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2 style: every byte is in the alphabet, so nothing is unknown) trained on `texts`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD_TOKEN, BOS_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Lines rather than whole documents: the trainer counts words per item, and a multi-megabyte item is slow.
    tokenizer.train_from_iterator((line for text in texts for line in text.splitlines(keepends=True)), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD_TOKEN, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN
    )


def train_command(args: argparse.Namespace) -> None:
    if args.vocab_size <= 259:
        raise UsageError(f"--vocab_size {args.vocab_size} leaves no room for merges: the 256 bytes and 3 special "
                         "tokens already take 259 ids")
    texts = read_text_files(args.text) if args.text else [load_corpus("train")]
    tokenizer = train_bpe(texts, args.vocab_size)
    tokenizer.save_pretrained(args.output_dir)
    print(f"trained a byte-level BPE with {len(tokenizer)} tokens; saved to {args.output_dir}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet tokenizer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train a byte-level BPE tokenizer with the `tokenizers` library")
    train.add_argument("--text", nargs="+", help="text files or folders of .txt files (default: the bundled corpus)")
    train.add_argument("--vocab_size", "--vocab-size", type=positive_int, default=4096)
    train.add_argument("--output_dir", "--output-dir", type=Path, required=True)
    train.set_defaults(run=train_command)
    args = parser.parse_args(argv)
    args.run(args)
