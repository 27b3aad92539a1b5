"""The transformers contract, under every transformers release `pyproject.toml` admits (CI runs the suite with the
oldest and the newest): the cache under both of its names, `generate()` equal to a greedy loop over full forward
passes, a config that stays valid, saves that cannot destroy a folder, a complete `auto_map`, safetensors-only
loading, and forward passes that `torch.export` and `torch.compile(fullgraph=True)` capture."""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import run_isolated
from safetensors.torch import load_file, save_file
from test_modeling import (
    ALL_VARIANTS,
    VARIANTS,
    assert_same_logits,
    cache_of,
    random_ids,
    tiny_config,
    tiny_model,
    variant_id,
)
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from modeling_fiftynet import (
    FiftyNetByteTokenizer,
    FiftyNetForCausalLM,
    FiftyNetForSequenceClassification,
)
from modeling_fiftynet.modeling_fiftynet import CACHE_NAME
from modeling_fiftynet.saving import interrupts_held, staged_folder


def greedy_loop(model: FiftyNetForCausalLM, ids: torch.Tensor, steps: int,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The greedy continuation computed by full forward passes without a cache: what `generate()` must return."""
    with torch.no_grad():
        for _ in range(steps):
            logits = model(ids, attention_mask=attention_mask, use_cache=False).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(ids), 1)], dim=1)
    return ids


def folder_contents(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("padded", [False, True], ids=["no mask", "left-padded"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_generate_equals_a_greedy_loop_over_full_forward_passes(variant, padded):
    """The bug of transformers 5.24 (the cache renamed `cache`): every step ran without its past. Without a mask
    it returned wrong tokens silently."""
    model = tiny_model(**variant)
    model.generation_config.eos_token_id = None  # the loop does not stop at an end of sequence either
    ids, mask = random_ids(2, 9), None
    if padded:
        mask = torch.ones_like(ids)
        ids[1, :4], mask[1, :4] = 256, 0
    generated = model.generate(ids, attention_mask=mask, max_new_tokens=12, do_sample=False, pad_token_id=256)
    assert torch.equal(generated, greedy_loop(model, ids, 12, mask))
    # The test can fail: steps that each see only their own token (a lost past) give other tokens.
    forgetful = ids
    with torch.no_grad():
        for _ in range(12):
            forgetful = torch.cat([forgetful, model(forgetful[:, -1:]).logits[:, -1:].argmax(-1)], dim=1)
    assert not torch.equal(generated, forgetful)


def test_generation_uses_the_running_releases_names_and_warns_about_nothing(tmp_path):
    """No deprecation warning in any kind of generation, and no word about the cache's name in assisted generation
    (whose own deprecation notices are transformers' business), in a fresh interpreter where transformers'
    warn-once messages have not been spent by other tests."""
    code = textwrap.dedent(
        """
        import sys

        import torch
        from test_modeling import ALL_VARIANTS, cache_of, random_ids, tiny_model
        from modeling_fiftynet.modeling_fiftynet import CACHE_NAME

        model = tiny_model(**ALL_VARIANTS[-1])
        ids = random_ids(2, 8)
        mask = torch.ones_like(ids)
        mask[0, :3] = 0
        kwargs = dict(max_new_tokens=6, pad_token_id=256)
        model.generate(ids, do_sample=False, **kwargs)
        model.generate(ids, attention_mask=mask, do_sample=True, top_p=0.9, **kwargs)
        model.generate(ids, num_beams=2, **kwargs)
        first = model.generate(ids, return_dict_in_generate=True, **kwargs)
        model.generate(first.sequences, **{CACHE_NAME: cache_of(first)}, **kwargs)
        with torch.no_grad():
            cache = cache_of(model(ids, use_cache=True))
            model(ids[:, :1], cache=cache)
            model(ids[:, :1], past_key_values=cache)
        print("assisted", file=sys.stderr, flush=True)
        model.generate(ids[:1], assistant_model=tiny_model(seed=3, **ALL_VARIANTS[-1]), **kwargs)
        model.generate(ids[:1].repeat(1, 2), prompt_lookup_num_tokens=3, **kwargs)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "PYTHONWARNINGS": "always"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    plain, assisted = result.stderr.split("assisted\n")
    assert "deprecat" not in plain.lower() and "FutureWarning" not in plain, plain
    assert not re.search(r"past_key_values|cache_params|`cache`", assisted), assisted


@pytest.mark.filterwarnings("ignore:.*past_key_values.*:FutureWarning")  # transformers >= 5.24 on the old name
def test_generate_continues_from_a_cache_passed_under_either_name_and_stops_recording_it():
    model = tiny_model()
    ids = random_ids(1, 8).repeat(1, 2)
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=256)
    whole = model.generate(ids, max_new_tokens=18, do_sample=False, pad_token_id=256)
    for name in ("cache", "past_key_values"):
        # Assisted generation records how to roll back and hands the cache back still recording.
        first = model.generate(ids, prompt_lookup_num_tokens=3, return_dict_in_generate=True, **kwargs)
        cache = cache_of(first)
        second = model.generate(first.sequences, **{name: cache}, return_dict_in_generate=True, **kwargs)
        third = model.generate(second.sequences, **{name: cache}, **kwargs)
        assert torch.equal(third, whole), name
        # Plain decoding rolls nothing back: no step's replay is kept (they would grow with the output).
        assert all(layer._recorded_calls == [] and not layer.record_past for layer in cache.layers)


def test_a_cache_made_for_another_model_or_batch_is_refused():
    model = tiny_model()
    ids = random_ids(2, 6)
    with torch.no_grad():
        for other, message in (
            (tiny_model(mixer_type="nfo"), r"made for another FiftyNet .*'nfo'"),
            (tiny_model(num_hidden_layers=4), "The cache has 4 layers but this model has 2"),
            (tiny_model(hidden_size=48), "made for another FiftyNet"),
        ):
            with pytest.raises(ValueError, match=message):
                model(ids[:, -1:], cache=cache_of(other(ids[:, :-1], use_cache=True)))
        cache = cache_of(model(ids[:1, :-1], use_cache=True))
        with pytest.raises(ValueError, match=r"holds 1 sequence\(s\) \(layer 0\) but the inputs have 2"):
            model(ids[:, -1:], cache=cache)


def test_forward_takes_the_cache_under_both_names_and_returns_it_under_the_running_releases_name():
    model = tiny_model()
    ids = random_ids(2, 12)
    with torch.no_grad():
        full = model(ids).logits
        for name in ("cache", "past_key_values"):
            prefill = model(ids[:, :8], use_cache=True)
            assert list(prefill.keys()) == ["logits", CACHE_NAME]
            step = model(ids[:, 8:], **{name: cache_of(prefill)})
            torch.testing.assert_close(step.logits, full[:, 8:], rtol=1e-4, atol=1e-4)
        assert len(model(ids, use_cache=True, return_dict=False)) == 2  # logits and the cache
    with pytest.raises(ValueError, match="Two different caches were passed"):
        model(ids, cache=DynamicCache(config=model.config), past_key_values=DynamicCache(config=model.config))


def test_a_decoding_step_whose_past_is_missing_is_refused():
    """What a cache passed under a name the model does not read looks like from inside: the mask or the positions
    count tokens that neither the call nor the cache holds."""
    model = tiny_model(position_encoding="learned")
    ids = random_ids(1, 10)
    with pytest.raises(ValueError, match="covers 10 tokens but the call has 1 new token.*the past it covers is"):
        model(ids[:, -1:], attention_mask=torch.ones(1, 10, dtype=torch.long))
    with pytest.raises(ValueError, match="position_ids reach 9 but the call has 1 token.* the past they count"):
        model(ids[:, -1:], position_ids=torch.tensor([[9]]))
    with torch.no_grad():
        cache = cache_of(model(ids[:, :9], use_cache=True))
        model(ids[:, -1:], cache=cache, attention_mask=torch.ones(1, 10, dtype=torch.long),
              position_ids=torch.tensor([[9]]))


def test_an_argument_the_model_does_not_take_is_refused_not_dropped():
    model = tiny_model()
    ids = random_ids(1, 5)
    with torch.no_grad():
        cache = cache_of(model(ids, use_cache=True))
    for call in (model, model.model, FiftyNetForSequenceClassification(tiny_config())):
        with pytest.raises(TypeError, match="unexpected keyword argument.*kv_cache"):
            call(ids, kv_cache=cache)  # e.g. a cache renamed once more
    with pytest.raises(ValueError, match="output_attentions=True is not supported"):
        model(ids, output_attentions=True)
    model(ids, output_attentions=False, labels=ids, num_items_in_batch=torch.tensor(4))


def test_mixer_types_follow_num_hidden_layers_and_mixer_type(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    deeper = AutoConfig.from_pretrained(tmp_path, num_hidden_layers=4)
    assert deeper.mixer_types == ["spectral_conv"] * 4 and len(FiftyNetForCausalLM(deeper).model.layers) == 4
    fourier = AutoConfig.from_pretrained(tmp_path, mixer_type="nfo")
    assert fourier.mixer_types == ["nfo", "nfo"]
    assert all(type(layer.mixer).__name__ == "FiftyNetFourierOperatorMixer"
               for layer in FiftyNetForCausalLM(fourier).model.layers)
    config = tiny_config()
    config.n_layer = 3  # GPT-2's name, after construction
    assert config.mixer_types == ["spectral_conv"] * 3
    assert tiny_config(mixer_types=["fftnet", "fftnet"]).mixer_type == "fftnet"
    config.mixer_types = ["nfo"] * 3  # one mixer for every block, set after construction
    config.num_hidden_layers = 2
    assert (config.mixer_type, config.mixer_types) == ("nfo", ["nfo", "nfo"])
    config.mixer_types = None
    assert config.mixer_types == ["nfo", "nfo"]
    # A per-block choice is kept as given, and a model is not built from it once it no longer fits.
    hybrid = tiny_config(mixer_types=["spectral_conv", "attention"])
    hybrid.num_hidden_layers = 3
    assert hybrid.mixer_types == ["spectral_conv", "attention"]
    with pytest.raises(ValueError, match="mixer_types lists 2 mixers for num_hidden_layers=3"):
        FiftyNetForCausalLM(hybrid)
    # A mistyped mixer is named as such, not taken for a bidirectional one.
    with pytest.raises(ValueError, match=r"mixer_type='spectral' is not one of"):
        FiftyNetForCausalLM(AutoConfig.from_pretrained(tmp_path, mixer_type="spectral"))


def test_a_config_changed_after_the_model_was_built_is_not_saved(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    before = folder_contents(tmp_path)
    for field, value, message in (("num_hidden_layers", 3, r"config.mixer_types=\['spectral_conv'.*does not describe"),
                                  ("mixer_type", "nfo", r"config.mixer_types=\['nfo', 'nfo'\] does not describe"),
                                  ("vocab_size", 300, "config.vocab_size=300 does not describe")):
        original = getattr(model.config, field)
        setattr(model.config, field, value)
        with pytest.raises(ValueError, match=message):
            model.save_pretrained(tmp_path)
        setattr(model.config, field, original)
    assert folder_contents(tmp_path) == before


@pytest.mark.parametrize("vocab_size", [99, 257, 259, 300])
def test_a_config_built_without_special_ids_works_for_any_vocabulary(vocab_size):
    config = tiny_config(vocab_size=vocab_size)
    expected = [token_id if token_id < vocab_size else None for token_id in (256, 257, 258)]
    assert [config.pad_token_id, config.bos_token_id, config.eos_token_id] == expected
    model = FiftyNetForCausalLM(config).eval()
    ids = torch.randint(0, min(vocab_size, 256), (1, 4))
    assert model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0).shape == (1, 7)


def test_an_invalid_config_is_refused_before_save_writes_anything(tmp_path):
    folder = tmp_path / "model"
    model = tiny_model(mixer_types=["spectral_conv", "attention"])
    model.save_pretrained(folder)
    before = folder_contents(folder)
    model.config.num_hidden_layers = 3
    with pytest.raises(ValueError, match="mixer_types lists 2 mixers for num_hidden_layers=3"):
        model.save_pretrained(folder)
    with pytest.raises(ValueError, match="mixer_types lists 2 mixers"):
        model.config.save_pretrained(tmp_path / "config_only")
    assert folder_contents(folder) == before and sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_resizing_below_the_special_tokens_is_refused_with_what_to_pass(tmp_path):
    model = tiny_model()
    with pytest.raises(ValueError, match=r"pad_token_id=256, bos_token_id=257, eos_token_id=258 outside the "
                                         r"vocabulary \[0, 128\): set these ids in model.config and "
                                         r"model.generation_config"):
        model.resize_token_embeddings(128)
    assert model.config.vocab_size == 259 and model.model.embed_tokens.num_embeddings == 259
    with pytest.raises(ValueError, match=r"eos_token_id=258 outside the vocabulary \[0, 258\)"):
        model.resize_token_embeddings(250, pad_to_multiple_of=129)  # rounded up to 258
    for source in (model.config, model.generation_config):
        source.pad_token_id, source.bos_token_id, source.eos_token_id = 0, 1, 2
    model.resize_token_embeddings(128)
    model.save_pretrained(tmp_path)
    assert FiftyNetForCausalLM.from_pretrained(tmp_path).config.vocab_size == 128


@pytest.mark.parametrize("variant", [ALL_VARIANTS[0], ALL_VARIANTS[-1]], ids=variant_id)
def test_assistant_early_exit_returns_greedy_output_and_leaves_the_model_whole(variant):
    model = tiny_model(**variant)
    layers = model.config.num_hidden_layers
    ids = random_ids(1, 10)
    greedy = model.generate(ids, max_new_tokens=15, do_sample=False, pad_token_id=256)
    early = model.generate(ids, max_new_tokens=15, do_sample=False, pad_token_id=256, assistant_early_exit=1)
    assert torch.equal(early, greedy)
    assert model.config.num_hidden_layers == layers and len(model.config.mixer_types) == layers
    assert torch.equal(model.generate(ids, max_new_tokens=15, do_sample=False, pad_token_id=256), greedy)


def test_an_interrupted_save_leaves_the_previous_folder_as_it_was(tmp_path, monkeypatch):
    folder = tmp_path / "model"
    tiny_model(seed=0).save_pretrained(folder)
    FiftyNetByteTokenizer().save_pretrained(folder)
    before = folder_contents(folder)
    replacement = tiny_model(seed=1, position_encoding="learned")

    def interrupted():  # the config and the code files are written by then
        raise KeyboardInterrupt

    monkeypatch.setattr(replacement, "state_dict", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replacement.save_pretrained(folder)
    assert folder_contents(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staged folder left behind
    FiftyNetForCausalLM.from_pretrained(folder)


def test_a_failed_write_leaves_the_folder_as_it_was_and_nothing_beside_it(tmp_path):
    """`staged_folder`, which every command that writes a model folder (quickstart, train, compress, convert,
    chunk-head) writes through."""
    target = tmp_path / "run"
    target.mkdir()
    (target / "metrics.json").write_text("old")
    target.chmod(0o750)
    with pytest.raises(RuntimeError, match="halfway"):
        with staged_folder(target) as staged:
            (staged / "metrics.json").write_text("new")
            raise RuntimeError("failed halfway")
    assert folder_contents(target) == {"metrics.json": b"old"} and os.listdir(tmp_path) == ["run"]
    with staged_folder(target) as staged:
        (staged / "card.md").write_text("new")
    assert folder_contents(target) == {"card.md": b"new", "metrics.json": b"old"} and os.listdir(tmp_path) == ["run"]
    assert target.stat().st_mode & 0o777 == 0o750
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is not a folder"):
        with staged_folder(tmp_path / "file"):
            pass


def test_the_staged_folder_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    target = tmp_path / "run"
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from modeling_fiftynet.saving import staged_folder
        with staged_folder({str(target)!r}) as staged:
            (staged / "model.safetensors").write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGKILL)
        """)])
    assert killed.returncode == -signal.SIGKILL
    (abandoned,) = [path.name for path in target.iterdir()]
    host = socket.gethostname()
    assert abandoned.startswith(f".fiftynet-partial-{host}-")
    others = [f".fiftynet-partial-{host}-{os.getpid()}-running", ".fiftynet-partial-otherhost-1-shared"]
    for name in others:
        (target / name).mkdir()
    with staged_folder(target) as staged:
        (staged / "notes.txt").write_text("kept")
    assert sorted(path.name for path in target.iterdir()) == sorted([*others, "notes.txt"])


def killed_while_moving_in(folder: Path) -> None:
    """Saves `tiny_model(seed=1, num_hidden_layers=3)` over the 2-layer model in `folder` in a process killed right
    after the new weights were renamed into place, before the new config."""
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_modeling import tiny_model
        rename = os.replace
        def replace_then_die(source, destination):
            rename(source, destination)
            if str(destination).endswith("model.safetensors"):
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace = replace_then_die
        tiny_model(seed=1, num_hidden_layers=3).save_pretrained({str(folder)!r})
        """)])
    assert killed.returncode == -signal.SIGKILL
    assert [p.name for p in folder.iterdir() if p.name.startswith(".fiftynet-commit-")]


@pytest.mark.parametrize("loader", ["class", "auto", "remote_code", "next_save"])
def test_a_save_killed_while_moving_its_files_in_is_finished_by_the_next_load_or_save(tmp_path, loader):
    """Killed between renames, a save left new weights beside the old config: it is finished, not loaded half."""
    folder = tmp_path / "model"
    tiny_model(seed=0).save_pretrained(folder)
    FiftyNetByteTokenizer().save_pretrained(folder)
    killed_while_moving_in(folder)
    ids = random_ids(1, 7)
    with torch.no_grad():
        expected = tiny_model(seed=1, num_hidden_layers=3)(ids).logits
    if loader == "remote_code":
        torch.save(ids, tmp_path / "ids.pt")
        run_isolated(f"""
            import torch
            from transformers import AutoModelForCausalLM
            model = AutoModelForCausalLM.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
            with torch.no_grad():
                torch.save(model(torch.load("ids.pt")).logits, "logits.pt")
            """, tmp_path)
        actual = torch.load(tmp_path / "logits.pt")
    else:
        if loader == "next_save":
            with staged_folder(folder) as staged:
                (staged / "notes.txt").write_text("kept")
        load = FiftyNetForCausalLM.from_pretrained if loader in ("class", "next_save") else \
            AutoModelForCausalLM.from_pretrained
        with torch.no_grad():
            actual = load(folder).eval()(ids).logits
    assert torch.equal(actual, expected)
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".fiftynet-")]
    assert json.loads((folder / "config.json").read_text())["num_hidden_layers"] == 3


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_saved_model_has_the_modes_of_the_users_other_files(tmp_path, umask):
    """safetensors writes its files for their owner only (0600): another user of a shared machine or container could
    not read the weights beside a readable config."""
    previous = os.umask(umask)
    try:
        tiny_model().save_pretrained(tmp_path / "model")
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "model").iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o666 & ~umask}, modes


def test_saves_that_write_no_weights_or_other_weights_keep_the_weights_there(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path, variant="fp16")
    model.config.save_pretrained(tmp_path)  # a config alone
    model.save_pretrained(tmp_path)  # the default variant again
    names = {p.name for p in tmp_path.iterdir()}
    assert {"model.safetensors", "model.fp16.safetensors", "config.json"} <= names
    FiftyNetForCausalLM.from_pretrained(tmp_path)
    FiftyNetForCausalLM.from_pretrained(tmp_path, variant="fp16")


def test_a_save_updates_the_folder_in_place_through_symlinks_and_from_inside_it(tmp_path, monkeypatch):
    """The folder itself is never renamed: a symlink keeps pointing at it, a process working in it keeps its
    working directory, and a mount point (a container volume) can be saved into."""
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real, target_is_directory=True)
    tiny_model(seed=0).save_pretrained(link)
    tiny_model(seed=1).save_pretrained(f"{link}/")
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]
    reference = tiny_model(seed=1)
    ids = random_ids(1, 5)
    with torch.no_grad():
        assert torch.equal(FiftyNetForCausalLM.from_pretrained(real).eval()(ids).logits, reference(ids).logits)
    monkeypatch.chdir(real)
    inode = os.stat(".").st_ino
    tiny_model(seed=2).save_pretrained(".")
    assert os.getcwd() == str(real) and os.stat(".").st_ino == inode
    assert not [p for p in real.iterdir() if p.name.startswith(".")]  # no staged folder left


def test_interrupts_are_held_while_a_save_is_moved_into_place():
    moved = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # Python runs the handler here: it is held, not raised
            moved.append("every file")
    assert moved == ["every file"]


def test_a_save_keeps_the_other_files_of_the_folder_and_drops_stale_shards(tmp_path):
    model = tiny_model()
    FiftyNetByteTokenizer().save_pretrained(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "log.txt").write_text("also mine")
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 1 and (tmp_path / "model.safetensors.index.json").exists()
    model.save_pretrained(tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in names and not names & {*shards, "model.safetensors.index.json"}
    assert {"notes.txt", "runs", "tokenizer_config.json"} <= names
    assert (tmp_path / "runs" / "log.txt").read_text() == "also mine"
    FiftyNetByteTokenizer.from_pretrained(tmp_path)
    with torch.no_grad():
        ids = random_ids(1, 6)
        assert torch.equal(FiftyNetForCausalLM.from_pretrained(tmp_path).eval()(ids).logits, model(ids).logits)


def test_every_saved_folder_loads_through_every_auto_class_without_the_package(tmp_path):
    ids = random_ids(2, 12)
    causal = tiny_model()
    causal.save_pretrained(tmp_path / "causal")
    torch.manual_seed(0)
    classifier = FiftyNetForSequenceClassification(tiny_config(num_labels=3)).eval()
    classifier.save_pretrained(tmp_path / "classifier")
    with torch.no_grad():
        save_file({"ids": ids, "hidden": causal.model(ids).last_hidden_state, "scores": classifier(ids).logits},
                  tmp_path / "expected.safetensors")
    auto_map = json.loads((tmp_path / "classifier" / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification"}
    run_isolated(
        """
        import torch
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

        expected = load_file("expected.safetensors")
        for folder in ("causal", "classifier"):
            assert type(AutoConfig.from_pretrained(folder, trust_remote_code=True)).__name__ == "FiftyNetConfig"
            base = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
            assert type(base).__name__ == "FiftyNetModel"
            lm = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
            lm.generate(expected["ids"], max_new_tokens=3, do_sample=False, pad_token_id=256)
        with torch.no_grad():
            base = AutoModel.from_pretrained("causal", trust_remote_code=True).eval()
            assert torch.equal(base(expected["ids"]).last_hidden_state, expected["hidden"])
            classifier = AutoModelForSequenceClassification.from_pretrained("classifier", trust_remote_code=True)
            assert torch.equal(classifier.eval()(expected["ids"]).logits, expected["scores"])
            new_head = AutoModelForSequenceClassification.from_pretrained("causal", num_labels=2,
                                                                          trust_remote_code=True)
            assert new_head(expected["ids"]).logits.shape == (2, 2)
        """,
        cwd=tmp_path,
    )


def test_pickled_weights_are_refused_by_name(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError, match="holds pytorch_model.bin but no model.safetensors"):
        FiftyNetForCausalLM.from_pretrained(tmp_path)
    save_file({"x": torch.zeros(1)}, tmp_path / "adapter_model.safetensors")  # other safetensors are not weights
    with pytest.raises(OSError, match="holds pytorch_model.bin but no model.safetensors"):
        FiftyNetForCausalLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="use_safetensors=False is not supported"):
        FiftyNetForCausalLM.from_pretrained(tmp_path, use_safetensors=False)


def test_weights_of_the_class_that_saved_the_checkpoint_may_not_be_missing(tmp_path):
    untied = tiny_model(tie_word_embeddings=False, chunk_head_size=2)
    for key in ("lm_head.weight", "chunk_head.weight"):
        untied.save_pretrained(tmp_path / key)
        weights = load_file(tmp_path / key / "model.safetensors")
        del weights[key]
        save_file(weights, tmp_path / key / "model.safetensors", metadata={"format": "pt"})
        with pytest.raises(ValueError, match=f"checkpoint is incomplete.*{key}"):
            FiftyNetForCausalLM.from_pretrained(tmp_path / key)
    # A head the checkpoint never had is new, as usual: a classifier from a causal LM's folder.
    FiftyNetForSequenceClassification.from_pretrained(tmp_path / "lm_head.weight", num_labels=2)


def test_unreadable_weights_are_an_os_error_naming_the_folder(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(OSError, match=f"The weights of {tmp_path} cannot be read"):
        FiftyNetForCausalLM.from_pretrained(tmp_path)


def test_backbone_weights_the_model_has_no_place_for_are_refused(tmp_path):
    tiny_model(num_hidden_layers=4).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="backbone weight.*model.layers.2"):
        FiftyNetForCausalLM.from_pretrained(tmp_path, num_hidden_layers=2)
    # Another head's weights are not the backbone's: a classifier starts from a causal LM's folder.
    FiftyNetForSequenceClassification.from_pretrained(tmp_path, num_labels=2)


def test_weights_of_another_shape_are_refused_by_name_unless_tolerated(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    # A RuntimeError, as transformers raises for weights of another size (its common tests expect one).
    with pytest.raises(RuntimeError, match=r"do not have the shape its config describes, e\.g\. .*embed_tokens"):
        FiftyNetForCausalLM.from_pretrained(tmp_path, vocab_size=300)
    resized = FiftyNetForCausalLM.from_pretrained(tmp_path, vocab_size=300, ignore_mismatched_sizes=True)
    assert resized.get_input_embeddings().weight.shape[0] == 300


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_export_with_a_static_and_a_dynamic_sequence_length(variant):
    model = tiny_model(**variant)
    ids = random_ids(2, 40)
    static = torch.export.export(model, (ids,), {"use_cache": False}).module()
    with torch.no_grad():
        torch.testing.assert_close(static(ids, use_cache=False).logits, model(ids).logits, rtol=1e-5, atol=1e-5)
    seq_len = torch.export.Dim("seq_len", min=2, max=300)
    mask = torch.ones_like(ids)
    dynamic = torch.export.export(
        model, (ids,), {"attention_mask": mask, "use_cache": False},
        dynamic_shapes={"input_ids": {1: seq_len}, "attention_mask": {1: seq_len}, "use_cache": None},
    ).module()
    for length in (2, 17, 40, 120):  # up to the learned position table's 128
        other, mask = random_ids(2, length, seed=length), torch.ones(2, length, dtype=torch.long)
        mask[1, : length // 3] = 0  # left padding
        with torch.no_grad():
            assert_same_logits(dynamic(other, attention_mask=mask, use_cache=False).logits,
                               model(other, attention_mask=mask).logits)


def test_a_dynamic_length_export_stays_exact_on_long_sequences():
    """A symbolic length takes the loop-free modal path (`spectral_ops.modal_fft_conv`), whose rounding must not grow
    with the length beyond the eager path's."""
    model = tiny_model(**ALL_VARIANTS[9])
    exported = torch.export.export(
        model, (random_ids(1, 40),), {"use_cache": False},
        dynamic_shapes={"input_ids": {1: torch.export.Dim("seq_len", min=2, max=4096)}, "use_cache": None},
    ).module()
    ids = random_ids(1, 1500)
    with torch.no_grad():
        assert_same_logits(exported(ids, use_cache=False).logits, model(ids).logits)


@pytest.mark.parametrize("variant", VARIANTS)
def test_torch_compile_captures_a_forward_pass_and_a_decoding_step_in_one_graph(variant):
    """`aot_eager` traces through AOTAutograd as inductor does, without generating code (one inductor test below)."""
    torch.compiler.reset()
    model = tiny_model(**variant)
    ids = random_ids(2, 30)
    with torch.no_grad():
        eager = model(ids).logits
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(ids, use_cache=False).logits, eager, rtol=1e-4, atol=1e-4)
        cache = cache_of(model(ids[:, :25], use_cache=True))
        step = torch.compile(lambda token: model(token, cache=cache).logits, fullgraph=True, backend="aot_eager")
        steps = [step(ids[:, t : t + 1]) for t in range(25, 30)]
    torch.testing.assert_close(torch.cat(steps, dim=1), eager[:, 25:], rtol=1e-4, atol=1e-4)


def test_inductor_compiles_the_default_model():
    torch.compiler.reset()
    model = tiny_model()
    ids = random_ids(2, 24)
    with torch.no_grad():
        compiled = torch.compile(model, fullgraph=True)
        torch.testing.assert_close(compiled(ids, use_cache=False).logits, model(ids).logits, rtol=1e-4, atol=1e-4)


HOST_SYNCS = {"aten::_local_scalar_dense", "aten::item", "aten::is_nonzero"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_decoding_step_does_not_wait_for_the_device(variant):
    """No operation in a decoding step reads a tensor's value on the host (on a GPU each would stall the stream).
    The first call does (it checks its inputs), which shows that the profiler sees such reads."""
    model = tiny_model(**variant)
    ids, mask = random_ids(2, 12), torch.ones(2, 12, dtype=torch.long)
    mask[0, :3] = 0
    with torch.no_grad():
        with torch.profiler.profile() as prefill:
            cache = cache_of(model(ids[:, :11], attention_mask=mask[:, :11], use_cache=True))
        with torch.profiler.profile() as step:
            model(ids[:, 11:], cache=cache, attention_mask=mask)
    assert HOST_SYNCS & {event.name for event in prefill.events()}
    assert not HOST_SYNCS & {event.name for event in step.events()}
