"""`--streaming`: the training text read through `datasets`' streaming, packed as training asks for blocks, by
`fiftynet train` and `fiftynet convert` (local files here: no network)."""

import itertools
import json

import pytest
import torch
from datasets import IterableDataset
from test_cli_errors import fails_with
from test_convert_families import llama_teacher

from fiftynet.conversion import teacher
from fiftynet.training import cli
from fiftynet.training.corpus import load_corpus
from fiftynet.training.data import (
    DataArguments,
    first_blocks,
    load_texts,
    packed_blocks,
    prepare_data,
    streamed_blocks,
    token_stream,
)
from fiftynet.training.errors import UsageError
from modeling_fiftynet import FiftyNetByteTokenizer


@pytest.fixture
def texts(tmp_path):
    """Two training files (a folder of one and a file) and a validation file."""
    corpus = load_corpus("validation")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.txt").write_text(corpus[:5_000])
    (tmp_path / "b.txt").write_text(corpus[5_000:12_000])
    (tmp_path / "validation.txt").write_text(corpus[12_000:15_000])
    return [str(tmp_path / "folder"), str(tmp_path / "b.txt")], str(tmp_path / "validation.txt")


def test_a_streamed_text_gives_the_blocks_of_the_whole_text_in_order(texts):
    data_files, validation = texts
    tokenizer = FiftyNetByteTokenizer()
    whole, streamed = (prepare_data(load_texts(DataArguments(data=data_files, validation_data=[validation],
                                                             streaming=streaming)), tokenizer, 64, 0.05)
                       for streaming in (False, True))
    assert isinstance(streamed.train, IterableDataset)
    blocks = torch.stack([block["input_ids"] for block in streamed.train])
    assert len(blocks) == len(whole.train) == 12_001 // 64  # two documents and the separator between them
    assert torch.equal(blocks, whole.train[:]["input_ids"])
    assert torch.equal(streamed.validation[:]["input_ids"], whole.validation[:]["input_ids"])
    assert streamed.tokens_per_byte == whole.tokens_per_byte
    assert torch.equal(first_blocks(streamed.train, 5), whole.train[:5]["input_ids"])  # what convert calibrates on


def test_a_datasets_folder_streams_its_column_and_validation_split(tmp_path):
    """`--dataset_name` with `--streaming`, offline: a local folder of JSON lines, as `datasets` loads a Hub one."""
    corpus = load_corpus("validation")
    for split, text in (("train", corpus[:6_000]), ("validation", corpus[6_000:8_000])):
        rows = [{"id": index, "content": part} for index, part in enumerate(text.split("\n\n"))]
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(row) for row in rows))
    tokenizer = FiftyNetByteTokenizer()
    data = prepare_data(load_texts(DataArguments(dataset_name=str(tmp_path), text_column="content", streaming=True)),
                        tokenizer, 64, 0.05)
    documents = corpus[:6_000].split("\n\n")
    expected = packed_blocks(token_stream(documents, tokenizer), 64)[:]["input_ids"]
    assert torch.equal(torch.stack([block["input_ids"] for block in data.train]), expected)
    validation = token_stream(corpus[6_000:8_000].split("\n\n"), tokenizer)
    assert torch.equal(data.validation[:]["input_ids"], packed_blocks(validation, 64)[:]["input_ids"])
    with pytest.raises(UsageError, match="no column 'text'; choose one of \\['id', 'content'\\] with --text_column"):
        load_texts(DataArguments(dataset_name=str(tmp_path), streaming=True))


def test_blocks_are_cut_as_they_are_read_from_an_endless_stream():
    documents = IterableDataset.from_generator(lambda: ({"text": f"document {index}"} for index in itertools.count()))
    blocks = list(itertools.islice(streamed_blocks(documents, FiftyNetByteTokenizer(), 16), 100))
    assert [len(block["input_ids"]) for block in blocks] == [16] * 100


def test_fiftynet_train_streams(texts, tmp_path, capsys):
    data_files, validation = texts
    out = tmp_path / "run"
    cli.main(["train", "--streaming", "--data", *data_files, "--validation_data", validation, "--output_dir", str(out),
              "--set", "hidden_size=16", "num_hidden_layers=1", "--block_size", "32", "--per_device_train_batch_size",
              "4", "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no", "--max_steps", "3",
              "--logging_steps", "1"])
    assert "streamed training and " in capsys.readouterr().out
    log = json.loads((out / "metrics.json").read_text())["log_history"]
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2, 3]


def test_fiftynet_convert_streams_and_calibrates_on_the_first_blocks(tmp_path, capsys):
    """A streamed conversion measures each layer and fits its filters on the blocks one read whole would use."""
    teacher_dir, validation = llama_teacher(tmp_path)
    reports = {}
    for streaming in ([], ["--streaming"]):
        out = tmp_path / f"converted{len(streaming)}"
        cli.main(["convert", "--teacher", str(teacher_dir), "--out", str(out), "--keep_attention", "auto",
                  "--auto_keep", "1", *streaming, "--data", str(validation), "--validation_data", str(validation),
                  "--block_size", "64", "--calibration_blocks", "4", "--layerwise_steps", "2", "--max_steps", "2",
                  "--per_device_train_batch_size", "2", "--report_to", "none"])
        reports[bool(streaming)] = json.loads((out / "report.json").read_text())
    assert [entry["stage"] for entry in reports[True]["stages"]] == [
        "teacher", "spectral_init", "layerwise", "end_to_end"]
    assert reports[True]["layer_importance"] == reports[False]["layer_importance"]
    assert reports[True]["stages"][1]["perplexity"] == reports[False]["stages"][1]["perplexity"]


def test_what_streaming_cannot_do_is_refused(texts, tmp_path, capsys):
    data_files, validation = texts
    out = ["--output_dir", str(tmp_path / "run")]
    assert fails_with(["train", "--streaming", "--data", *data_files, "--validation_data", validation, *out],
                      capsys).endswith("--streaming: a stream has no epochs to count; pass --max_steps")
    assert fails_with(["train", "--streaming", "--data", *data_files, "--max_steps", "2", *out], capsys).endswith(
        "a stream cannot hold out --validation_fraction of folder, b.txt; pass --validation_data FILES")
    assert fails_with(["train", "--streaming", "--max_steps", "2", *out], capsys).endswith(
        "--streaming reads --data or --dataset_name as a stream: pass one")
    (tmp_path / "short.txt").write_text("too short")
    assert fails_with(["train", "--streaming", "--data", str(tmp_path / "short.txt"), "--validation_data", validation,
                       "--max_steps", "2", "--block_size", "64", *out], capsys).endswith(
        "the training text of short.txt has fewer tokens than one block of 64; use a smaller --block_size")
    assert not (tmp_path / "run").exists()
    with pytest.raises(UsageError, match="the teacher's tokenizer is trained on the whole training text; drop "
                                         "--streaming$"):
        teacher.main(["--streaming", "--data", *data_files, "--output_dir", str(tmp_path / "teacher")])
