"""Tokenizers for `fiftynet train`: the byte tokenizer, a saved one, or a byte-level BPE trained with `tokenizers`.

`fiftynet tokenizer train --text FILE... --vocab_size N --output_dir DIR` trains the BPE and saves it as a
transformers `PreTrainedTokenizerFast` folder, which `fiftynet train --tokenizer DIR` (or `AutoTokenizer`) loads.
"""

import argparse
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from huggingface_hub import constants, model_info
from huggingface_hub.errors import GatedRepoError, HFValidationError, RepositoryNotFoundError, StrictDataclassError
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from fiftynet.hub_cards.help_format import HelpFormatter
from fiftynet.hub_cards.push import TOKENIZER_FILES
from modeling_fiftynet import FiftyNetByteTokenizer

from .corpus import load_corpus
from .data import read_text_files
from .errors import UsageError, claimed, positive_int, refuse_non_empty


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
    (`HF_HUB_OFFLINE`), fails at once instead of being sent to the Hub as a repository id; so does a name the Hub does
    not know, and one it cannot be asked about is looked up in the local cache only (see `hub_lookup`)."""
    hub_access = nullcontext()
    if not Path(name_or_path).exists():
        if looks_like_a_path(name_or_path) or constants.HF_HUB_OFFLINE:
            why = "" if looks_like_a_path(name_or_path) else " (and HF_HUB_OFFLINE is set, so not a Hub id either)"
            raise UsageError(f"{what} {name_or_path}: no such folder{why}")
        if not hub_lookup(name_or_path, what, kwargs.get("revision")):
            hub_access = offline()
    try:
        with hub_access:
            return loader(name_or_path, **kwargs)
    except (OSError, ValueError, RuntimeError, StrictDataclassError) as error:
        # e.g. a missing or unreadable weights file, an invalid config value, weights of another shape
        cause = error.__cause__ if isinstance(error, StrictDataclassError) else error  # the config's own message
        lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
        # torch's load_state_dict heads its list of weights of another shape with a line that names none of them
        message = next((line for line in lines if line.startswith("size mismatch")), lines[0] if lines else "")
        if message.endswith(":"):  # a heading: the list it announces is the message
            message = " ".join(lines)
        raise UsageError(f"cannot load {what} {name_or_path}: {message or type(error).__name__}") from None


def hub_lookup(name: str, what: str, revision: str | None) -> bool:
    """Asks the Hub once, without retries, about the repository `name`: a `UsageError` if it has none (nor is there
    such a folder); returns whether it answered (if not, the load reads the local cache only, see `offline`)."""
    try:
        model_info(name, revision=revision, timeout=10)
    except GatedRepoError:  # it exists; the load says what access it needs
        return True
    except (RepositoryNotFoundError, HFValidationError):
        raise UsageError(f"{what} {name}: no such folder, and no such model on the Hub") from None
    except Exception:  # no connection, a proxy's refusal, a server error: only the cache can answer
        return False
    return True


@contextmanager
def offline() -> Iterator[None]:
    """Hub offline mode (as `HF_HUB_OFFLINE=1`) while the block runs: a load reads the local cache at once, instead
    of retrying each file it looks for (config, weights, adapter, tokenizer) for about a minute in all."""
    previous, constants.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE, True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


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
    try:
        return from_pretrained(AutoTokenizer.from_pretrained, name_or_path, "tokenizer")
    except UsageError:
        if (folder / "tokenizer_config.json").is_file() and not (folder / "tokenizer.json").exists():
            raise UsageError(f"cannot load tokenizer {name_or_path}: it has a tokenizer_config.json but no "
                             "tokenizer.json, the vocabulary it needs: copy it from where the tokenizer was saved, "
                             "or pass --tokenizer NAME_OR_FOLDER") from None
        raise


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
    with claimed(args.output_dir, "--output_dir"):
        if not args.overwrite_output_dir:  # a model folder's own tokenizer, say
            refuse_non_empty(args.output_dir, "--output_dir")
        texts = read_text_files(args.text) if args.text else [load_corpus("train")]
        tokenizer = train_bpe(texts, args.vocab_size)
        tokenizer.save_pretrained(args.output_dir)
    print(f"trained a byte-level BPE with {len(tokenizer)} tokens; saved to {args.output_dir}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet tokenizer", description=__doc__, formatter_class=HelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train a byte-level BPE tokenizer with the `tokenizers` library",
                               formatter_class=HelpFormatter)
    train.add_argument("--text", nargs="+", help="text files or folders of .txt files (default: the bundled corpus)")
    train.add_argument("--vocab_size", "--vocab-size", type=positive_int, default=4096,
                       help="tokens of the vocabulary: the 256 bytes, 3 special tokens and the merges")
    train.add_argument("--output_dir", "--output-dir", type=Path, required=True, help="where the tokenizer is saved")
    train.add_argument("--overwrite_output_dir", "--overwrite-output-dir", action="store_true",
                       help="write the tokenizer's files into a non-empty --output_dir, replacing any of the same name")
    train.set_defaults(run=train_command)
    args = parser.parse_args(argv)
    args.run(args)
