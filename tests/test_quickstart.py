"""`fiftynet quickstart` end to end, shrunk to seconds: train, evaluate, save a Hub-ready folder, reload, sample."""

import json

import pytest
from huggingface_hub import ModelCard

from fiftynet.training import cli


def test_quickstart_trains_saves_reloads_and_samples(tmp_path, capsys):
    out = tmp_path / "quick"
    cli.main(["quickstart", "--output-dir", str(out), "--max-steps", "3", "--hidden-size", "16", "--num-layers", "1",
              "--block-size", "64", "--batch-size", "4", "--max-new-tokens", "5"])
    printed = capsys.readouterr().out
    assert "validation bits per byte:" in printed and "unigram baseline:" in printed and "sample:" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert 4.0 < metrics["unigram_bits_per_byte"] < 5.0
    assert metrics["validation_bits_per_byte"] > 0
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer_config.json", "README.md", "modeling_fiftynet.py"} <= files
    assert not any(path.is_dir() for path in out.iterdir()), "only the model's own files belong in the folder"
    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    result = card.data.eval_results[0]
    assert result.metric_type == "bits_per_byte"
    assert result.metric_value == pytest.approx(metrics["validation_bits_per_byte"], abs=1e-4)


def test_cli_help_lists_quickstart(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "quickstart" in capsys.readouterr().out
