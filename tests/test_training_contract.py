"""Training and tooling that behave like transformers' own: every Trainer flag honoured (label smoothing, gradient
accumulation), no run overwritten or mixed with another, resumes that are exact or refused, added tokens emitted,
classifiers that pool like transformers', and a command line that reads like one tool."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from test_modeling import tiny_config, tiny_model
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LabelSmoother

from fiftynet.training import chunk_head, cli, train
from fiftynet.training.corpus import load_corpus
from fiftynet.training.errors import UsageError
from modeling_fiftynet import (
    FiftyNetByteTokenizer,
    FiftyNetForCausalLM,
    FiftyNetForSequenceClassification,
)

# --set comes last, so that a test can append more fields to it.
TINY = ["--block_size", "32", "--per_device_train_batch_size", "4", "--report_to", "none", "--eval_strategy", "no",
        "--save_strategy", "no", "--set", "hidden_size=16", "num_hidden_layers=1"]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(load_corpus("validation")[:20_000])
    return path


def blocks(count: int, length: int = 16, seed: int = 0) -> Dataset:
    ids = torch.randint(0, 256, (count, length), generator=torch.Generator().manual_seed(seed))
    return Dataset.from_dict({"input_ids": ids.numpy(), "labels": ids.numpy()}).with_format("torch")


def trainer_arguments(tmp_path, **overrides) -> TrainingArguments:
    settings = dict(output_dir=str(tmp_path / "trainer"), report_to="none", save_strategy="no", use_cpu=True,
                    logging_steps=1, max_steps=1, per_device_train_batch_size=4)
    return TrainingArguments(**{**settings, **overrides})


def test_label_smoothing_smooths_the_next_token_loss(tmp_path):
    """The Trainer shifts the labels of label smoothing only for causal LMs it knows by class name."""
    model = tiny_model()
    trainer = Trainer(model=model, args=trainer_arguments(tmp_path, label_smoothing_factor=0.1))
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "labels": ids.clone()}
    loss = trainer.compute_loss(model, dict(batch))
    with torch.no_grad():
        outputs = model(input_ids=batch["input_ids"])
    smoother = LabelSmoother(epsilon=0.1)
    torch.testing.assert_close(loss, smoother(outputs, batch["labels"], shift_labels=True))
    assert (loss - smoother(outputs, batch["labels"])).abs() > 1e-3  # the unshifted loss: predicting the current token


def test_fiftynet_train_with_label_smoothing_learns_the_next_token(tmp_path, text_file):
    """Without the shift, 30 steps learnt to copy the input: next-token accuracy 0.013 (the issue's run)."""
    cli.main(["train", "--data", str(text_file), "--output_dir", str(tmp_path / "run"), "--max_steps", "30",
              "--label_smoothing_factor", "0.1", *TINY, "hidden_size=32", "--per_device_train_batch_size", "8"])
    validation = json.loads((tmp_path / "run" / "metrics.json").read_text())["validation"]
    assert validation["eval_accuracy"] > 0.08


def one_update(trainer_class, model, dataset, tmp_path, batch: int, accumulation: int) -> tuple[float, torch.Tensor]:
    """One optimizer step of plain SGD (lr 1) over the first 4 examples; the logged loss and the new parameters."""
    args = trainer_arguments(tmp_path, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
                             optim="sgd", learning_rate=1.0, lr_scheduler_type="constant", weight_decay=0.0)
    trainer = trainer_class(model=model, args=args, train_dataset=dataset)
    trainer.train()
    loss = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    return loss, torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])


def chunk_head_model() -> FiftyNetForCausalLM:
    model = tiny_model()
    chunk_head.add_chunk_head(model, 2)
    return model


@pytest.mark.parametrize("kind", ["causal LM", "classifier", "chunk head"])
def test_gradient_accumulation_gives_the_update_of_one_batch(kind, tmp_path):
    build, trainer_class, dataset = {
        "causal LM": (tiny_model, Trainer, blocks(4)),
        "classifier": (lambda: FiftyNetForSequenceClassification(tiny_config(num_labels=3)), Trainer,
                       blocks(4).map(lambda example, index: {"labels": index % 3}, with_indices=True)),
        "chunk head": (chunk_head_model, chunk_head.ChunkHeadTrainer, blocks(4)),
    }[kind]
    results = []
    for batch, accumulation in ((4, 1), (2, 2)):
        torch.manual_seed(0)
        results.append(one_update(trainer_class, build(), dataset, tmp_path, batch, accumulation))
    (loss, parameters), (accumulated_loss, accumulated_parameters) = results
    assert accumulated_loss == pytest.approx(loss, rel=1e-4)
    torch.testing.assert_close(accumulated_parameters, parameters, rtol=1e-4, atol=1e-5)


def masked_blocks() -> Dataset:
    """Four blocks whose labels hide 0, 9, 4 and 3 tokens: however the sampler pairs them, two micro-batches (or two
    processes) hold different numbers of targets, for the next token and for each draft."""
    ids = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    for row, hidden in enumerate((slice(0, 0), slice(0, 9), slice(12, 16), slice(5, 8))):
        labels[row, hidden] = -100
    return Dataset.from_dict({"input_ids": ids.numpy(), "labels": labels.numpy()}).with_format("torch")


def assert_chunk_head_update_of_one_batch(loss: float, parameters: torch.Tensor, tmp_path: Path) -> None:
    """The step's loss is the mean over every draft's targets in the batch of 4, and its parameters those of one
    step on that batch (before the fix, 2 x 2 gave parameters 1.5e-3 apart, its loss 7e-4 relative)."""
    _, expected = one_update(chunk_head.ChunkHeadTrainer, chunk_head_model(), masked_blocks(), tmp_path / "one", 4, 1)
    with torch.no_grad():
        expected_loss = chunk_head_model()(**masked_blocks()[:]).chunk_loss.item()
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    # Float32 sums in another order: 3e-8 apart at most (parameters up to 0.1).
    torch.testing.assert_close(parameters, expected, rtol=1e-5, atol=1e-7)


def test_chunk_head_accumulation_is_exact_for_unequal_micro_batches(tmp_path):
    loss, parameters = one_update(chunk_head.ChunkHeadTrainer, chunk_head_model(), masked_blocks(), tmp_path, 2, 2)
    assert_chunk_head_update_of_one_batch(loss, parameters, tmp_path)


def test_a_classifier_without_a_mask_pools_the_last_token_that_is_not_padding():
    torch.manual_seed(0)
    model = FiftyNetForSequenceClassification(tiny_config(num_labels=3, initializer_range=0.5)).eval()
    texts = [[5, 6, 7, 8, 9], [5, 6, 7]]
    batch = torch.tensor([texts[0], texts[1] + [256, 256]])  # right padding with the pad id, no attention_mask
    with torch.no_grad():
        logits = model(batch).logits
        for row, text in enumerate(texts):
            torch.testing.assert_close(logits[row], model(torch.tensor([text])).logits[0])


def test_added_tokens_are_emitted_and_their_embeddings_trained():
    tokenizer = FiftyNetByteTokenizer()
    assert tokenizer.add_tokens(["<tool>", "<tool_end>"]) == 2
    ids = tokenizer("call <tool> now<tool_end> <|endoftext|>")["input_ids"]
    assert ids[5] == tokenizer.convert_tokens_to_ids("<tool>") == 259 and 260 in ids
    assert 258 not in ids and tokenizer.decode(ids) == "call <tool> now<tool_end> <|endoftext|>"
    model = tiny_model()
    model.resize_token_embeddings(len(tokenizer))
    batch = torch.tensor([ids])
    model(batch, labels=batch).loss.backward()
    assert model.model.embed_tokens.weight.grad[259:261].abs().sum(-1).min() > 0


def save_checkpoint_run(tmp_path, text_file, name: str = "run", extra: tuple[str, ...] = ()) -> str:
    out = tmp_path / name
    cli.main(["train", "--data", str(text_file), "--output_dir", str(out), "--max_steps", "2", *TINY,
              "--save_strategy", "steps", "--save_steps", "2", *extra])
    return str(out / "checkpoint-2")


def run_fails(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        train.main(argv)


def test_a_resume_that_cannot_be_exact_is_refused_unless_only_the_weights_are_wanted(tmp_path, text_file):
    checkpoint = save_checkpoint_run(tmp_path, text_file)
    (tmp_path / "run" / "checkpoint-2" / "optimizer.pt").unlink()
    base = ["--data", str(text_file), *TINY, "--max_steps", "3"]
    run_fails([*base, "--output_dir", str(tmp_path / "next"), "--resume", checkpoint],
              "optimizer.pt missing, so the run cannot continue as it would have.*--resume_weights_only")
    train.main([*base, "--output_dir", str(tmp_path / "next"), "--resume", checkpoint, "--resume_weights_only",
                "--logging_steps", "1"])
    log = json.loads((tmp_path / "next" / "metrics.json").read_text())["log_history"]
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2, 3]  # a new run, from step 1
    run_fails([*base, "--output_dir", str(tmp_path / "other"), "--resume_weights_only"], "pass it with --resume")


@pytest.mark.parametrize("damage", ["trainer_state.json", "model.safetensors", "optimizer.pt", "scheduler.pt",
                                    "config"])
def test_a_damaged_or_foreign_checkpoint_is_refused_by_name(damage, tmp_path, text_file):
    checkpoint = tmp_path / "run" / "checkpoint-2"
    save_checkpoint_run(tmp_path, text_file)
    base = ["--data", str(text_file), "--max_steps", "3", "--output_dir", str(tmp_path / "next"),
            "--resume", str(checkpoint), *TINY]
    if damage == "config":
        run_fails([*base, "hidden_size=32"], "is a checkpoint of another model: hidden_size=16 there, 32 here")
        return
    path = checkpoint / damage
    path.write_bytes(path.read_bytes()[:100])
    run_fails(base, f"{path} cannot be read.*the checkpoint is incomplete")


def test_a_resume_passes_over_a_checkpoint_a_kill_left_incomplete_and_says_so(tmp_path, text_file, capsys):
    save_checkpoint_run(tmp_path, text_file, extra=("--max_steps", "4", "--logging_steps", "1"))  # kept on resume
    run = tmp_path / "run"
    weights = run / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # killed while writing it
    capsys.readouterr()
    train.main(["--data", str(text_file), "--max_steps", "6", "--output_dir", str(run), "--resume", str(run), *TINY])
    said = capsys.readouterr().err
    assert f"{run / 'checkpoint-4'} cannot be continued from ({weights} cannot be read" in said
    assert f"resuming from {run / 'checkpoint-2'}, the newest complete checkpoint" in said
    log = json.loads((run / "metrics.json").read_text())["log_history"]
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2, 3, 4, 5, 6]  # 1-2 from checkpoint-2
    (run / "checkpoint-2" / "trainer_state.json").write_text("{")
    run_fails(["--data", str(text_file), "--output_dir", str(run), "--resume", str(run), *TINY],
              "none of its checkpoints can be continued from .*checkpoint-4")


def test_a_non_empty_output_dir_is_refused_unless_resumed_or_overwritten(tmp_path, text_file):
    quickstart_like = tmp_path / "quickstart"
    quickstart_like.mkdir()
    (quickstart_like / "metrics.json").write_text('{"validation_bits_per_byte": 1.67}')
    base = ["--data", str(text_file), *TINY, "--max_steps", "2"]
    run_fails([*base, "--output_dir", str(quickstart_like)], "is not empty .*metrics.json.*--overwrite_output_dir")
    assert (quickstart_like / "metrics.json").read_text() == '{"validation_bits_per_byte": 1.67}'

    save_checkpoint_run(tmp_path, text_file, extra=("--save_steps", "1"))
    earlier = tmp_path / "run"
    assert {p.name for p in earlier.glob("checkpoint-*")} == {"checkpoint-1", "checkpoint-2"}
    run_fails([*base, "--output_dir", str(earlier)], f"resume its run with --resume {earlier}")
    run_fails([*base, "--output_dir", str(earlier), "--resume", str(quickstart_like)], "no checkpoint there")
    train.main([*base, "--output_dir", str(earlier), "--max_steps", "1", "--overwrite_output_dir",
                "--save_strategy", "steps", "--save_steps", "1"])
    assert {p.name for p in earlier.glob("checkpoint-*")} == {"checkpoint-1"}  # the earlier run's are gone
    assert json.loads((earlier / "metrics.json").read_text())["log_history"][-1]["step"] == 1


class CountEvaluations(TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_evaluate(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def test_the_final_validation_runs_once(tmp_path, text_file):
    counter = CountEvaluations()
    arguments = train.parse_arguments(["--data", str(text_file), "--output_dir", str(tmp_path / "run"), *TINY,
                                       "--max_steps", "4", "--eval_strategy", "steps", "--eval_steps", "2"])
    metrics = train.run(*arguments, callbacks=[counter])
    assert counter.steps == [2, 4] and "eval_loss" in metrics
    counter = CountEvaluations()
    arguments = train.parse_arguments(["--data", str(text_file), "--output_dir", str(tmp_path / "other"), *TINY,
                                       "--max_steps", "3", "--eval_strategy", "steps", "--eval_steps", "2"])
    train.run(*arguments, callbacks=[counter])
    assert counter.steps == [2, 3]  # step 3 was not evaluated in training: once at the end


def test_the_loss_curve_shows_every_logged_point():
    figure = train.loss_figure([{"step": 1, "loss": 5.0}, {"step": 1, "eval_loss": 5.1}])
    lines = figure.axes[0].get_lines()
    assert [len(line.get_xdata()) for line in lines] == [1, 1]
    assert all(line.get_marker() not in (None, "None", "", " ") for line in lines)


def test_no_spurious_warnings_when_training_resuming_and_generating(tmp_path, text_file):
    """In a fresh interpreter, where transformers' warn-once messages have not been spent by other tests."""
    checkpoint = save_checkpoint_run(tmp_path, text_file, extra=("--max_steps", "4"))
    code = f"""
import torch
from modeling_fiftynet import FiftyNetForCausalLM
from fiftynet.training import train

train.main({["--data", str(text_file), "--max_steps", "4", "--output_dir", str(tmp_path / "run"),
             "--resume", checkpoint, *TINY, "--save_strategy", "steps", "--save_steps", "2"]!r})
model = FiftyNetForCausalLM.from_pretrained({str(tmp_path / "run" / "model")!r})
assert model.config.max_position_embeddings is None  # no limit: generate neither stops nor warns at one
model.generate(torch.randint(0, 256, (1, 300)), max_new_tokens=3, do_sample=False, pad_token_id=256)
"""
    result = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    noise = [line for line in result.stderr.splitlines()
             if "missing keys" in line or "maximum length" in line or "Warning" in line or "deprecat" in line.lower()]
    assert not noise, noise


def test_train_help_lists_fiftynets_options_before_the_trainers(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    assert text.index("--block_size") < text.index("--overwrite_output_dir") < text.index("--learning_rate")
    assert "(default: None)" not in text and text.startswith("usage: fiftynet train [OPTIONS]")


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_option_takes_both_spellings(command, capsys):
    with pytest.raises(SystemExit):
        cli.main([command, "train", "--help"] if command == "tokenizer" else [command, "--help"])
    text = capsys.readouterr().out
    words = (word.strip(",.:;()[]'`\"") for word in text.split())
    options = {word for word in words if word.startswith("--") and word[2:3].isalpha()}
    for option in options:
        if "_" in option or "-" in option[2:]:
            other = "--" + (option[2:].replace("_", "-") if "_" in option else option[2:].replace("-", "_"))
            assert other in options, f"{command}: {option} without {other}"


def test_the_dispatcher_imports_no_command_before_it_runs():
    code = ("import sys, fiftynet.training.cli; "
            "assert not {'fiftynet.conversion', 'fiftynet.hub_cards.card', 'fiftynet.training.train', 'transformers'} "
            "& set(sys.modules), sorted(sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
