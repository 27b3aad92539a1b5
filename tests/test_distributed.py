"""Two processes (gloo on CPU, through `accelerate launch`) train to the losses of one process with the same batch."""

import json
import os
import socket
import subprocess
import sys

import pytest

from training import cli
from training.corpus import load_corpus


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(load_corpus("validation")[:20_000])
    run = ["--data", str(text), "--max_steps", "4", "--logging_steps", "1", "--block_size", "32", "--set",
           "hidden_size=16", "num_hidden_layers=1", "--report_to", "none", "--eval_strategy", "no",
           "--save_strategy", "no", "--use_cpu"]
    # `--multi_gpu` is accelerate's multi-process (DDP) launcher; with `--use_cpu` the Trainer runs it on CPU with
    # gloo. (`accelerate launch --cpu` starts a single process, whatever --num_processes says.)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", str(free_port()), "-m", "training.train", *run, "--output_dir", str(tmp_path / "two"),
         "--per_device_train_batch_size", "2"],
        env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cli.main(["train", *run, "--output_dir", str(tmp_path / "one"), "--per_device_train_batch_size", "4"])

    def losses(folder):
        log = json.loads((tmp_path / folder / "metrics.json").read_text())["log_history"]
        return [entry["loss"] for entry in log if "loss" in entry]

    assert len(losses("two")) == 4
    assert losses("two") == pytest.approx(losses("one"), abs=1e-4)
