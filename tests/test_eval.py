"""`fiftynet eval` measures any causal LM (GPT-2, FiftyNet) on any text with the same metrics."""

import json
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM
from training import cli
from training.corpus import load_corpus


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(load_corpus("validation")[:4_000])
    return path


@pytest.mark.parametrize("architecture", ["gpt2", "fiftynet"])
def test_eval_reports_the_loss_of_the_model_on_the_text(tmp_path, text_file, architecture):
    torch.manual_seed(0)
    if architecture == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(vocab_size=259, n_embd=16, n_layer=1, n_head=2, n_positions=64))
    else:
        model = FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1))
    model.save_pretrained(tmp_path / "model")
    # GPT-2 borrows the byte tokenizer: no network, and the numbers compare with FiftyNet's.
    FiftyNetByteTokenizer().save_pretrained(tmp_path / "model")
    out = tmp_path / "metrics.json"
    cli.main(["eval", "--model", str(tmp_path / "model"), "--text", str(text_file), "--block_size", "64",
              "--batch_size", "8", "--output_json", str(out)])
    metrics = json.loads(out.read_text())

    blocks = torch.tensor(list(text_file.read_bytes())[: 62 * 64]).view(62, 64)
    with torch.no_grad():
        expected = model.eval()(blocks, labels=blocks).loss.item()
    assert metrics["evaluated_tokens"] == 62 * 64 and metrics["text_tokens"] == 4_000
    assert metrics["eval_loss"] == pytest.approx(expected, rel=1e-4)
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(expected), rel=1e-4)
    assert metrics["eval_bits_per_byte"] == pytest.approx(expected / math.log(2), rel=1e-4)  # one byte per token
    with torch.no_grad():
        predicted = model(blocks).logits[:, :-1].argmax(-1)
    assert metrics["eval_accuracy"] == pytest.approx((predicted == blocks[:, 1:]).float().mean().item(), abs=1e-6)
