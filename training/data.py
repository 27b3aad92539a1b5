"""Training text for `fiftynet train` and `fiftynet eval`: read it, tokenize it, pack it into fixed blocks.

The text comes from local files or folders, a `datasets` name, or the bundled corpus. Documents are joined with the
tokenizer's end-of-sequence token into one stream, which is cut into blocks of `block_size` tokens: training blocks
have no padding, every token of a block is a target; an evaluated text keeps its tail as a padded last block.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset
from transformers import PreTrainedConfig, PreTrainedTokenizerBase

from .corpus import CORPUS_NAME, load_corpus
from .errors import UsageError


@dataclass
class DataArguments:
    """Where the text comes from, for the commands that train (`fiftynet train`, `fiftynet convert`)."""

    data: list[str] | None = field(
        default=None, metadata={"help": "text files or folders of .txt files (default: the bundled corpus)"}
    )
    validation_data: list[str] | None = field(
        default=None, metadata={"help": "validation text files (default: hold out --validation_fraction)"}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "a `datasets` name on the Hub (downloads)"})
    dataset_config: str | None = field(default=None, metadata={"help": "the `datasets` configuration name"})
    text_column: str = field(default="text", metadata={"help": "the column of --dataset_name holding the text"})
    validation_fraction: float = field(
        default=0.05, metadata={"help": "share of the token stream held out when there is no validation text"}
    )

    def __post_init__(self) -> None:
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"--validation_fraction must lie in [0, 1), got {self.validation_fraction}")


@dataclass
class Texts:
    """Documents of a training run, with a held-out validation text when the source has one."""

    train: list[str]
    validation: list[str] | None
    name: str  # for logs and the model card


@dataclass
class LanguageModelingData:
    """Packed blocks for the Trainer, and the validation text's tokens per UTF-8 byte (for bits per byte)."""

    train: Dataset
    validation: Dataset
    tokens_per_byte: float
    name: str


def check_block_size(block_size: int) -> None:
    if block_size < 1:
        raise UsageError(f"--block_size must be a positive number of tokens, got {block_size}")


def packed_blocks(token_ids: list[int], block_size: int, name: str = "the text", keep_tail: bool = False) -> Dataset:
    """Cuts one token stream into consecutive blocks of `block_size`. The incomplete tail is dropped for training;
    with `keep_tail` (evaluation, so that the tail is measured too) it becomes a last block padded on the right, with a
    `labels` column that marks the padding -100 so that no loss or accuracy counts it (a causal model's earlier
    positions never see it)."""
    check_block_size(block_size)
    num_blocks, tail = divmod(len(token_ids), block_size)
    if keep_tail and tail == 1 and num_blocks > 0:
        tail = 0  # a block of one token has nothing to predict (a block's first token is never a target)
    if keep_tail and len(token_ids) < 2:
        raise UsageError(f"{name} has {len(token_ids)} token(s); at least 2 are needed to predict one")
    if num_blocks == 0 and not keep_tail:
        raise UsageError(
            f"{name} has {len(token_ids)} tokens, fewer than one block of {block_size}; use a smaller --block_size"
        )
    blocks = torch.tensor(token_ids[: num_blocks * block_size], dtype=torch.long).view(num_blocks, block_size)
    if not keep_tail:
        return Dataset.from_dict({"input_ids": blocks.numpy()}).with_format("torch")
    labels = blocks.clone()
    if tail:
        last = torch.zeros(1, block_size, dtype=blocks.dtype)  # id 0 exists in every vocabulary
        last[0, :tail] = torch.tensor(token_ids[-tail:])
        padding = torch.arange(block_size) >= tail
        blocks, labels = torch.cat([blocks, last]), torch.cat([labels, last.masked_fill(padding, -100)])
    return Dataset.from_dict({"input_ids": blocks.numpy(), "labels": labels.numpy()}).with_format("torch")


def read_text_files(paths: list[str]) -> list[str]:
    """The text of each file, and of each `*.txt` file under each folder (sorted), one document per file."""
    files = []
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        found = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
        if not found:
            raise UsageError(f"{path}: the folder holds no .txt files")
        files += found
    documents = []
    for file in files:
        try:
            documents.append(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise UsageError(f"{file} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not any(document.strip() for document in documents):
        raise UsageError(f"the text in {', '.join(map(str, paths))} is empty")
    return documents


def hub_texts(name: str, config: str | None, column: str) -> Texts:
    """The train (and validation, if any) split of a `datasets` dataset; this downloads from the Hub."""
    from datasets import load_dataset

    splits = load_dataset(name, config)
    if "train" not in splits:
        raise UsageError(f"the dataset {name} has no 'train' split (it has {', '.join(splits)})")
    if column not in splits["train"].column_names:
        raise UsageError(f"the dataset {name} has no column {column!r}; choose one of {splits['train'].column_names}"
                         " with --text_column")
    validation = splits["validation"][column] if "validation" in splits else None
    return Texts(splits["train"][column], validation, f"{name}" + (f" ({config})" if config else ""))


def load_texts(args: DataArguments) -> Texts:
    """Local files if given, else a `datasets` name if given, else the bundled corpus and its validation split; the
    `--validation_data` files, if given, replace the validation text of any of them."""
    if args.data:
        texts = Texts(read_text_files(args.data), None, ", ".join(Path(file).name for file in args.data))
    elif args.dataset_name:
        texts = hub_texts(args.dataset_name, args.dataset_config, args.text_column)
    else:
        texts = Texts([load_corpus("train")], [load_corpus("validation")], CORPUS_NAME)
    if args.validation_data:
        texts.validation = read_text_files(args.validation_data)
    return texts


def token_stream(documents: list[str], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """All documents' tokens, with the end-of-sequence token between documents so that packing marks boundaries."""
    encoded = tokenizer(documents, add_special_tokens=False)["input_ids"]
    separator = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    stream = list(encoded[0])
    for document in encoded[1:]:
        stream += separator + document
    return stream


def tokens_per_byte(documents: list[str], num_tokens: int) -> float:
    """Tokens per UTF-8 byte: turns a loss per token into one per byte, comparable across tokenizers."""
    return num_tokens / sum(len(document.encode("utf-8")) for document in documents)


def prepare_data(
    texts: Texts, tokenizer: PreTrainedTokenizerBase, block_size: int, validation_fraction: float
) -> LanguageModelingData:
    """Tokenizes and packs the texts; without a validation text, the last `validation_fraction` of the token stream
    (at least one block) is held out."""
    train_ids = token_stream(texts.train, tokenizer)
    if texts.validation is None:
        held_out = max(block_size, int(validation_fraction * len(train_ids)))
        if len(train_ids) < held_out + block_size:
            raise UsageError(
                f"the text has {len(train_ids)} token(s), too few for a training block of {block_size} and "
                f"{held_out} held out for validation: use a longer text, a smaller --block_size or --validation_data"
            )
        train_ids, validation_ids = train_ids[:-held_out], train_ids[-held_out:]
        ratio = tokens_per_byte(texts.train, len(train_ids) + len(validation_ids))
    else:
        validation_ids = token_stream(texts.validation, tokenizer)
        ratio = tokens_per_byte(texts.validation, len(validation_ids))
    return LanguageModelingData(
        train=packed_blocks(train_ids, block_size, name="the training text"),
        validation=packed_blocks(validation_ids, block_size, name="the validation text"),
        tokens_per_byte=ratio,
        name=texts.name,
    )


def check_vocabulary(tokenizer: PreTrainedTokenizerBase, config: PreTrainedConfig) -> None:
    """Refuses a tokenizer with ids the model has no embedding for."""
    if len(tokenizer) > config.vocab_size:
        raise UsageError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {config.vocab_size}: "
            "use the tokenizer the model was trained with, or a model with a larger vocabulary"
        )
