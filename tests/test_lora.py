"""LoRA fine-tuning with peft: adapters on the projections, filters trained in full, save, reload, merge, generate."""

import json

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from fiftynet.training import cli
from fiftynet.training.corpus import load_corpus
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


def test_lora_fine_tunes_saves_reloads_merges_and_generates(tmp_path, capsys):
    torch.manual_seed(0)
    base = tmp_path / "base"
    FiftyNetForCausalLM(FiftyNetConfig(hidden_size=32, num_hidden_layers=1)).save_pretrained(base)
    FiftyNetByteTokenizer().save_pretrained(base)
    text = tmp_path / "text.txt"
    text.write_text(load_corpus("validation")[:20_000])
    out = tmp_path / "lora"
    cli.main(["lora", "--model", str(base), "--data", str(text), "--output_dir", str(out), "--block_size", "32",
              "--per_device_train_batch_size", "8", "--max_steps", "25", "--learning_rate", "1e-2",
              "--logging_steps", "1", "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none"])
    log = json.loads((out / "metrics.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in log if "loss" in entry]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1, losses

    assert not (out / "adapter" / "training_args.bin").exists(), "the adapter folder holds safetensors only"
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert {"in_proj", "out_proj", "gate_proj", "up_proj", "down_proj"} <= {
        name.split(".")[-3] for name in adapter if "lora_A" in name}
    assert any(".filter." in name and "residues" in name for name in adapter), "filters are saved with the adapter"

    # The adapter reloads onto the base model and equals the merged model saved by the run.
    original = AutoModelForCausalLM.from_pretrained(base)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    probe = torch.randint(0, 256, (2, 24))
    with torch.no_grad():
        assert torch.allclose(reloaded(probe).logits, merged(probe).logits, atol=1e-4)
        assert not torch.allclose(original(probe).logits, merged(probe).logits, atol=1e-3), "weights changed"
        assert torch.allclose(reloaded.merge_and_unload()(probe).logits, merged(probe).logits, atol=1e-4)

    with pytest.raises(SystemExit):  # no network call: the folder is refused first
        cli.main(["push", "--model", str(out / "adapter"), "--repo-id", "alice/lora"])
    assert f"it is a LoRA adapter: push the merged model, {out / 'model'}" in capsys.readouterr().err
    cli.main(["generate", "--model", str(out / "adapter"), "--prompt", "And God", "--max-new-tokens", "10"])
    assert capsys.readouterr().out.startswith("And God")

    # Its base model replaced by one of another size: one line naming the problem, not a traceback.
    FiftyNetForCausalLM(FiftyNetConfig(hidden_size=64, num_hidden_layers=1)).save_pretrained(base)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["generate", "--model", str(out / "adapter"), "--prompt", "And God"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and error.startswith(f"fiftynet generate: error: cannot load adapter {out}")
    assert "size mismatch for " in error and f"Its base model, {base}, is not the model the adapter was" in error
