"""`python -m benchmarks.conversion` at a tiny size: a teacher trained by `fiftynet.conversion.teacher`, the
all-spectral and hybrid conversions, the control, and a report whose numbers are the runs' own. How good the
conversion is at this size is never asserted; docs/conversion.md has the measured run."""

import json

import pytest

from benchmarks import conversion as benchmark
from fiftynet.training.corpus import load_corpus


@pytest.mark.benchmark
def test_conversion_benchmark_reports_every_run_and_the_control(tmp_path, capsys):
    train_text, validation_text, eval_text = (tmp_path / name for name in ("train.txt", "valid.txt", "other.txt"))
    train_text.write_text(load_corpus("train")[:40_000])
    validation_text.write_text(load_corpus("validation")[:6_000])
    eval_text.write_text("A text the teacher never saw, of another kind than verses, and shorter than a block.\n")
    argv = ["--output-dir", str(tmp_path / "out"), "--teacher-size", "tiny", "--teacher-steps", "2", "--budget", "0.25",
            "--batch-size", "2", "--calibration-blocks", "2", "--mixers", "spectral_conv", "fftnet", "--data",
            str(train_text), "--validation-data", str(validation_text), "--eval-text", str(eval_text)]
    report = benchmark.main(argv)

    # The teacher, trained first: 2 steps of 16 blocks of 256 tokens (the teacher script's defaults).
    teacher_report = json.loads((tmp_path / "out" / "teacher" / "teacher_report.json").read_text())
    assert teacher_report["training_tokens"] == 2 * 16 * 256 == report["teacher"]["training_tokens"]
    assert teacher_report["training_wall_seconds"] > 0
    # A quarter of 8,192 teacher tokens at 512 per step: 2 layer-wise and 2 end-to-end steps; the control gets all
    # 4 end to end.
    assert (report["layerwise_steps"], report["end_to_end_steps"], report["budget_fraction"]) == (2, 2, 0.25)
    runs = report["runs"]
    assert set(runs) == {"all_spectral (spectral_conv, fit outputs)", "all_spectral (fftnet, fit outputs)",
                         "hybrid (keep_attention auto)", "control"}
    teacher_perplexity = report["teacher_perplexity"]
    for run in runs.values():
        assert run["stages"][0]["perplexity"] == teacher_perplexity
        assert sum(entry.get("tokens", 0) for entry in run["stages"]) == 4 * 512
        assert all(entry["eval_text_perplexity"] > 1 for entry in run["stages"])
    control = runs["control"]
    assert [entry["stage"] for entry in control["stages"]] == ["teacher", "spectral_init", "end_to_end"]
    assert report["floor_ratio"] == control["stages"][1]["perplexity"] / teacher_perplexity
    assert report["control_ratio"] == control["stages"][-1]["perplexity"] / teacher_perplexity
    best = runs[report["best_all_spectral"]]["stages"][-1]["perplexity"]
    assert best == min(runs[name]["stages"][-1]["perplexity"] for name in runs if name.startswith("all_spectral"))
    assert report["all_spectral_ratio"] == best / teacher_perplexity
    hybrid = runs["hybrid (keep_attention auto)"]
    importance = hybrid["layer_importance"]
    assert report["hybrid_kept_layers"] == [max(range(4), key=importance.__getitem__)]  # a quarter of 4 layers
    assert report["hybrid_ratio"] == hybrid["stages"][-1]["perplexity"] / teacher_perplexity
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
    table = (tmp_path / "out" / "report.md").read_text()
    assert "| control | end_to_end |" in table and "| hybrid (keep_attention auto) | layerwise |" in table

    # An earlier run's conversions are not replaced unless asked, nor when the arguments are wrong.
    with pytest.raises(SystemExit):
        benchmark.main(argv)
    assert "pass --overwrite to replace them" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.main([*argv, "--overwrite", "--budget", "0.01"])
    assert "buys 81 tokens, less than the end-to-end stage's one step of 512" in capsys.readouterr().err
    assert (tmp_path / "out" / "runs" / "control" / "model" / "config.json").is_file()
