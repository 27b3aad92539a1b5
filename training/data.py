"""Training text for `fiftynet train` and `fiftynet eval`: read it, tokenize it, pack it into fixed blocks.

The text comes from local files or folders, a `datasets` name, or the bundled corpus. Documents are joined with the
tokenizer's end-of-sequence token into one stream, which is cut into blocks of `block_size` tokens: training blocks
have no padding, every token of a block is a target; an evaluated text keeps its tail as a padded last block. With
`--streaming` the training text is read through `datasets`' streaming and packed the same way as the Trainer asks
for blocks, in the stream's order, a document at a time: a `datasets` dataset larger than memory or disk
trains, on one process or several.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from datasets import Dataset, IterableDataset
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
    streaming: bool = field(
        default=False,
        metadata={"help": "read --data or --dataset_name as a stream (`datasets` streaming), packed as training "
                          "goes; needs --max_steps and --validation_data (or a validation split)"},
    )

    def __post_init__(self) -> None:
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"--validation_fraction must lie in [0, 1), got {self.validation_fraction}")
        if self.streaming and not (self.data or self.dataset_name):
            raise ValueError("--streaming reads --data or --dataset_name as a stream: pass one")


@dataclass
class Texts:
    """Documents of a training run, with a held-out validation text when the source has one."""

    train: list[str] | IterableDataset  # with --streaming, a stream of {"text": document}
    validation: list[str] | None
    name: str  # for logs and the model card


@dataclass
class LanguageModelingData:
    """Packed blocks for the Trainer, and the validation text's tokens per UTF-8 byte (for bits per byte)."""

    train: Dataset | IterableDataset  # with --streaming, blocks packed as they are read
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


def text_files(paths: list[str]) -> list[Path]:
    """The files, and the `*.txt` files under each folder (sorted)."""
    files = []
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        found = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
        if not found:
            raise UsageError(f"{path}: the folder holds no .txt files")
        files += found
    return files


def read_text_files(paths: list[str]) -> list[str]:
    """The text of each file, and of each `*.txt` file under each folder (sorted), one document per file."""
    documents = []
    for file in text_files(paths):
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
    return Texts(splits["train"][column], validation, dataset_title(name, config))


def dataset_title(name: str, config: str | None) -> str:
    """A `datasets` dataset's name and configuration, for logs and the model card."""
    return name + (f" ({config})" if config else "")


def streamed_texts(args: DataArguments) -> Texts:
    """The training documents of --data (one per file, each read whole when its turn comes) or --dataset_name as a
    `datasets` stream, and, unless --validation_data replaces it, the dataset's validation split, read whole, if it
    has one; of the training text, nothing is read before training asks for it but the first document (to check
    the column)."""
    from datasets import load_dataset

    if args.data:
        files = [str(file) for file in text_files(args.data)]
        splits = load_dataset("text", data_files={"train": files}, sample_by="document", streaming=True)
        name, column = ", ".join(Path(file).name for file in args.data), "text"
    else:
        splits = load_dataset(args.dataset_name, args.dataset_config, streaming=True)
        name, column = dataset_title(args.dataset_name, args.dataset_config), args.text_column
        if "train" not in splits:
            raise UsageError(f"the dataset {args.dataset_name} has no 'train' split (it has {', '.join(splits)})")
    first = next(iter(splits["train"]), None)
    if first is None:
        raise UsageError(f"the training text of {name} is empty")
    if column not in first:
        raise UsageError(f"the dataset {name} has no column {column!r}; choose one of {list(first)} with "
                         "--text_column")
    validation = None
    if "validation" in splits and not args.validation_data:
        validation = [example.get(column) for example in splits["validation"]]
        if None in validation:
            raise UsageError(f"the validation split of {name} has no column {column!r} in every row")
    train = splits["train"].select_columns([column])
    return Texts(train.rename_column(column, "text") if column != "text" else train, validation, name)


def load_texts(args: DataArguments) -> Texts:
    """Local files if given, else a `datasets` name if given, else the bundled corpus and its validation split; the
    `--validation_data` files, if given, replace the validation text of any of them. With --streaming, the training
    text is a stream (see `streamed_texts`), which needs a validation text: a stream cannot hold out a fraction."""
    if args.streaming:
        texts = streamed_texts(args)
    elif args.data:
        texts = Texts(read_text_files(args.data), None, ", ".join(Path(file).name for file in args.data))
    elif args.dataset_name:
        texts = hub_texts(args.dataset_name, args.dataset_config, args.text_column)
    else:
        texts = Texts([load_corpus("train")], [load_corpus("validation")], CORPUS_NAME)
    if args.validation_data:
        texts.validation = read_text_files(args.validation_data)
    if args.streaming and texts.validation is None:
        raise UsageError(f"--streaming: a stream cannot hold out --validation_fraction of {texts.name}; pass "
                         "--validation_data FILES")
    return texts


def token_stream(documents: list[str], tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """All documents' tokens, with the end-of-sequence token between documents so that packing marks boundaries."""
    encoded = tokenizer(documents, add_special_tokens=False)["input_ids"]
    separator = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    stream = list(encoded[0])
    for document in encoded[1:]:
        stream += separator + document
    return stream


def streamed_blocks(documents: IterableDataset, tokenizer: PreTrainedTokenizerBase, block_size: int
                    ) -> Iterator[dict[str, list[int]]]:
    """The blocks of `block_size` tokens of a stream of `{"text": document}`, read a document at a time: the blocks
    `packed_blocks` cuts from the `token_stream` of the same documents, in order, the tail shorter than a block left
    out (a stream that ends before --max_steps is read again from its start, as an epoch would be)."""
    separator = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    buffer = []
    for index, example in enumerate(documents):
        buffer += (separator if index else []) + tokenizer(example["text"], add_special_tokens=False)["input_ids"]
        complete = len(buffer) - len(buffer) % block_size
        for start in range(0, complete, block_size):
            yield {"input_ids": buffer[start: start + block_size]}
        buffer = buffer[complete:]


def tokens_per_byte(documents: list[str], num_tokens: int) -> float:
    """Tokens per UTF-8 byte: turns a loss per token into one per byte, comparable across tokenizers."""
    return num_tokens / sum(len(document.encode("utf-8")) for document in documents)


def prepare_data(
    texts: Texts, tokenizer: PreTrainedTokenizerBase, block_size: int, validation_fraction: float
) -> LanguageModelingData:
    """Tokenizes and packs the texts; without a validation text, the last `validation_fraction` of the token stream
    (at least one block) is held out. A streamed training text (`streamed_texts`) becomes a stream of blocks."""
    if isinstance(texts.train, IterableDataset):
        check_block_size(block_size)
        validation_ids = token_stream(texts.validation, tokenizer)
        train = IterableDataset.from_generator(
            streamed_blocks, gen_kwargs=dict(documents=texts.train, tokenizer=tokenizer, block_size=block_size)
        ).with_format("torch")
        if len(first_blocks(train, 1)) == 0:
            raise UsageError(f"the training text of {texts.name} has fewer tokens than one block of {block_size}; use "
                             "a smaller --block_size")
        return LanguageModelingData(
            train=train,
            validation=packed_blocks(validation_ids, block_size, name="the validation text"),
            tokens_per_byte=tokens_per_byte(texts.validation, len(validation_ids)), name=texts.name,
        )
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


def check_streamed_steps(args: DataArguments, max_steps: int) -> None:
    """Refuses to train on a stream for a number of epochs: it has no end to count them by."""
    if args.streaming and max_steps < 1:
        raise UsageError("--streaming: a stream has no epochs to count; pass --max_steps")


def first_blocks(blocks: Dataset | IterableDataset, count: int) -> torch.Tensor:
    """The token ids of the first `count` blocks, `(count, block_size)` (fewer if there are fewer)."""
    if isinstance(blocks, Dataset):
        return blocks[:count]["input_ids"]
    taken = [block["input_ids"] for block in blocks.take(count)]
    return torch.stack(taken) if taken else torch.empty(0, 0, dtype=torch.long)
