"""Every kind of folder this project saves loads, generates and reproduces the original's logits through its remote code
in an interpreter that has torch and transformers but cannot import this package, and carries an honest card; a
folder saved by the oldest supported transformers loads in the installed one."""

import argparse
import json
import math
import re
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import run_isolated
from huggingface_hub import ModelCard
from packaging.version import Version
from safetensors.torch import load_file, save_file
from test_modeling import assert_same_logits
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedModel, TrainerCallback

from fiftynet.conversion import compress, convert
from fiftynet.conversion.teacher import build_teacher
from fiftynet.hub_cards.card import SNIPPET_PROMPT, CardRecord
from fiftynet.training import train
from fiftynet.training.corpus import load_corpus
from fiftynet.training.tokenizer import train_bpe
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetForCausalLM


FIXTURES = Path(__file__).parent / "fixtures"
PROMPT = "And God said"
TINY = ["--block_size", "32", "--per_device_train_batch_size", "4", "--max_steps", "2", "--report_to", "none",
        "--eval_strategy", "no", "--save_strategy", "no"]


class KeepModel(TrainerCallback):
    """Holds on to the trained model: the original its saved folder must reproduce."""

    model = None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


def trained_folder(root: Path, name: str, *config_overrides: str) -> tuple[Path, PreTrainedModel]:
    """`fiftynet train`, two steps of a tiny model: its Hub-ready folder and the trained model."""
    text = root / "text.txt"
    if not text.exists():
        text.write_text(load_corpus("validation")[:20_000])
    keep = KeepModel()
    arguments = ["--data", str(text), "--output_dir", str(root / name), *TINY,
                 "--set", "hidden_size=16", "num_hidden_layers=1", *config_overrides]
    train.run(*train.parse_arguments(arguments), callbacks=[keep])
    return root / name / "model", keep.model.eval()


def compressed_folder(source: tuple[Path, PreTrainedModel], out: Path) -> tuple[Path, PreTrainedModel]:
    """`fiftynet compress --method svd --ratio 0.5` of a saved folder: the folder and the compressed model, built
    from the in-memory original the way the command builds it from the saved one."""
    folder, dense = source
    parser = argparse.ArgumentParser()
    compress.add_arguments(parser)
    compress.run(parser.parse_args(["--model", str(folder), "--method", "svd", "--ratio", "0.5",
                                    "--sequence-length", "32", "--out", str(out)]))
    return out, compress.compressed_copy(dense, "svd", 0.5)


def gpt2_folder(root: Path) -> tuple[Path, PreTrainedModel]:
    """A tiny GPT-2 with FiftyNet's byte tokenizer, as a source for `fiftynet compress`."""
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=259, n_positions=64,
                                       bos_token_id=257, eos_token_id=258)).eval()
    model.save_pretrained(root / "gpt2")
    FiftyNetByteTokenizer().save_pretrained(root / "gpt2")
    return root / "gpt2", model


def converted_folder(root: Path) -> tuple[Path, PreTrainedModel]:
    """`fiftynet convert` of a tiny random GPT-2 with a small BPE, keeping attention in layer 1: its folder and the
    model loaded with this package's classes."""
    tokenizer = train_bpe([load_corpus("validation")[:50_000]], vocab_size=300)
    torch.manual_seed(0)
    build_teacher("tiny", len(tokenizer), 32, tokenizer.eos_token_id).save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    convert.main(["--teacher", str(root / "teacher"), "--out", str(root / "converted"), "--keep_attention", "1",
                  "--data", str(root / "text.txt"), "--calibration_blocks", "2", "--layerwise_steps", "1", *TINY])
    folder = root / "converted" / "model"
    return folder, FiftyNetForCausalLM.from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def saved_folders(tmp_path_factory) -> dict[str, tuple[Path, PreTrainedModel]]:
    """Kind -> (folder saved by a fiftynet command, the model it was saved from)."""
    root = tmp_path_factory.mktemp("kinds")
    folders = {
        "trained": trained_folder(root, "trained"),
        "hybrid": trained_folder(root, "hybrid", "num_hidden_layers=2", "mixer_types=[spectral_conv,attention]",
                                 "num_attention_heads=2"),
    }
    folders["compressed"] = compressed_folder(folders["trained"], root / "compressed")
    folders["compressed_gpt2"] = compressed_folder(gpt2_folder(root), root / "compressed_gpt2")
    folders["converted"] = converted_folder(root)
    return folders


def test_every_kind_of_saved_folder_loads_generates_and_matches_without_the_package(saved_folders, tmp_path):
    expected = {}
    for kind, (folder, model) in saved_folders.items():
        (tmp_path / kind).symlink_to(folder.resolve(), target_is_directory=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = expected[f"{kind}.ids"] = tokenizer(PROMPT, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            expected[f"{kind}.logits"] = model(ids).logits
        expected[f"{kind}.greedy"] = model.generate(ids, max_new_tokens=8, do_sample=False,
                                                    pad_token_id=tokenizer.pad_token_id)
    save_file(expected, tmp_path / "expected.safetensors")

    run_isolated(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        expected = load_file("expected.safetensors")
        for kind in {list(saved_folders)!r}:
            model = AutoModelForCausalLM.from_pretrained(kind, trust_remote_code=True)
            tokenizer = AutoTokenizer.from_pretrained(kind, trust_remote_code=True)
            assert type(model).__module__.startswith("transformers_modules"), (kind, type(model).__module__)
            ids = tokenizer({PROMPT!r}, return_tensors="pt")["input_ids"]
            assert torch.equal(ids, expected[f"{{kind}}.ids"]), kind
            with torch.no_grad():
                assert torch.equal(model(ids).logits, expected[f"{{kind}}.logits"]), kind
            greedy = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
            assert torch.equal(greedy, expected[f"{{kind}}.greedy"]), kind
        """,
        cwd=tmp_path,
    )


def test_every_kind_of_saved_folder_carries_its_card(saved_folders):
    for kind, (folder, model) in saved_folders.items():
        card = ModelCard.load(folder / "README.md")
        record = CardRecord.load(folder)
        assert record is not None, kind
        assert card.text == record.card(model.config).text, f"{kind}: README.md is not the card of its record"
        assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation", kind
        assert card.data.license == "apache-2.0" and card.data.model_name == record.model_name, kind
        assert card.data.eval_results and all(math.isfinite(result.metric_value) for result in card.data.eval_results)
        assert f'from_pretrained("{record.model_name}", trust_remote_code=True)' in card.text, kind
    trained = ModelCard.load(saved_folders["trained"][0] / "README.md")
    assert "token mixers: layer 0 spectral_conv" in trained.text and "0.01M parameters" in trained.text
    # --data without --validation_data: the metrics come from the end of the text, held out from training.
    assert {(result.dataset_name, result.dataset_split) for result in trained.data.eval_results} == {
        ("text.txt", "last 5% of the tokens, held out from training")}
    hybrid = ModelCard.load(saved_folders["hybrid"][0] / "README.md")
    assert "token mixers: layers 0 spectral_conv, 1 attention" in hybrid.text and "hybrid" in hybrid.data.tags
    for kind in ("compressed", "compressed_gpt2"):
        card = ModelCard.load(saved_folders[kind][0] / "README.md")
        assert {"compressed", "svd"} <= set(card.data.tags), kind
        assert {result.metric_type for result in card.data.eval_results} == {"perplexity", "bits_per_byte"}
    compressed = ModelCard.load(saved_folders["compressed"][0] / "README.md").text
    # The source is named, and the story of its own card is kept.
    assert "of the local model `trained/model`: 5 Linear layers" in compressed
    assert "The dense model: `fiftynet train`" in compressed and str(saved_folders["trained"][0]) not in compressed
    converted = ModelCard.load(saved_folders["converted"][0] / "README.md")
    assert "the local model `teacher`" in converted.text and "| end_to_end |" in converted.text
    assert "token mixers: layers 0 spectral_conv, 1 attention, 2-3 spectral_conv" in converted.text
    assert converted.data.base_model is None  # a local teacher is named in the text, never as base_model


def test_a_folder_saved_by_the_oldest_supported_transformers_loads_here(tmp_path):
    """The fixture is remade by tests/fixtures/make_old_transformers_folder.py, run with that transformers."""
    oldest = re.search(r'"transformers>=([\d.]+)', (Path(__file__).parents[1] / "pyproject.toml").read_text()).group(1)
    with tarfile.open(FIXTURES / "fiftynet_transformers_oldest.tar.xz") as files:
        files.extractall(tmp_path, filter="data")
    saved_by = json.loads((tmp_path / "model" / "config.json").read_text())["transformers_version"]
    assert Version(saved_by) == Version(oldest), f"saved by {saved_by}; remake the fixture with transformers {oldest}"
    expected = load_file(tmp_path / "expected.safetensors")

    # The expected values were computed on another machine, whose float rounding may differ in the last bits. With
    # this package's own classes, whose long convolution may also round differently from the code that saved it ...
    model = FiftyNetForCausalLM.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        assert_same_logits(model(expected["ids"]).logits, expected["logits"])
    greedy = model.generate(expected["ids"], max_new_tokens=8, do_sample=False, pad_token_id=256)
    assert torch.equal(greedy, expected["greedy"]) and len(set(greedy[0, -8:].tolist())) > 4
    # ... and through the remote code saved with it, without the package.
    run_isolated(
        """
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        expected = load_file("expected.safetensors")
        model = AutoModelForCausalLM.from_pretrained("model", trust_remote_code=True)
        tokenizer = AutoTokenizer.from_pretrained("model", trust_remote_code=True)
        assert torch.equal(tokenizer("In the", return_tensors="pt")["input_ids"], expected["ids"])
        with torch.no_grad():
            logits = model(expected["ids"]).logits
        assert (logits - expected["logits"]).abs().max() <= 2e-5 * expected["logits"].abs().max()
        greedy = model.generate(expected["ids"], max_new_tokens=8, do_sample=False, pad_token_id=256)
        assert torch.equal(greedy, expected["greedy"])
        """,
        cwd=tmp_path,
    )


def test_every_cards_snippet_runs_as_written_from_where_the_command_ran(saved_folders):
    """Each card's "Use" snippet, exactly as written, in the folder the commands wrote their outputs into (their
    working directory, given relative output folders), where this package cannot be imported."""
    root = {folder.parent if folder.name != "model" else folder.parent.parent for folder, _ in saved_folders.values()}
    assert len(root) == 1
    snippets = [re.search(r"```python\n(.*?)```", ModelCard.load(folder / "README.md").text, flags=re.S).group(1)
                for folder, _ in saved_folders.values()]
    printed = run_isolated("\n".join(snippets), cwd=root.pop()).stdout
    assert printed.count(SNIPPET_PROMPT) == len(snippets), printed  # each prints its prompt and continuation

