"""`fiftynet train` and `fiftynet tokenizer train`: outputs of a run, config sources, BPE, resume equivalence."""

import json

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from fiftynet.training import cli, train
from fiftynet.training.corpus import load_corpus
from modeling_fiftynet import FiftyNetConfig


# A model and run small enough for seconds on two CPU cores.
TINY = ["--set", "hidden_size=16", "num_hidden_layers=1", "--block_size", "32", "--per_device_train_batch_size", "4",
        "--report_to", "none", "--eval_strategy", "no", "--save_strategy", "no"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(load_corpus("validation")[:20_000])
    return path


def test_train_writes_model_metrics_curve_and_tensorboard_logs(tmp_path, text_file, capsys):
    out = tmp_path / "run"
    cli.main(["train", "--data", str(text_file), "--output_dir", str(out), *TINY, "--max_steps", "4",
              "--logging_steps", "1", "--report_to", "tensorboard"])
    assert "bits per byte" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    validation = metrics["validation"]
    assert validation["eval_perplexity"] == pytest.approx(torch.tensor(validation["eval_loss"]).exp().item(), rel=1e-3)
    # One byte per token with the byte tokenizer (the text is ASCII).
    assert validation["eval_bits_per_byte"] == pytest.approx(validation["eval_bits_per_token"])
    assert 0 <= validation["eval_accuracy"] <= 1
    assert [entry["step"] for entry in metrics["log_history"] if "loss" in entry] == [1, 2, 3, 4]
    assert (out / "loss_curve.png").read_bytes().startswith(b"\x89PNG")
    assert list((out / "runs").rglob("events.out.tfevents.*")), "TensorBoard logs are missing"

    files = {path.name for path in (out / "model").iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    model = AutoModelForCausalLM.from_pretrained(out / "model", trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(out / "model", trust_remote_code=True)
    assert model.config.hidden_size == 16 and len(tokenizer) == model.config.vocab_size
    card = ModelCard.load(out / "model" / "README.md")
    assert {result.metric_type for result in card.data.eval_results} == {"bits_per_byte", "perplexity", "accuracy"}


def test_config_file_and_overrides_set_any_field(tmp_path, text_file):
    config_file = tmp_path / "config.yaml"
    config_file.write_text("hidden_size: 24\nnum_hidden_layers: 2\nmixer_types: [nfo, attention]\n")
    out = tmp_path / "run"
    cli.main(["train", "--data", str(text_file), "--output_dir", str(out), *TINY, "--max_steps", "1",
              "--config_file", str(config_file), "--config-override", "hidden_size=32", "num_attention_heads=2",
              "fourier_kernel_size=16", "fourier_modes=4"])
    config = FiftyNetConfig.from_pretrained(out / "model")
    # TINY's --set hidden_size=16 is replaced by the later --config-override, which wins over the file.
    assert (config.hidden_size, config.num_hidden_layers, config.mixer_types) == (32, 2, ["nfo", "attention"])
    assert config.fourier_kernel_size == 16


def test_bpe_tokenizer_trains_and_bits_per_byte_uses_the_byte_count(tmp_path, text_file):
    bpe = tmp_path / "bpe"
    cli.main(["tokenizer", "train", "--text", str(text_file), "--vocab_size", "400", "--output_dir", str(bpe)])
    tokenizer = AutoTokenizer.from_pretrained(bpe)
    assert len(tokenizer) == 400 and tokenizer.decode(tokenizer("And God said")["input_ids"]) == "And God said"
    out = tmp_path / "run"
    cli.main(["train", "--data", str(text_file), "--tokenizer", str(bpe), "--output_dir", str(out), *TINY,
              "--max_steps", "2"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert AutoModelForCausalLM.from_pretrained(out / "model").config.vocab_size == 400
    assert 0.2 < metrics["tokens_per_byte"] < 0.9, "a BPE token spans several bytes"
    validation = metrics["validation"]
    assert validation["eval_bits_per_byte"] == pytest.approx(
        validation["eval_bits_per_token"] * metrics["tokens_per_byte"])


class StopAt(TrainerCallback):
    """Interrupts training after `step`, with a checkpoint, as a killed job would have left it."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = control.should_training_stop = True


def test_resume_continues_to_the_losses_of_an_uninterrupted_run(tmp_path, text_file):
    def arguments(out):
        return train.parse_arguments(["--data", str(text_file), "--output_dir", str(out), *TINY, "--max_steps", "6",
                                      "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "100"])

    def losses(out):
        log = json.loads((out / "metrics.json").read_text())["log_history"]
        return [(entry["step"], entry["loss"]) for entry in log if "loss" in entry]

    train.run(*arguments(tmp_path / "whole"))
    train.run(*arguments(tmp_path / "split"), callbacks=[StopAt(3)])
    assert [step for step, _ in losses(tmp_path / "split")] == [1, 2, 3]
    script, lora_args, training_args = arguments(tmp_path / "split")
    script.resume = str(tmp_path / "split")  # the folder: its latest checkpoint, checkpoint-3
    train.run(script, lora_args, training_args)
    whole, resumed = losses(tmp_path / "whole"), losses(tmp_path / "split")
    assert [step for step, _ in resumed] == [1, 2, 3, 4, 5, 6]
    assert [loss for _, loss in resumed] == pytest.approx([loss for _, loss in whole], abs=1e-5)
