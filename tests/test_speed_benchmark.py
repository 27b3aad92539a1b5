"""`benchmarks/gpu_check.sh --device cpu`: the GPU check's every step at tiny sizes, so that the script is known to
work before a GPU sees it. Its kernel tests run through Triton's interpreter, and `benchmarks/speed.py` fills every
section and writes the plots.

Only that it runs and reports is checked here; how fast one model is against the other is never asserted.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import speed
from modeling_fiftynet.spectral_ops import modal_chunk_scan_triton

ROOT = Path(__file__).resolve().parent.parent


def positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


@pytest.mark.benchmark
def test_gpu_check_runs_every_step_on_cpu(tmp_path):
    check = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--output-dir",
                            str(tmp_path)], env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                           text=True, timeout=600)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
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

    assert {(row["model"], row["length"]) for row in results["training"]} == {(model, 64) for model in speed.MODELS}
    for row in results["training"]:
        assert row["tokens_per_step"] == 128
        assert all(positive(row[key]) for key in ("step_ms", "tokens_per_second", "peak_memory_bytes")), row

    assert {(row["model"], row["batch"]) for row in results["generation"]} == {
        (model, batch) for model in speed.MODELS for batch in (1, 2)}
    for row in results["generation"]:
        assert row["prompt"] == 32 and row["new_tokens"] == 4
        assert all(positive(row[key]) for key in ("prefill_ms", "decode_ms", "decode_tokens_per_second")), row

    chunk = results["chunk_head"]
    assert chunk["identical_to_greedy"] is True and chunk["prompts"] == 1
    assert all(positive(chunk[key]) for key in ("tokens_per_forward_pass", "speedup", "pass_cost"))

    kernel_tests = results["kernel_tests"]
    assert any("interpreter" in name for name in kernel_tests) and any("on_gpu" in name for name in kernel_tests)
    expected = "passed" if modal_chunk_scan_triton is not None else "skipped"
    assert all(outcome == ("skipped" if "on_gpu" in name else expected) for name, outcome in kernel_tests.items())

    tables = (tmp_path / "speed.md").read_text()
    assert tables == speed.markdown(results)
    assert "| 128 |" in tables and "oom" not in tables and "Chunk head" in tables and "Triton kernel tests" in tables
    for name in ("speed_mixer.png", "speed_training.png", "speed_decode.png"):
        assert (tmp_path / name).read_bytes().startswith(b"\x89PNG"), name

    conversion = json.loads((tmp_path / "convert_check.json").read_text())
    assert [stage["stage"] for stage in conversion["stages"]] == ["teacher", "spectral_init", "layerwise", "end_to_end"]
    assert conversion["student_loads"] is True and conversion["teacher"]["num_hidden_layers"] == 4
    assert {"bfloat16", "--streaming", "--layerwise_group_size"} <= set(conversion["convert_arguments"])
    assert positive(conversion["peak_bytes"])
    assert conversion["estimated_total_bytes"] == sum(conversion["estimated_bytes"].values()) > 0
    assert set(conversion["tokens_per_second"]) == {"layerwise", "end_to_end"}
    assert not list(tmp_path.rglob("*.safetensors"))  # the teacher and the student are not left in the report folder


def test_gpu_check_refuses_unknown_arguments(tmp_path):
    for arguments, message in ((["--device", "tpu"], "--device must be cuda or cpu"),
                               (["--devise", "cpu"], "unknown argument '--devise'")):
        check = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--output-dir",
                                str(tmp_path / "report"), *arguments], capture_output=True, text=True)
        assert check.returncode == 2 and message in check.stderr
        assert not (tmp_path / "report").exists()
