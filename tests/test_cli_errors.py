"""Bad input to the `fiftynet` commands: one line naming the problem on stderr, exit code 2, no traceback."""

import json
import resource
import signal
import subprocess
import sys
import time

import huggingface_hub
import pytest
from transformers import HfArgumentParser, TrainingArguments

from fiftynet.training import cli, tokenizer, train
from fiftynet.training.corpus import load_corpus
from fiftynet.training.data import DataArguments, load_texts
from fiftynet.training.errors import UsageError, claimed
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


# --set comes last, so that a test can append more fields to it.
TINY = ["--block_size", "32", "--report_to", "none", "--set", "hidden_size=16", "num_hidden_layers=1"]


def fails_with(argv: list[str], capsys) -> str:
    """Runs `fiftynet ARGV` in-process; returns its error line after checking the exit code.

    Progress bars (loading weights) may precede it on stderr, so the message is the last line.
    """
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("In the beginning God created the heaven and the earth. " * 20)
    return path


def test_missing_file(tmp_path, capsys):
    error = fails_with(["train", "--data", str(tmp_path / "nope.txt"), *TINY], capsys)
    assert "nope.txt: no such file or folder" in error


def test_empty_corpus(tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n  \n")
    assert "is empty" in fails_with(["train", "--data", str(tmp_path / "empty.txt"), *TINY], capsys)


def test_text_shorter_than_one_block(tmp_path, capsys):
    # Training needs whole blocks; `fiftynet eval` measures a short text as one shorter block (tests/test_eval.py).
    (tmp_path / "short.txt").write_text("too short")
    short = str(tmp_path / "short.txt")
    error = fails_with(["train", "--data", short, "--validation_data", short, "--block_size", "32", "--output_dir",
                        str(tmp_path / "run")], capsys)
    assert "the training text has 9 tokens, fewer than one block of 32" in error


@pytest.mark.parametrize("text", ["a", "abc", "x" * 40])
def test_a_text_too_short_to_split_names_its_own_size(text, tmp_path, capsys):
    """Without --validation_data a block is held out first: what is left is not the text's size (it was "0 tokens")."""
    (tmp_path / "short.txt").write_text(text)
    error = fails_with(["train", "--data", str(tmp_path / "short.txt"), "--block_size", "32", "--output_dir",
                        str(tmp_path / "run")], capsys)
    assert f"the text has {len(text)} token(s), too few for a training block of 32 and 32 held out" in error


def save_tiny_model(tmp_path, vocab_size: int = 259):
    model_dir = tmp_path / "model"
    special_ids = {} if vocab_size > 258 else dict(pad_token_id=0, bos_token_id=None, eos_token_id=None)
    config = FiftyNetConfig(hidden_size=16, num_hidden_layers=1, vocab_size=vocab_size, **special_ids)
    FiftyNetForCausalLM(config).save_pretrained(model_dir)
    FiftyNetByteTokenizer().save_pretrained(model_dir)
    return model_dir


def test_tokenizer_larger_than_the_model_vocabulary(tmp_path, text_file, capsys):
    error = fails_with(["train", "--data", str(text_file), *TINY, "vocab_size=100"], capsys)
    assert "the tokenizer has 259 tokens but the model's vocab_size is 100" in error
    model_dir = save_tiny_model(tmp_path, vocab_size=200)
    error = fails_with(["generate", "--model", str(model_dir), "--prompt", "x"], capsys)
    assert "vocab_size is 200" in error


def test_unknown_preset_and_config_field(text_file, capsys):
    assert "unknown preset 'huge'" in fails_with(["train", "--data", str(text_file), "--preset", "huge"], capsys)
    error = fails_with(["train", "--data", str(text_file), *TINY, "hiden_size=8"], capsys)
    assert "unknown config field 'hiden_size'; did you mean 'hidden_size'?" in error
    assert "mixer_type='mamba'" in fails_with(["train", "--data", str(text_file), *TINY, "mixer_type=mamba"], capsys)


def test_resume_without_checkpoint(tmp_path, text_file, capsys):
    error = fails_with(["train", "--data", str(text_file), *TINY, "--resume", str(tmp_path)], capsys)
    assert f"--resume {tmp_path}: no checkpoint there" in error


def test_exit_code_and_message_from_the_installed_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fiftynet.training.train", "--data", str(tmp_path / "missing.txt")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"fiftynet train: error: {tmp_path / 'missing.txt'}: no such file or folder"


@pytest.mark.parametrize(
    "command, option",
    [
        (["quickstart"], "--output_dir"),
        (["compress", "--method", "int8", "--model", "MODEL"], "--out"),
        (["convert", "--teacher", "MODEL"], "--out"),
        (["chunk-head", "--model", "MODEL"], "--output_dir"),
        (["train", "--max_steps", "1", *TINY], "--output_dir"),
    ],
)
def test_every_command_refuses_to_write_into_a_non_empty_folder(command, option, tmp_path, capsys):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    command = [str(save_tiny_model(tmp_path)) if word == "MODEL" else word for word in command]
    error = fails_with([*command, option, str(earlier)], capsys)
    assert f"{option} {earlier} is not empty (it holds metrics.json): " in error and "--overwrite_output_dir" in error
    assert [entry.name for entry in earlier.iterdir()] == ["metrics.json"]
    (earlier / "metrics.json").unlink()
    (earlier / "notes").write_text("")
    (earlier / "notes").rename(earlier.with_name("a-file"))
    error = fails_with([*command, option, str(earlier.with_name("a-file"))], capsys)
    assert "is a file, not a folder" in error


def test_overwrite_output_dir_replaces_an_earlier_model(tmp_path, capsys):
    dense = save_tiny_model(tmp_path)
    out = tmp_path / "out"
    for method in ("int8", "dct"):
        cli.main(["compress", "--model", str(dense), "--method", method, "--ratio", "0.5", "--sequence_length", "16",
                  "--out", str(out), "--overwrite_output_dir"])
        assert FiftyNetConfig.from_pretrained(out).compression["method"] == method
    assert "--out" in fails_with(["compress", "--model", str(dense), "--method", "int8", "--out", str(out)], capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--block_size", "0"], "--block_size must be a positive number of tokens, got 0"),
        (["train", "--block_size", "-1"], "--block_size must be a positive number of tokens, got -1"),
        (["train", "--validation_fraction", "-0.5"], "--validation_fraction must lie in [0, 1), got -0.5"),
        (["train", "--validation_fraction", "1"], "--validation_fraction must lie in [0, 1), got 1.0"),
        (["train", "--per_device_train_batch_size", "0"], "--per_device_train_batch_size must be at least 1, got 0"),
        (["train", "--gradient_accumulation_steps", "0"], "--gradient_accumulation_steps must be at least 1, got 0"),
        (["train", "--learning_rate", "-1"], "--learning_rate must be a finite number of at least 0, got -1.0"),
        (["train", "--learning_rate", "nan"], "--learning_rate must be a finite number of at least 0, got nan"),
        (["train", "--max_steps", "-5"], "--max_steps must be a positive number of steps, or -1 to train"),
        (["train", "--max_steps", "0"], "--max_steps must be a positive number of steps, or -1 to train"),
        (["train", "--max_steps", "-1", "--num_train_epochs", "0"], "--num_train_epochs must be a positive number"),
        (["train", "--save_steps", "0"], "--save_steps must be a positive number of steps (below 1: a fraction"),
        (["train", "--eval_steps", "0"], "--eval_steps must be a positive number of steps (below 1: a fraction"),
        (["lora", "--max_steps", "-5"], "--max_steps must be a positive number of steps"),
        (["convert", "--max_steps", "-5"], "--max_steps must be a positive number of steps"),
        (["train", "--resume_weights_only"], "--resume_weights_only restarts from a checkpoint: pass it with --resume"),
        (["quickstart", "--block-size", "0"], "argument --block_size/--block-size: must be at least 1, got 0"),
        (["quickstart", "--max_steps", "0"], "argument --max_steps/--max-steps: must be at least 1, got 0"),
        (["quickstart", "--learning-rate", "nan"], "argument --learning_rate/--learning-rate: must be above 0, got nan"),
        (["compress", "--sequence_length", "0"], "argument --sequence_length/--sequence-length: must be at least 1"),
        (["eval", "--block_size", "0"], "argument --block_size/--block-size: must be at least 1, got 0"),
        (["generate", "--prompt", ""], "--prompt is empty: the model needs at least one token to continue"),
        (["generate", "--prompt", "ab\udcff"], "--prompt holds bytes that are not UTF-8 text"),
        (["generate", "--max_new_tokens", "0"], "--max_new_tokens must be at least 1, got 0"),
        (["generate", "--temperature", "-1"], "--temperature must be 0 (greedy) or positive, got -1.0"),
        (["generate", "--top_p", "1.5"], "--top_p must lie in (0, 1], got 1.5"),
        (["generate", "--top_p", "0"], "--top_p must lie in (0, 1], got 0.0"),
        (["generate", "--top_k", "-1"], "--top_k must be 0 (no filtering) or positive, got -1"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_out_of_range_numbers_and_empty_prompts(argv, message, tmp_path, text_file, capsys):
    command, *options = argv
    model_dir = str(save_tiny_model(tmp_path))
    context = {
        "train": ["--data", str(text_file), "--output_dir", str(tmp_path / "run"), *TINY],
        "lora": ["--model", model_dir, "--data", str(text_file), "--output_dir", str(tmp_path / "run")],
        "convert": ["--teacher", model_dir, "--out", str(tmp_path / "out")],
        "quickstart": ["--output_dir", str(tmp_path / "run")],
        "compress": ["--model", model_dir, "--method", "int8", "--out", str(tmp_path / "out")],
        "eval": ["--model", model_dir],
        "generate": ["--model", model_dir, "--prompt", "x"],
    }[command]
    # The option under test comes last, so that it overrides the context's (--block_size, --prompt).
    split = context.index("--set") if "--set" in context else len(context)
    error = fails_with([command, *context[:split], *options, *context[split:]], capsys)
    assert message in error
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists(), "nothing is written before a refusal"


def test_a_batch_whose_activations_cannot_fit_is_refused_before_allocating(tmp_path, capsys):
    text = tmp_path / "long.txt"
    text.write_text("In the beginning God created the heaven and the earth. " * 3000)  # 165,000 bytes
    error = fails_with(["train", "--data", str(text), "--block_size", "131072", "--per_device_train_batch_size",
                        "4096", "--output_dir", str(tmp_path / "run"), "--report_to", "none"], capsys)
    assert "--block_size 131072 with --per_device_train_batch_size 4096 needs at least" in error
    assert "GiB of activations per step, more than the" in error and train.CHECKPOINTING_FLAG in error


def test_the_activation_check_counts_checkpointing_under_the_flag_it_advises(monkeypatch):
    """The flag the refusal names is the one this release documents, and passing it lowers the estimate."""
    config = FiftyNetConfig(hidden_size=64, num_hidden_layers=8)
    parse = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses
    plain, = parse(["--output_dir", "unused", "--per_device_train_batch_size", "8"])
    checkpointed, = parse(["--output_dir", "unused", "--per_device_train_batch_size", "8", train.CHECKPOINTING_FLAG])
    monkeypatch.setattr(train, "device_memory", lambda device: 8 * 4096 * 64 * (8 * 8 + train.ACTIVATION_BYTES))
    with pytest.raises(UsageError, match="GiB of activations per step"):
        train.check_memory(config, plain, block_size=4096)
    train.check_memory(config, checkpointed, block_size=4096)  # exactly fits


def test_a_model_whose_weights_cannot_fit_is_refused_before_its_config_is_built(tmp_path, capsys):
    error = fails_with(["train", "--output_dir", str(tmp_path / "run"), *TINY, "num_hidden_layers=1000000000"], capsys)
    assert "the model config describes a model whose weights alone take" in error
    assert "(1,000,000,000 blocks), more than the" in error


def damage(model_dir, how: str) -> None:
    weights, config = model_dir / "model.safetensors", model_dir / "config.json"
    if how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "corrupt weights":
        weights.write_bytes(b"\x00" * 8 + b"not a safetensors header" * 10)
    elif how == "invalid config value":
        config.write_text(config.read_text().replace('"position_encoding": "none"', '"position_encoding": "bogus"'))
    elif how == "weights of another shape":
        config.write_text(config.read_text().replace('"vocab_size": 259', '"vocab_size": 300'))
    elif how == "a list for a config":
        config.write_text("[1, 2]")
    elif how == "no model_type":
        config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "model_type"}))
    elif how in CONFIG_VALUES:
        field, value = CONFIG_VALUES[how]
        config.write_text(json.dumps({**json.loads(config.read_text()), field: value}))


# Values a hand-edited config.json may hold, each refused in one line (not NaN logits, a traceback, a silent default).
CONFIG_VALUES = {
    "NaN epsilon": ("rms_norm_eps", float("nan")),
    "negative epsilon": ("rms_norm_eps", -1.0),
    "unknown activation": ("hidden_act", "bogus"),
    "unknown dtype": ("dtype", "bogus"),
    "unknown torch_dtype beside dtype": ("torch_dtype", "float99"),  # the old name was ignored
    "unknown compression": ("compression", {"layers": {"model.layers.0.mlp.up_proj": {"method": "zip"}}}),
    "compression of a missing layer": ("compression", {"layers": {"model.layers.9.mlp": {"method": "int8"}}}),
    "a billion layers": ("num_hidden_layers", 10**9),  # its config alone took minutes to build
    "a trillion channels": ("hidden_size", 10**12),  # torch's size overflowed (a traceback)
    "zero epsilon, written as an integer": ("rms_norm_eps", 0),  # was refused as "expected float, got int"
    "unknown mixer_type beside mixer_types": ("mixer_type", "transformer9000"),  # was silently replaced
}


@pytest.mark.parametrize(
    "how, message",
    [
        ("truncated weights", "cannot be read (a truncated or corrupt safetensors file?)"),
        ("corrupt weights", "cannot be read (a truncated or corrupt safetensors file?)"),
        ("invalid config value", "position_encoding='bogus' is not one of"),
        ("weights of another shape", "do not have the shape its config describes, e.g. model.embed_tokens.weight"),
        ("NaN epsilon", "rms_norm_eps must be a positive finite number, got nan"),
        ("negative epsilon", "rms_norm_eps must be a positive finite number, got -1.0"),
        ("unknown activation", "hidden_act='bogus' is not an activation transformers knows"),
        ("unknown dtype", "dtype='bogus' is not a torch dtype"),
        ("unknown torch_dtype beside dtype", "torch_dtype='float99' is not a torch dtype"),
        ("unknown compression", "layer 'model.layers.0.mlp.up_proj' has method 'zip', not one of dct, svd, int8"),
        ("compression of a missing layer", "names a layer 'model.layers.9.mlp' this model does not have"),
        ("a billion layers", "its config.json describes a model whose weights alone take"),
        ("a trillion channels", "hidden_size=1000000000000 with vocab_size=259 and intermediate_size=64 makes "
                                "weight matrices of 3e+24 elements, more than any machine holds"),
        ("zero epsilon, written as an integer", "rms_norm_eps must be a positive finite number, got 0"),
        ("unknown mixer_type beside mixer_types", "mixer_type='transformer9000' is not one of"),
        ("a list for a config", "its config.json holds a JSON list, not an object of settings"),
        ("no model_type", "its config.json has no model_type (e.g. \"fiftynet\"), which names the model"),
    ],
)
@pytest.mark.parametrize("command", [["generate", "--prompt", "x"], ["eval"]], ids=["generate", "eval"])
def test_a_damaged_model_folder_is_named_in_one_line(command, how, message, tmp_path, capsys):
    model_dir = save_tiny_model(tmp_path)
    damage(model_dir, how)
    error = fails_with([command[0], "--model", str(model_dir), *command[1:]], capsys)
    assert f"cannot load model {model_dir}: " in error and message in error


@pytest.mark.parametrize("command", [["generate", "--prompt", "x"], ["eval"]], ids=["generate", "eval"])
def test_a_model_folder_without_its_tokenizer_is_not_paired_with_the_byte_tokenizer(command, tmp_path, capsys):
    model_dir = tmp_path / "model"
    config = FiftyNetConfig(hidden_size=16, num_hidden_layers=1, vocab_size=300)
    FiftyNetForCausalLM(config).save_pretrained(model_dir)
    error = fails_with([command[0], "--model", str(model_dir), *command[1:]], capsys)
    assert f"{model_dir} holds no tokenizer files, and its vocabulary of 300 ids is not the byte tokenizer's" in error
    # Named, the byte tokenizer is the user's choice; a byte-vocabulary folder needs no tokenizer files.
    cli.main([command[0], "--model", str(model_dir), "--tokenizer", "byte", *command[1:]])
    FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1)).save_pretrained(tmp_path / "bytes")
    cli.main([command[0], "--model", str(tmp_path / "bytes"), *command[1:]])


def test_a_tokenizer_is_not_trained_into_a_model_folder_or_a_running_commands(tmp_path, capsys, text_file):
    """`fiftynet tokenizer train --output_dir MODEL` replaced a saved model's tokenizer without a word, and the model
    could not be used any more."""
    model_dir = save_tiny_model(tmp_path)
    before = {path.name: path.read_bytes() for path in model_dir.iterdir()}
    train_bpe = ["tokenizer", "train", "--text", str(text_file), "--vocab_size", "300", "--output_dir"]
    assert f"--output_dir {model_dir} is not empty" in fails_with([*train_bpe, str(model_dir)], capsys)
    assert {path.name: path.read_bytes() for path in model_dir.iterdir()} == before
    holder = holding(tmp_path / "run")
    try:
        error = fails_with([*train_bpe, str(tmp_path / "run" / "bpe")], capsys)
        assert f"is inside {(tmp_path / 'run').resolve()}, which another fiftynet command" in error
    finally:
        holder.kill()
        holder.wait()
    cli.main([*train_bpe, str(model_dir), "--overwrite_output_dir"])  # asked for: the files are replaced
    assert (model_dir / "tokenizer.json").is_file()


def test_a_tokenizer_without_its_vocabulary_is_named_in_one_line(tmp_path, capsys):
    model_dir = tmp_path / "model"
    bpe = tokenizer.train_bpe([load_corpus("validation")[:20_000]], vocab_size=300)
    FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1, vocab_size=len(bpe))).save_pretrained(
        model_dir)
    bpe.save_pretrained(model_dir)
    (model_dir / "tokenizer.json").unlink()
    error = fails_with(["generate", "--model", str(model_dir), "--prompt", "x"], capsys)
    assert error == (f"fiftynet generate: error: cannot load tokenizer {model_dir}: it has a tokenizer_config.json "
                     "but no tokenizer.json, the vocabulary it needs: copy it from where the tokenizer was saved, or "
                     "pass --tokenizer NAME_OR_FOLDER")


@pytest.mark.parametrize("name", ["./missing-model", "runs/today/model", "~/missing-model"])
def test_a_model_name_that_can_only_be_a_path_is_not_sent_to_the_hub(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert f"model {name}: no such folder" in fails_with(["generate", "--model", name, "--prompt", "x"], capsys)


def test_an_existing_first_folder_makes_a_two_part_name_a_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    assert "model runs/modle: no such folder" in fails_with(["eval", "--model", "runs/modle"], capsys)


def test_offline_any_missing_name_fails_at_once(capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    error = fails_with(["generate", "--model", "modle", "--prompt", "x"], capsys)
    assert error.endswith("model modle: no such folder (and HF_HUB_OFFLINE is set, so not a Hub id either)")


def test_a_name_the_hub_does_not_know_fails_at_once_and_an_unreachable_hub_is_not_retried(capsys, monkeypatch):
    """A bare name (`modle`) or an id with no folder of that name went to the Hub, which retried each file it looked
    for (config, adapter, weights) for about a minute in all, offline or for a repository that does not exist."""
    def unknown(name, **kwargs):  # its constructor wants an HTTP response, of an HTTP library that varies by release
        raise huggingface_hub.errors.RepositoryNotFoundError.__new__(huggingface_hub.errors.RepositoryNotFoundError)

    monkeypatch.setattr(tokenizer, "model_info", unknown)
    error = fails_with(["generate", "--model", "someone/modle", "--prompt", "x"], capsys)
    assert error.endswith("model someone/modle: no such folder, and no such model on the Hub")

    def unreachable(name, **kwargs):
        raise OSError("Name or service not known")

    def loader(name, **kwargs):
        seen.append(huggingface_hub.constants.is_offline_mode())
        raise OSError("couldn't find them in the cached files")

    seen = []
    monkeypatch.setattr(tokenizer, "model_info", unreachable)
    with pytest.raises(UsageError, match="cannot load model modle: couldn't find them in the cached files"):
        tokenizer.from_pretrained(loader, "modle", "model")
    assert seen == [True] and not huggingface_hub.constants.is_offline_mode()  # offline for that load only


@pytest.mark.parametrize("command, option", [("train", "--output_dir"), ("convert", "--out"),
                                             ("compress", "--out"), ("quickstart", "--output_dir")])
def test_a_folder_in_use_by_a_running_command_is_refused_and_a_killed_one_leaves_no_lock(tmp_path, capsys, command,
                                                                                          option):
    """Two runs given one output folder both said "saved to R/model" and R held one of them: the second is refused
    while the first runs, and once the first is killed (SIGKILL: no cleanup) the folder is free."""
    folder = tmp_path / "run"
    holder = holding(folder)
    try:
        required = {"train": [], "convert": ["--teacher", str(tmp_path)], "quickstart": [],
                    "compress": ["--model", str(tmp_path), "--method", "int8"]}[command]
        error = fails_with([command, option, str(folder), *required], capsys)
        assert f"{option} {folder} is in use by another fiftynet command that is still running" in error
    finally:
        holder.kill()
        holder.wait()
    assert folder.is_dir() and not any(folder.iterdir())  # an empty folder: nothing of either command in it
    with claimed(folder, option):
        pass


def holding(folder) -> subprocess.Popen:
    """Another process that holds `folder` as a running command does, until killed."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom fiftynet.training.errors import claimed\n"
        f"with claimed({str(folder)!r}, '--output_dir'):\n    print('held', flush=True)\n    time.sleep(120)\n"
    )], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.mark.parametrize("command", ["train", "quickstart"])
def test_a_folder_inside_or_around_a_running_commands_is_refused(tmp_path, capsys, command):
    """`fiftynet quickstart --output_dir R/model` while `fiftynet train --output_dir R` ran replaced the model the
    train had saved, and both exited 0: a folder inside another command's, or holding one, is refused too."""
    run, model = tmp_path / "run", tmp_path / "run" / "model"
    for held, given, relation in ((run, model, "is inside"), (model, run, "holds")):
        holder = holding(held)
        try:
            error = fails_with([command, "--output_dir", str(given), "--overwrite_output_dir"], capsys)
            assert f"--output_dir {given} {relation} {held.resolve()}, which another fiftynet command" in error
        finally:
            holder.kill()
            holder.wait()
    # Nothing written before the refusals: only the folder the killed holder of run/model made.
    assert [entry.name for entry in run.iterdir()] == ["model"] and not any(model.iterdir())


def said(stderr: str) -> str:
    """The command's own line on stderr (the progress bar, on the same stream, may be redrawn after it)."""
    (line,) = [line for line in stderr.splitlines() if line.startswith("fiftynet ")]
    return line


def run_train(tmp_path, text_file, *extra: str, fields: tuple[str, ...] = (),
              limit_file_size: int | None = None) -> subprocess.Popen:
    """`fiftynet train` in a process of its own (a signal, or a file size limit that makes writes fail as on a full
    disk), with output to pipes."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_size, limit_file_size))

    argv = ["train", "--data", str(text_file), "--output_dir", str(tmp_path / "run"), *extra, *TINY, *fields]
    return subprocess.Popen([sys.executable, "-m", "fiftynet.training.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=limit if limit_file_size else None)


def test_a_full_disk_during_a_checkpoint_is_one_line(tmp_path, text_file):
    """A write past RLIMIT_FSIZE fails as on a full disk (EFBIG; Python ignores SIGXFSZ): safetensors, torch.save and
    shutil report it in three exception types, all with a traceback before."""
    process = run_train(tmp_path, text_file, "--max_steps", "2", "--save_steps", "1", fields=("hidden_size=128",),
                        limit_file_size=300_000)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1 and "Traceback" not in stderr, stderr
    assert said(stderr).startswith("fiftynet train: error: the disk is full (")


def test_ctrl_c_during_training_is_one_line(tmp_path, text_file):
    process = run_train(tmp_path, text_file, "--max_steps", "100000", "--eval_steps", "100000")
    assert "parameters" in process.stdout.readline()  # printed just before training starts
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert said(stderr).startswith("fiftynet train: interrupted")


def test_validation_data_without_data_replaces_the_corpus_validation_split(tmp_path):
    """It was silently ignored unless --data was given too."""
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("Blessed are the meek: for they shall inherit the earth.")
    texts = load_texts(DataArguments(validation_data=[str(held_out)]))
    assert texts.validation == [held_out.read_text()] and texts.train == [load_corpus("train")]


def test_convert_refuses_an_output_dir_it_would_ignore(tmp_path, capsys):
    error = fails_with(["convert", "--teacher", str(tmp_path), "--out", str(tmp_path / "out"), "--output_dir",
                        str(tmp_path / "elsewhere")], capsys)
    assert f"--output_dir {tmp_path / 'elsewhere'}: the conversion keeps its checkpoints in {tmp_path / 'out'}" in error
