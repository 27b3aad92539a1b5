"""Two processes (gloo on CPU, through `accelerate launch`) train every kind of model to the losses of one process
with the same global batch, and convert a teacher to the student of one process."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_convert_families import llama_teacher
from test_modeling import tiny_model
from test_training_contract import assert_chunk_head_update_of_one_batch

from fiftynet.conversion.compress import compressed_copy
from fiftynet.training.corpus import load_corpus
from modeling_fiftynet import FiftyNetByteTokenizer


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def saved_kinds(root: Path) -> dict[str, list[str]]:
    """`fiftynet train` arguments for each kind of model: new ones, and saved folders of every kind `--model` takes
    (a chunk head's parameters get no gradient from the LM loss, which DDP refuses unless they are frozen)."""
    folders = {
        "chunk head": tiny_model(chunk_head_size=2),
        "compressed": compressed_copy(tiny_model(), "svd", 0.5),
        "converted GPT-2 shape": tiny_model(num_hidden_layers=2, mixer_types=["spectral_conv", "attention"],
                                            position_encoding="learned", norm_type="layer_norm", mlp_type="plain",
                                            mlp_bias=True, mixer_bias=True, attention_bias=True,
                                            hidden_act="gelu_new"),
    }
    kinds = {
        "new": ["--set", "hidden_size=16", "num_hidden_layers=1"],
        "new hybrid": ["--set", "hidden_size=16", "num_hidden_layers=2", "num_attention_heads=2",
                       "mixer_types=[spectral_conv, attention]"],
    }
    for name, model in folders.items():
        folder = root / name.replace(" ", "_")
        model.save_pretrained(folder)
        FiftyNetByteTokenizer().save_pretrained(folder)
        kinds[name] = ["--model", str(folder)]
    kinds["LoRA"] = ["--model", str(root / "converted_GPT-2_shape"), "--lora"]
    return kinds


RUN_EVERY_KIND = """
import json, sys
from fiftynet.training import train

common, kinds, root = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
for name, arguments in kinds.items():
    train.main([*common, *arguments, "--output_dir", f"{root}/{name}"])
"""


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(load_corpus("validation")[:20_000])
    kinds = saved_kinds(tmp_path)
    common = ["--data", str(text), "--max_steps", "3", "--logging_steps", "1", "--block_size", "32",
              "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no", "--use_cpu"]
    script = tmp_path / "run_every_kind.py"
    script.write_text(textwrap.dedent(RUN_EVERY_KIND))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf_home")}
    # `--multi_gpu` is accelerate's multi-process (DDP) launcher; with `--use_cpu` the Trainer runs it on CPU with
    # gloo. (`accelerate launch --cpu` starts a single process, whatever --num_processes says.)
    two = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", str(free_port()), str(script),
         json.dumps([*common, "--per_device_train_batch_size", "2"]), json.dumps(kinds), str(tmp_path / "two")],
        env=env, capture_output=True, text=True,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    for said in ("M trainable); ", "saved to "):  # each summary line once, not once per process
        assert two.stdout.count(said) == len(kinds), two.stdout
    one = subprocess.run(
        [sys.executable, str(script), json.dumps([*common, "--per_device_train_batch_size", "4"]), json.dumps(kinds),
         str(tmp_path / "one")],
        env=env, capture_output=True, text=True,
    )
    assert one.returncode == 0, one.stderr[-3000:]

    def losses(run: str, kind: str) -> list[float]:
        log = json.loads((tmp_path / run / kind / "metrics.json").read_text())["log_history"]
        return [entry["loss"] for entry in log if "loss" in entry]

    for kind in kinds:
        assert len(losses("two", kind)) == 3, kind
        assert losses("two", kind) == pytest.approx(losses("one", kind), abs=1e-4), kind
    # The chunk head was frozen: both runs kept it as it was saved.
    saved = load_file(tmp_path / "chunk_head" / "model.safetensors")["chunk_head.weight"]
    for run in ("one", "two"):
        assert torch.equal(load_file(tmp_path / run / "chunk head" / "model" / "model.safetensors")["chunk_head.weight"],
                           saved)


ONE_CHUNK_HEAD_STEP = """
import sys
from pathlib import Path

import torch
from test_training_contract import chunk_head, chunk_head_model, masked_blocks, one_update

output = Path(sys.argv[1])
loss, parameters = one_update(chunk_head.ChunkHeadTrainer, chunk_head_model(), masked_blocks(), output, 2, 1)
if torch.distributed.get_rank() == 0:
    torch.save((loss, parameters), output / "update.pt")
"""


def test_two_processes_give_a_chunk_head_the_update_of_one_batch(tmp_path):
    """Two processes whose batches hold different numbers of targets: the chunk loss is divided by the count over
    both (`average_tokens_across_devices`), and scaled back for DDP's average of the gradients."""
    script = tmp_path / "one_chunk_head_step.py"
    script.write_text(ONE_CHUNK_HEAD_STEP)
    tests = Path(__file__).parent
    python_path = os.pathsep.join(filter(None, [str(tests), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": python_path}
    two = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", str(free_port()), str(script), str(tmp_path / "two")],
        env=env, capture_output=True, text=True,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert_chunk_head_update_of_one_batch(*torch.load(tmp_path / "two" / "update.pt"), tmp_path)


@pytest.mark.parametrize("streaming", [False, True], ids=["blocks", "streamed"])
def test_two_processes_convert_as_one_process_with_the_same_global_batch(tmp_path, streaming):
    """`accelerate launch -m fiftynet.conversion.convert` on 2 processes: both distillation stages (the layer-wise
    one a layer at a time) give the student of one process with the same global batch, and one report; from packed
    blocks (a sampler shared by the processes) and from a stream (read by the first process, sent to both)."""
    teacher, validation = llama_teacher(tmp_path)
    common = ["--teacher", str(teacher), "--keep_attention", "1", "--layerwise_group_size", "1", "--block_size", "64",
              "--calibration_blocks", "4", "--layerwise_steps", "3", "--max_steps", "3", "--logging_steps", "1",
              "--per_device_eval_batch_size", "32", "--report_to", "none", "--data", str(validation),
              "--validation_data", str(validation), "--use_cpu", *(["--streaming"] if streaming else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(tmp_path / "hf_home")}
    two = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
         "--main_process_port", str(free_port()), "-m", "fiftynet.conversion.convert", *common,
         "--per_device_train_batch_size", "1", "--out", str(tmp_path / "two")],
        env=env, capture_output=True, text=True,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stderr.count("[convert] end_to_end: ") == 1  # the main process reports
    one = subprocess.run(
        [sys.executable, "-m", "fiftynet.conversion.convert", *common, "--per_device_train_batch_size", "2",
         "--out", str(tmp_path / "one")],
        env=env, capture_output=True, text=True,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    reports = {run: json.loads((tmp_path / run / "report.json").read_text()) for run in ("one", "two")}
    for mine, theirs in zip(reports["two"]["stages"], reports["one"]["stages"], strict=True):
        assert mine["tokens" if "tokens" in mine else "stage"] == theirs["tokens" if "tokens" in mine else "stage"]
        assert mine["perplexity"] == pytest.approx(theirs["perplexity"], rel=1e-5), mine["stage"]
    assert reports["two"]["stages"][-1]["perplexity"] != reports["two"]["stages"][1]["perplexity"]  # it trained
    weights = {run: load_file(tmp_path / run / "model" / "model.safetensors") for run in ("one", "two")}
    for name, tensor in weights["one"].items():
        torch.testing.assert_close(weights["two"][name], tensor, rtol=1e-5, atol=1e-5, msg=name)
