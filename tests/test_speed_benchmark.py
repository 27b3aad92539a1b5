"""`benchmarks/speed.py` end to end on CPU with tiny models: every section is filled and the plots are written.

Only that it runs and reports is checked here; how fast one model is against the other is never asserted.
"""

import json

from benchmarks import speed

TINY = ["--device", "cpu", "--mixer-hidden-size", "64", "--mixer-heads", "2", "--hidden-size", "64", "--layers", "2",
        "--heads", "2", "--vocab-size", "512", "--lengths", "64", "128", "--prompts", "32", "--gen-batches", "1", "2",
        "--new-tokens", "4", "--train-tokens", "128", "--warmup", "0", "--repeats", "1", "--threads", "1"]


def positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_speed_benchmark_writes_every_section(tmp_path):
    speed.main(["--output-dir", str(tmp_path), *TINY])
    results = json.loads((tmp_path / "speed.json").read_text())

    environment = results["environment"]
    assert environment["device"].startswith("cpu") and environment["torch"] and environment["transformers"]
    assert environment["command"].startswith("python -m benchmarks.speed --output-dir")
    assert len(environment["code"]["modeling_fiftynet_sha256"]) == 16
    assert positive(results["copy_bandwidth_bytes_per_second"])

    assert {(row["op"], row["length"]) for row in results["mixer"]} == {
        (op, length) for op in (*speed.RAW_OPS, *speed.LAYERS) for length in (64, 128)}
    for row in results["mixer"]:
        assert all(positive(row[key]) for key in ("fwd_ms", "fwd_bwd_ms", "floor_ms", "floor_fraction")), row

    assert {(row["model"], row["length"]) for row in results["training"]} == {
        (model, length) for model in speed.MODELS for length in (64, 128)}
    for row in results["training"]:
        assert row["tokens_per_step"] == 128
        assert all(positive(row[key]) for key in ("step_ms", "tokens_per_second", "peak_memory_bytes")), row

    assert {(row["model"], row["batch"]) for row in results["generation"]} == {
        (model, batch) for model in speed.MODELS for batch in (1, 2)}
    for row in results["generation"]:
        assert row["prompt"] == 32 and row["new_tokens"] == 4
        assert all(positive(row[key]) for key in ("prefill_ms", "decode_ms", "decode_tokens_per_second")), row

    tables = (tmp_path / "speed.md").read_text()
    assert tables == speed.markdown(results)
    assert "| 128 |" in tables and "oom" not in tables
    for name in ("speed_mixer.png", "speed_training.png", "speed_decode.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name
