"""`fiftynet push`: upload a saved folder (weights, config, tokenizer, remote code, model card) to the Hugging Face Hub.

    fiftynet push --model fiftynet-quickstart --repo-id your-name/fiftynet-kjv [--private] [--revision BRANCH]

Everything is checked before anything is written to the Hub: the folder (safetensors weights, config, tokenizer,
the remote code its `auto_map` names, a card, no pickled files), the token (`hf auth login` or `HF_TOKEN`) and the
connection. The upload is then one commit holding exactly the folder's files. The card is rebuilt from the folder's
`fiftynet_card.json` for the repository id, so that its snippet loads the model from there; a folder without that
record is pushed with its own `README.md`, and one with neither is refused.
"""

import argparse
import json
from pathlib import Path

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HFValidationError, HfHubHTTPError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoConfig
from transformers.dynamic_module_utils import get_relative_imports
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from .card import CARD_RECORD_FILE, CardRecord
from .errors import UsageError
from .help_format import HelpFormatter


# torch.load / pickle formats: they can run code when loaded, so a Hub folder holds safetensors only.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# The files AutoTokenizer reads a saved tokenizer from (`fiftynet.training.tokenizer` looks for them too).
TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, metavar="DIR",
                        help="a folder saved by fiftynet (for fiftynet train, OUTPUT_DIR/model)")
    parser.add_argument("--repo_id", "--repo-id", required=True, metavar="NAME",
                        help="NAME or USER/NAME of the model repository (created if new)")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", metavar="BRANCH",
                        help="branch to commit to (created from main if new; default: main)")
    parser.add_argument("--base_model", "--base-model", metavar="ID",
                        help="Hub id of the model this one was made from, when that was a local folder (the card's "
                             "metadata can only name Hub models)")
    parser.add_argument("--commit_message", "--commit-message", metavar="TEXT", help="message of the Hub commit",
                        default="Upload FiftyNet model with fiftynet push")


def folder_files(folder: Path) -> list[Path]:
    """The files to upload, relative to `folder`, sorted; hidden files and caches (`.cache/`, `__pycache__/`) are
    left out."""
    return sorted(
        path.relative_to(folder) for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") or part == "__pycache__"
                                      for part in path.relative_to(folder).parts)
    )


def check_folder(folder: Path, files: list[Path], base_model: str | None) -> None:
    """Refuses, naming the problem, a folder that would not load from the Hub as saved or has no card."""
    if not folder.is_dir():
        raise UsageError(f"--model {folder}: no such folder")
    names = {path.as_posix() for path in files}
    if "config.json" not in names:
        hint = "; fiftynet train saves it in OUTPUT_DIR/model" if (folder / "model" / "config.json").is_file() else ""
        if "adapter_config.json" in names:
            merged = folder.parent / "model"
            hint = (f"; it is a LoRA adapter: push the merged model, {merged}" if (merged / "config.json").is_file()
                    else "; it is a LoRA adapter: push a model merged with it")
        raise UsageError(f"{folder} holds no saved model (no config.json){hint}")
    pickled = sorted(name for name in names if name.endswith(PICKLE_SUFFIXES))
    if pickled:
        raise UsageError(f"{folder} holds pickled files ({', '.join(pickled)}), which can run code when loaded; "
                         "delete them: the weights belong in safetensors")
    if not any(name.endswith(".safetensors") for name in names):
        raise UsageError(f"{folder} holds no safetensors weights")
    if not names & set(TOKENIZER_FILES):
        raise UsageError(f"{folder} holds no tokenizer ({' or '.join(TOKENIZER_FILES)}); save the tokenizer next to "
                         "the model")
    if CARD_RECORD_FILE not in names:
        if base_model is not None:
            raise UsageError(f"--base-model needs the card record {folder}/{CARD_RECORD_FILE}, which is missing")
        if "README.md" not in names:
            raise UsageError(f"{folder} has no model card (README.md); fiftynet train, quickstart, compress and "
                             "convert write one")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") not in CONFIG_MAPPING_NAMES and "auto_map" not in config:
        raise UsageError(f"{folder}/config.json has no auto_map: the {config.get('model_type')!r} model would not "
                         "load from the Hub without this package (save it with save_pretrained from fiftynet)")
    for config_file in ("config.json", "tokenizer_config.json"):
        if config_file in names:
            check_remote_code(folder, config_file, names)


def check_remote_code(folder: Path, config_file: str, names: set[str]) -> None:
    """Refuses a folder missing a module that `config_file`'s `auto_map` names, or one that such a module imports."""
    auto_map = json.loads((folder / config_file).read_text(encoding="utf-8")).get("auto_map", {})
    # "module.Class" is code in this folder; "repo--module.Class" and None point elsewhere.
    pending = [f"{reference.rpartition('.')[0]}.py" for value in auto_map.values()
               for reference in (value if isinstance(value, list) else [value]) if reference and "--" not in reference]
    checked = set()
    while pending:
        module = pending.pop()
        if module in checked:
            continue
        if module not in names:
            raise UsageError(f"{folder}/{config_file} needs the remote code {module}, which is not in the folder")
        checked.add(module)
        pending += [f"{name}.py" for name in get_relative_imports(folder / module)]


def model_card_bytes(folder: Path, repo_id: str, base_model: str | None) -> bytes:
    """The card to upload: rebuilt from the folder's record for `repo_id`, else the folder's own README.md."""
    record = CardRecord.load(folder)
    if record is None:
        return (folder / "README.md").read_bytes()
    record.model_name = repo_id
    record.base_model = base_model or record.base_model
    return str(record.card(AutoConfig.from_pretrained(folder, trust_remote_code=True))).encode("utf-8")


def first_line(error: Exception) -> str:
    """An error as one line of a `UsageError` message."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def hub_user(api: HfApi) -> str:
    """The user the token belongs to; a `UsageError` without a token, with a rejected one, or without the Hub."""
    token = get_token()
    if token is None:
        raise UsageError("no Hugging Face token: run `hf auth login` or set HF_TOKEN; nothing was uploaded")
    try:
        return api.whoami(token=token)["name"]
    except HfHubHTTPError as error:
        if error.response is not None and error.response.status_code == 401:
            problem = "the Hugging Face token was rejected: run `hf auth login`"
        else:
            problem = f"the Hub answered with an error: {first_line(error)}"
    except Exception as error:  # connection errors: their classes depend on huggingface_hub's HTTP backend
        problem = f"cannot reach the Hugging Face Hub at {api.endpoint} ({type(error).__name__}: {first_line(error)})"
    raise UsageError(f"{problem}; nothing was uploaded")


def push(
    folder: Path, repo_id: str, private: bool = False, revision: str | None = None, base_model: str | None = None,
    commit_message: str = "Upload FiftyNet model with fiftynet push",
) -> CommitInfo:
    """Checks the folder, the token and the connection, then creates the repository (and branch) if needed and
    uploads the folder's files with our model card in one commit."""
    for name, value in (("--repo-id", repo_id), ("--base-model", base_model)):
        if value is None:
            continue
        try:
            validate_repo_id(value)
        except HFValidationError as error:
            raise UsageError(f"{name} {value!r} is not a Hub model id: {first_line(error)}") from None
    files = folder_files(folder) if folder.is_dir() else []
    check_folder(folder, files, base_model)
    api = HfApi()
    user = hub_user(api)
    repo_id = repo_id if "/" in repo_id else f"{user}/{repo_id}"
    card = model_card_bytes(folder, repo_id, base_model)
    operations = [CommitOperationAdd(path.as_posix(), folder / path) for path in files if path != Path("README.md")]
    operations.append(CommitOperationAdd("README.md", card))  # ours: a card in the folder or on the Hub is replaced
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision not in (None, "main"):
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
    except HfHubHTTPError as error:
        raise UsageError(f"the Hub refused the upload to {repo_id}: {first_line(error)}") from None


def main(argv: list[str] | None = None) -> CommitInfo:
    parser = argparse.ArgumentParser(prog="fiftynet push", description=__doc__, formatter_class=HelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    commit = push(args.model, args.repo_id, args.private, args.revision, args.base_model, args.commit_message)
    print(f"pushed {args.model} to {commit.repo_url} ({commit.commit_url})")
    return commit
