"""Bad input to the `fiftynet` commands: one line naming the problem on stderr, exit code 2, no traceback."""

import subprocess
import sys

import pytest

from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM
from training import cli


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
    (tmp_path / "short.txt").write_text("too short")
    model_dir = save_tiny_model(tmp_path)
    error = fails_with(["eval", "--model", str(model_dir), "--text", str(tmp_path / "short.txt"), "--block_size", "32"],
                       capsys)
    assert "has 9 tokens, fewer than one block of 32" in error


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
    result = subprocess.run([sys.executable, "-m", "training.train", "--data", str(tmp_path / "missing.txt")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"fiftynet train: error: {tmp_path / 'missing.txt'}: no such file or folder"
