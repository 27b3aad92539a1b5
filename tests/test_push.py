"""`fiftynet push`, with the Hub's side of `HfApi` replaced by a recorder: what would be uploaded, where, with which
card, and the refusals that come before anything is written."""

import re
import shutil
import socket
from pathlib import Path

import pytest
import torch
from conftest import run_isolated
from huggingface_hub import CommitInfo, HfApi, ModelCard, constants

from fiftynet.hub_cards.card import CardRecord, Measurement
from fiftynet.training import cli
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


REPO_ID = "alice/tiny-fiftynet"


def closed_port_url() -> str:
    """A local address nothing listens on: a call that reaches for the network fails at once, offline or not."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def folder(tmp_path):
    """A saved folder as the fiftynet commands leave it, plus what a folder picks up lying around: a stale README.md
    and the `.cache/` that `hf download --local-dir` writes."""
    torch.manual_seed(0)
    config = FiftyNetConfig(hidden_size=16, num_hidden_layers=1, intermediate_size=32, filter_state_size=4)
    folder = tmp_path / "tiny"
    FiftyNetForCausalLM(config).save_pretrained(folder)
    FiftyNetByteTokenizer().save_pretrained(folder)
    measurements = [Measurement("bits_per_byte", "Bits per byte", 7.5, "a test text", "validation")]
    CardRecord("tiny", "Made for a test.", measurements, datasets=["some-user/some-dataset"]).save(folder, config)
    (folder / "README.md").write_text("---\nlicense: mit\n---\nA stale card.\n")
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "download.lock").write_text("")
    return folder


class Calls(list):
    """(method name, positional arguments, keyword arguments) of each recorded `HfApi` call, in order."""

    def recorder(self, name: str, result=None):
        """An `HfApi` method that records its call and returns `result` (or `result(*args, **kwargs)`)."""

        def method(api, *args, **kwargs):
            self.append((name, args, kwargs))
            return result(*args, **kwargs) if callable(result) else result

        return method


@pytest.fixture
def hub(monkeypatch) -> Calls:
    """Records the calls that would write to the Hub, with a token set."""
    calls = Calls()

    def commit(repo_id, operations, commit_message, revision=None):
        return CommitInfo(f"https://huggingface.co/{repo_id}/commit/{'0' * 40}", commit_message, "", "0" * 40)

    monkeypatch.setattr(HfApi, "create_repo", calls.recorder("create_repo"))
    monkeypatch.setattr(HfApi, "create_branch", calls.recorder("create_branch"))
    monkeypatch.setattr(HfApi, "create_commit", calls.recorder("create_commit", commit))
    monkeypatch.setattr(constants, "ENDPOINT", closed_port_url())  # anything else fails instead of going out
    monkeypatch.setenv("HF_TOKEN", "hf_recorded")
    return calls


@pytest.fixture
def alice(hub, monkeypatch) -> Calls:
    """`hub`, with the token belonging to "alice"."""
    monkeypatch.setattr(HfApi, "whoami", hub.recorder("whoami", {"name": "alice"}))
    return hub


def pushed(calls) -> dict:
    """The recorded commit's files: path in the repository -> bytes."""
    (_, (_, operations), _), = [call for call in calls if call[0] == "create_commit"]
    return {op.path_in_repo: op.path_or_fileobj if isinstance(op.path_or_fileobj, bytes) else
            Path(op.path_or_fileobj).read_bytes() for op in operations}


def test_push_uploads_exactly_the_folder_with_our_card(folder, alice, capsys):
    cli.main(["push", "--model", str(folder), "--repo-id", REPO_ID, "--private", "--revision", "dev",
              "--base-model", "alice/tiny-base"])
    assert [name for name, _, _ in alice] == ["whoami", "create_repo", "create_branch", "create_commit"]
    assert alice[0][2] == {"token": "hf_recorded"}
    assert alice[1][1:] == ((REPO_ID,), {"private": True, "exist_ok": True})
    assert alice[2][1:] == ((REPO_ID,), {"branch": "dev", "exist_ok": True})
    assert alice[3][2]["revision"] == "dev"
    files = pushed(alice)
    assert sorted(files) == sorted(path.name for path in folder.iterdir() if path.is_file())  # not the .cache/
    assert len(alice[3][1][1]) == len(files)  # nothing twice
    assert {"model.safetensors", "config.json", "tokenizer_config.json", "configuration_fiftynet.py",
            "modeling_fiftynet.py", "tokenization_fiftynet.py", "README.md", "fiftynet_card.json"} <= set(files)
    assert all(files[name] == (folder / name).read_bytes() for name in files if name != "README.md")

    card = ModelCard(files["README.md"].decode())  # ours, rebuilt for the repository, not the stale one
    assert card.data.model_name == REPO_ID and card.data.base_model == "alice/tiny-base"
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert card.data.license == "apache-2.0" and card.data.datasets == ["some-user/some-dataset"]
    (result,) = card.data.eval_results
    assert (result.metric_type, result.metric_value, result.dataset_name) == ("bits_per_byte", 7.5, "a test text")
    assert f'AutoModelForCausalLM.from_pretrained("{REPO_ID}", trust_remote_code=True)' in card.text
    assert f"https://huggingface.co/{REPO_ID}/commit/" in capsys.readouterr().out


def test_the_pushed_cards_snippet_loads_and_generates_without_the_package(folder, alice, tmp_path):
    cli.main(["push", "--model", str(folder), "--repo-id", REPO_ID])
    assert alice[-1][2]["revision"] is None and "create_branch" not in [name for name, _, _ in alice]
    repository = tmp_path / "hub" / REPO_ID  # a local folder at the repository id's path, where from_pretrained looks
    repository.mkdir(parents=True)
    for name, content in pushed(alice).items():
        (repository / name).write_bytes(content)
    (snippet,) = re.findall(r"```python\n(.*?)```", (repository / "README.md").read_text(), flags=re.DOTALL)
    result = run_isolated(snippet, cwd=tmp_path / "hub")
    assert result.stdout.startswith("In the beginning")


def test_a_repository_name_alone_goes_to_the_token_owner(folder, alice):
    cli.main(["push", "--model", str(folder), "--repo-id", "tiny-fiftynet"])
    assert alice[1][1] == ("alice/tiny-fiftynet",)
    assert ModelCard(pushed(alice)["README.md"].decode()).data.model_name == "alice/tiny-fiftynet"


def test_a_folder_without_card_record_keeps_its_own_card(folder, alice):
    (folder / "fiftynet_card.json").unlink()
    cli.main(["push", "--model", str(folder), "--repo-id", REPO_ID])
    assert pushed(alice)["README.md"] == (folder / "README.md").read_bytes()


def expect_refusal(capsys, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("fiftynet push: error: ") and message in last_line, last_line


def test_without_a_token_nothing_is_uploaded(folder, hub, monkeypatch, tmp_path, capsys):
    for variable in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    expect_refusal(capsys, ["push", "--model", str(folder), "--repo-id", REPO_ID],
                   "no Hugging Face token: run `hf auth login` or set HF_TOKEN; nothing was uploaded")
    assert hub == []


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable", "HF_HUB_OFFLINE"])
def test_without_the_network_nothing_is_uploaded(folder, hub, monkeypatch, capsys, offline):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    expect_refusal(capsys, ["push", "--model", str(folder), "--repo-id", REPO_ID],
                   "cannot reach the Hugging Face Hub at http://127.0.0.1:")
    assert hub == []


@pytest.mark.parametrize(
    "spoil, arguments, message",
    [
        (lambda folder: shutil.rmtree(folder), [], "no such folder"),
        (lambda folder: (folder / "config.json").unlink(), [], "holds no saved model (no config.json)"),
        (lambda folder: (folder / "training_args.bin").write_bytes(b"pickle"), [],
         "holds pickled files (training_args.bin)"),
        (lambda folder: (folder / "model.safetensors").unlink(), [], "holds no safetensors weights"),
        (lambda folder: (folder / "tokenizer_config.json").unlink(), [], "holds no tokenizer"),
        (lambda folder: (folder / "modeling_fiftynet.py").unlink(), [],
         "config.json needs the remote code modeling_fiftynet.py, which is not in the folder"),
        (lambda folder: (folder / "spectral_ops.py").unlink(), [],  # imported by modeling_fiftynet.py
         "config.json needs the remote code spectral_ops.py, which is not in the folder"),
        (lambda folder: [(folder / name).unlink() for name in ("README.md", "fiftynet_card.json")], [],
         "has no model card (README.md)"),
        (lambda folder: (folder / "fiftynet_card.json").unlink(), ["--base-model", "alice/base"],
         "--base-model needs the card record"),
        (lambda folder: None, ["--base-model", "not a model"], "--base-model 'not a model' is not a Hub model id"),
    ],
    ids=["missing", "no-config", "pickle", "no-weights", "no-tokenizer", "missing-code", "missing-import", "no-card",
         "base-without-record", "bad-base-model"],
)
def test_a_folder_that_would_not_load_from_the_hub_is_refused_before_any_call(folder, alice, capsys, spoil,
                                                                               arguments, message):
    spoil(folder)
    expect_refusal(capsys, ["push", "--model", str(folder), "--repo-id", REPO_ID, *arguments], message)
    assert alice == []


def test_a_bad_repository_id_is_refused(folder, alice, capsys):
    expect_refusal(capsys, ["push", "--model", str(folder), "--repo-id", "alice/tiny/fiftynet"],
                   "--repo-id 'alice/tiny/fiftynet' is not a Hub model id")
    assert alice == []
