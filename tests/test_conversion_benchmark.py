"""`python -m benchmarks.conversion` at a tiny size: a teacher trained by `fiftynet.conversion.teacher`, the
all-spectral and hybrid conversions, the control, and a report whose numbers are the runs' own. How good the
conversion is at this size is never asserted; docs/conversion.md has the measured run."""

import json
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import AutoConfig

from benchmarks import conversion as benchmark
from fiftynet.conversion import teacher
from fiftynet.training.corpus import CORPUS_NAME, load_corpus
from fiftynet.training.data import DataArguments


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
    for kind, run in (("all_spectral", runs[report["best_all_spectral"]]), ("hybrid", hybrid), ("control", control)):
        assert report[f"{kind}_greedy_agreement"] == run["stages"][-1]["greedy_agreement"]
    assert all(run["stages"][0]["greedy_agreement"] == 1.0 for run in runs.values())
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


def fake_teacher(folder: Path, **report) -> Path:
    """A teacher folder holding what the benchmark reads of it: its config and its report (no weights)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": 64}))
    (folder / "teacher_report.json").write_text(json.dumps({"parameters": 1_000, "training_tokens": 100_000,
                                                            **report}))
    return folder


TEXT_OPTIONS = {f"--{option.name}" for option in fields(DataArguments)}
CORPUS_DATA = {"data": None, "validation_data": None, "dataset_name": None, "dataset_config": None,
               "text_column": "text", "validation_fraction": 0.05, "streaming": False}


@pytest.fixture
def conversions(monkeypatch) -> SimpleNamespace:
    """`convert.main` replaced by a stand-in that records its arguments and returns a run from the teacher's 10.0 to
    `final` (the control from `floor`): healthy unless a test changes them. The benchmark's logic, without training."""
    recorded = SimpleNamespace(calls=[], final={"all": 11.0, "hybrid": 10.5, "control": 20.0}, floor=30.0)

    def convert(argv: list[str]) -> dict:
        recorded.calls.append(argv)
        options = dict(zip(argv, argv[1:]))
        kind = "control" if "--control" in argv else "hybrid" if "--keep_attention" in argv else "all"
        stages = [("teacher", 10.0), ("spectral_init", recorded.floor if kind == "control" else 15.0),
                  *([] if kind == "control" else [("layerwise", 12.0)]), ("end_to_end", recorded.final[kind])]
        agreement = {"teacher": 1.0, "all": 0.5, "hybrid": 0.75, "control": 0.25}
        return {"stages": [{"stage": stage, "perplexity": perplexity,
                            "greedy_agreement": agreement["teacher" if stage == "teacher" else kind]}
                           for stage, perplexity in stages],
                "mixer_types": ["attention" if kind == "hybrid" and layer == 0 else "spectral_conv"
                                for layer in range(4)],
                "arguments": {"mixer": options["--mixer"], "filter_fit": options["--filter_fit"]}}

    monkeypatch.setattr(benchmark.convert, "main", convert)
    return recorded


def data_options(call: list[str]) -> list[str]:
    """The text options of one `convert` call, with their values."""
    options, taking = [], False
    for argument in call:
        taking = argument in TEXT_OPTIONS if argument.startswith("--") else taking
        options += [argument] if taking else []
    return options


def test_without_data_options_the_benchmark_distils_on_the_teachers_recorded_data(tmp_path, conversions, capsys):
    train_text, validation_text, other = (tmp_path / name for name in ("train.txt", "valid.txt", "other.txt"))
    for file in (train_text, validation_text, other):
        file.write_text("text\n")
    recorded = {**CORPUS_DATA, "data": [str(train_text)], "validation_data": [str(validation_text)]}
    teacher_dir = fake_teacher(tmp_path / "teacher", data="train.txt", data_arguments=recorded)

    report = benchmark.main(["--teacher", str(teacher_dir), "--output-dir", str(tmp_path / "out")])
    expected = ["--data", str(train_text), "--validation_data", str(validation_text)]
    assert len(conversions.calls) == 3 and all(data_options(call) == expected for call in conversions.calls)
    assert f"Data: the teacher's, as its report records: {' '.join(expected)}" in capsys.readouterr().out
    assert report["data"] == expected

    # Options given win over the report, and say so.
    conversions.calls.clear()
    benchmark.main(["--teacher", str(teacher_dir), "--output-dir", str(tmp_path / "other"), "--data", str(other)])
    assert all(data_options(call) == ["--data", str(other)] for call in conversions.calls)
    assert f"Data: as given: --data {other}" in capsys.readouterr().out


def test_a_teacher_report_from_before_data_was_recorded_still_names_the_bundled_corpus(tmp_path, conversions,
                                                                                      capsys):
    teacher_dir = fake_teacher(tmp_path / "teacher", data=CORPUS_NAME)  # as the committed results' teacher
    benchmark.main(["--teacher", str(teacher_dir), "--output-dir", str(tmp_path / "out")])
    assert all(data_options(call) == [] for call in conversions.calls)
    assert "Data: the teacher's, as its report records: the bundled corpus" in capsys.readouterr().out


@pytest.mark.parametrize("teacher_report, options, message", [
    ({"data": "train.txt"}, [], "the teacher's report names its text only as 'train.txt'"),
    ({"data": "gone.txt", "data_arguments": {**CORPUS_DATA, "data": ["/nonexistent/gone.txt"]}}, [],
     "the text the teacher's report records is gone (/nonexistent/gone.txt)"),
    ({"data": CORPUS_NAME}, ["--validation-data", "valid.txt"], "--validation-data needs --data"),
])
def test_a_teacher_whose_data_cannot_be_found_again_is_refused_in_one_line(tmp_path, conversions, capsys,
                                                                           teacher_report, options, message):
    teacher_dir = fake_teacher(tmp_path / "teacher", **teacher_report)
    with pytest.raises(SystemExit):
        benchmark.main(["--teacher", str(teacher_dir), "--output-dir", str(tmp_path / "out"), *options])
    error = capsys.readouterr().err.splitlines()[-1]
    assert message in error and (options or "pass --data" in error)
    assert not conversions.calls and not (tmp_path / "out").exists()


def test_the_default_output_dir_is_local_and_an_earlier_report_is_replaced_only_when_asked(
        tmp_path, monkeypatch, conversions, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--teacher", str(fake_teacher(tmp_path / "teacher", data_arguments=CORPUS_DATA))]
    report = benchmark.main(argv)
    output_dir = tmp_path / "conversion-benchmark"
    assert json.loads((output_dir / "report.json").read_text()) == report
    assert not (tmp_path / "benchmarks").exists()

    conversions.calls.clear()
    with pytest.raises(SystemExit):
        benchmark.main(argv)
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "error: conversion-benchmark holds an earlier run's report or conversions: pass --overwrite to replace them, "
        "or choose another --output-dir")
    assert not conversions.calls
    (output_dir / "report.md").write_text("kept")
    benchmark.main([*argv, "--overwrite"])
    assert (output_dir / "report.md").read_text() != "kept"


def healthy_report() -> dict:
    """A report as `benchmark.main` writes it, by hand: a teacher whose attention matters, students that improve."""
    def run(*perplexities: float, control: bool = False) -> dict:
        names = ["teacher", "spectral_init", "end_to_end"] if control else ["teacher", "spectral_init", "layerwise",
                                                                           "end_to_end"]
        return {"stages": [{"stage": name, "perplexity": value, "greedy_agreement": 10.0 / value}
                           for name, value in zip(names, perplexities)]}

    return {"teacher_perplexity": 10.0, "floor_ratio": 3.0, "all_spectral_ratio": 1.1, "hybrid_ratio": 1.05,
            "control_ratio": 2.0, "all_spectral_greedy_agreement": 10 / 11, "hybrid_greedy_agreement": 10 / 10.5,
            "control_greedy_agreement": 0.5, "budget_fraction": 0.05, "budget_tokens": 5_000,
            "best_all_spectral": "all_spectral (spectral_conv, fit outputs)",
            "teacher": {"parameters": 1_000, "training_tokens": 100_000},
            "runs": {"all_spectral (spectral_conv, fit outputs)": run(10.0, 15.0, 12.0, 11.0),
                     "hybrid (keep_attention auto)": run(10.0, 12.0, 11.0, 10.5),
                     "control": run(10.0, 30.0, 20.0, control=True)}}


def test_a_healthy_report_has_no_warnings():
    report = healthy_report()
    assert benchmark.report_warnings(report) == []
    assert "Warning" not in benchmark.markdown(report)


def test_a_teacher_that_barely_mixes_tokens_and_students_that_get_worse_are_warned_about():
    report = healthy_report()
    report["floor_ratio"], report["control_ratio"] = 1.02, 1.01  # the control ends better than all spectral's 1.1
    report["runs"]["control"]["stages"][1:] = [{"stage": "spectral_init", "perplexity": 10.2, "greedy_agreement": 0.9},
                                               {"stage": "end_to_end", "perplexity": 10.1, "greedy_agreement": 0.9}]
    report["runs"]["hybrid (keep_attention auto)"]["stages"][-1]["perplexity"] = 12.5  # worse than its init, 12.0
    warnings = benchmark.report_warnings(report)
    assert len(warnings) == 3
    assert "floor_ratio 1.020 is below 2.0" in warnings[0]
    assert "the control ends better than the best all-spectral student (1.010x against 1.100x" in warnings[1]
    assert "hybrid (keep_attention auto) ends worse than its initialisation (perplexity 12.50 after end_to_end, " \
           "12.00 after spectral_init)" in warnings[2]
    text = benchmark.markdown(report)
    assert all(f"**Warning: {warning}**" in text for warning in warnings)


def test_the_warnings_reach_report_json_report_md_and_stdout(tmp_path, conversions, capsys):
    conversions.floor, conversions.final["control"] = 10.2, 10.1
    teacher_dir = fake_teacher(tmp_path / "teacher", data_arguments=CORPUS_DATA)
    report = benchmark.main(["--teacher", str(teacher_dir), "--output-dir", str(tmp_path / "out")])
    assert len(report["warnings"]) == 2 and report["warnings"] == benchmark.report_warnings(report)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["warnings"] == report["warnings"]
    out, table = capsys.readouterr().out, (tmp_path / "out" / "report.md").read_text()
    assert all(f"**Warning: {warning}**" in text for warning in report["warnings"] for text in (out, table))


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_teachers_report_records_its_data_and_each_evaluation_once(tmp_path, monkeypatch, arch):
    monkeypatch.chdir(tmp_path)
    Path("train.txt").write_text(load_corpus("train")[:20_000])
    Path("valid.txt").write_text(load_corpus("validation")[:3_000])
    report = teacher.main(["--arch", arch, "--size", "tiny", "--output_dir", "teacher", "--max_steps", "2",
                           "--eval_steps", "1", "--vocab_size", "300", "--block_size", "32",
                           "--per_device_train_batch_size", "2", "--data", "train.txt", "--validation_data", "valid.txt"])
    # Evaluated at steps 1 and 2, then once more at the end (step 2 again): each step is in the curve once.
    assert [entry["step"] for entry in report["validation_curve"]] == [1, 2]
    assert report["validation_curve"][-1]["perplexity"] == report["validation"]["eval_perplexity"]
    assert report["data_arguments"] == {**CORPUS_DATA, "data": [str(tmp_path.resolve() / "train.txt")],
                                        "validation_data": [str(tmp_path.resolve() / "valid.txt")]}
    assert json.loads(Path("teacher/teacher_report.json").read_text()) == report
    config = AutoConfig.from_pretrained("teacher")
    assert config.model_type == report["arch"] == arch
    if arch == "llama":  # the Llama block: grouped-query attention 2:1, a tied head
        assert config.num_key_value_heads * 2 == config.num_attention_heads and config.tie_word_embeddings


def test_learning_rates_and_the_lm_weight_reach_every_conversion_and_the_report(tmp_path, conversions):
    teacher_dir = fake_teacher(tmp_path / "teacher", data_arguments=CORPUS_DATA)
    report = benchmark.main(["--teacher", str(teacher_dir), "--output-dir", str(tmp_path / "out"),
                             "--learning-rate", "0.002", "--layerwise-learning-rate", "0.004", "--lm-weight", "0"])
    for call in conversions.calls:
        options = dict(zip(call, call[1:]))
        assert (options["--learning_rate"], options["--layerwise_learning_rate"], options["--lm_weight"]) == (
            "0.002", "0.004", "0.0")
    assert (report["learning_rate"], report["layerwise_learning_rate"], report["lm_weight"]) == (0.002, 0.004, 0.0)
    report = benchmark.main(["--teacher", str(teacher_dir), "--output-dir", str(tmp_path / "again")])
    assert "--learning_rate" not in conversions.calls[-1] and "--lm_weight" not in conversions.calls[-1]
    # fiftynet convert's defaults
    assert (report["learning_rate"], report["layerwise_learning_rate"], report["lm_weight"]) == (5e-4, 1e-3, 1.0)
