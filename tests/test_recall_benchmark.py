"""`python -m benchmarks.recall`: the MQAR sequences are what the task says, the accuracy counts exactly the query
predictions, and the sweep at a tiny size writes its table, JSON and plot. How well any mixer recalls at this size is
never asserted; docs/recall.md has the measured sweep."""

import json

import pytest
import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutput

from benchmarks import recall

VOCAB_SIZE = 65


def test_mqar_sequences_pair_every_query_with_its_value():
    data = recall.mqar(32, 128, VOCAB_SIZE, torch.Generator().manual_seed(0))
    input_ids, labels = data["input_ids"], data["labels"]
    assert input_ids.shape == labels.shape == (32, 128)
    pairs = 128 // recall.TOKENS_PER_PAIR
    half = (VOCAB_SIZE - 1) // 2
    for tokens, targets in zip(input_ids.tolist(), labels.tolist()):
        keys, values = tokens[0 : 2 * pairs : 2], tokens[1 : 2 * pairs : 2]
        assert len(set(keys)) == len(set(values)) == pairs
        assert all(1 <= key <= half < value <= 2 * half for key, value in zip(keys, values))
        answer = dict(zip(keys, values))
        scored = [position for position, target in enumerate(targets) if target != -100]
        # One label per key, on the value after its query, never inside the pairs.
        assert len(scored) == pairs and min(scored) > 2 * pairs
        assert sorted(tokens[position - 1] for position in scored) == sorted(keys)
        assert all(targets[position] == tokens[position] == answer[tokens[position - 1]] for position in scored)
        rest = set(range(2 * pairs, 128)) - set(scored) - {position - 1 for position in scored}
        assert all(tokens[position] == recall.BLANK for position in rest)
    again = recall.mqar(32, 128, VOCAB_SIZE, torch.Generator().manual_seed(0))
    assert torch.equal(again["input_ids"], input_ids)


def test_mqar_refuses_more_pairs_than_the_vocabulary_holds():
    with pytest.raises(ValueError, match="asks for 32 pairs, but the vocabulary \\(33\\) holds 1 to 16"):
        recall.mqar(1, 512, 33, torch.Generator())


class LookupModel(nn.Module):
    """Predicts, at each position, the token that followed the current token's first earlier occurrence (a perfect
    recall), or the current token itself when `recall` is False."""

    def __init__(self, recall: bool):
        super().__init__()
        self.recall = recall
        self.device = torch.device("cpu")

    def forward(self, input_ids: torch.Tensor, use_cache: bool = False) -> CausalLMOutput:
        predictions = input_ids.clone()
        if self.recall:
            for row in range(input_ids.shape[0]):
                tokens = input_ids[row].tolist()
                for position, token in enumerate(tokens):
                    earlier = [j for j in range(position - 1) if tokens[j] == token and token != recall.BLANK]
                    if earlier:
                        predictions[row, position] = tokens[earlier[0] + 1]
        return CausalLMOutput(logits=nn.functional.one_hot(predictions, VOCAB_SIZE).float())


def test_recall_accuracy_counts_the_query_predictions_only():
    data = recall.mqar(8, 64, VOCAB_SIZE, torch.Generator().manual_seed(1))
    assert recall.recall_accuracy(LookupModel(recall=True), data, batch_size=3) == 1.0
    assert recall.recall_accuracy(LookupModel(recall=False), data, batch_size=3) == 0.0
    # A model right on half of the sequences scores one half.
    half_wrong = {key: value.clone() for key, value in data.items()}
    half_wrong["labels"][:4][half_wrong["labels"][:4] != -100] += 1
    assert recall.recall_accuracy(LookupModel(recall=True), half_wrong, batch_size=8) == 0.5


@pytest.mark.benchmark
def test_recall_benchmark_at_a_tiny_size_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "out"
    recall.main(["--output-dir", str(out), "--widths", "16", "32", "--lengths", "32", "64", "--max-steps", "4",
                 "--batch-tokens", "128", "--test-sequences", "4", "--head-dim", "8", "--workers", "2"])
    report = json.loads((out / "results.json").read_text())
    runs = report["runs"]
    assert {(run["model"], run["hidden_size"], run["length"]) for run in runs} == {
        (name, width, length) for name in recall.MODELS for width in (16, 32) for length in (32, 64)
    }
    assert len(runs) == len(recall.MODELS) * 4
    for run in runs:
        assert 0.0 <= run["accuracy"] <= 1.0 and run["parameters"] > 0 and run["train_seconds"] > 0
        assert run["pairs"] == run["length"] // recall.TOKENS_PER_PAIR
    assert report["environment"]["command"].startswith("python -m benchmarks.recall --output-dir")
    table = (out / "results.md").read_text().splitlines()
    assert table[0] == "| model | L=32, d=16 | L=32, d=32 | L=64, d=16 | L=64, d=32 |"
    assert [line.split(" | ")[0] for line in table[2:]] == [f"| {name}" for name in recall.MODELS]
    assert (out / "recall.png").read_bytes().startswith(b"\x89PNG")
    # A finished sweep is not replaced unless asked.
    with pytest.raises(SystemExit):
        recall.main(["--output-dir", str(out), "--widths", "16", "--lengths", "32", "--max-steps", "1"])
    assert "already holds a recall sweep; pass --overwrite" in capsys.readouterr().err
    assert json.loads((out / "results.json").read_text()) == report


def test_recall_benchmark_names_a_length_the_vocabulary_cannot_fill(tmp_path, capsys):
    with pytest.raises(SystemExit):
        recall.main(["--output-dir", str(tmp_path), "--lengths", "1024", "--vocab-size", "65"])
    assert "length 1024 asks for 64 pairs, but the vocabulary (65) holds 1 to 32" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
