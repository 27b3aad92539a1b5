"""`fiftynet eval` measures any causal LM (GPT-2, FiftyNet) on any text with the same metrics."""

import json
import math

import pytest
import torch
from datasets import Dataset
from transformers import GPT2Config, GPT2LMHeadModel

from fiftynet.training import cli, evaluation
from fiftynet.training.corpus import load_corpus
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM
from test_cli_errors import fails_with


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

    # 62 full blocks of 64 bytes and a last block of the 32 left: every byte but each block's first is a target.
    data = list(text_file.read_bytes())
    blocks = [torch.tensor(data[start:start + 64])[None] for start in range(0, 4_000, 64)]
    with torch.no_grad():
        logits = [model.eval()(block).logits[0, :-1] for block in blocks]
    targets = torch.cat([block[0, 1:] for block in blocks])
    expected = torch.nn.functional.cross_entropy(torch.cat(logits), targets).item()
    assert (metrics["evaluated_tokens"], metrics["predicted_tokens"], metrics["text_tokens"]) == (4_000, 4_000 - 63,
                                                                                                 4_000)
    assert metrics["eval_loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics["eval_perplexity"] == pytest.approx(math.exp(expected), rel=1e-5)
    assert metrics["eval_bits_per_byte"] == pytest.approx(expected / math.log(2), rel=1e-5)  # one byte per token
    predicted = torch.cat(logits).argmax(-1)
    assert metrics["eval_accuracy"] == pytest.approx((predicted == targets).float().mean().item(), abs=1e-6)


@pytest.mark.parametrize("length", [2, 3, 64, 65, 100])
def test_eval_measures_every_token_of_a_text_of_any_length(tmp_path, length):
    torch.manual_seed(0)
    model = FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1, initializer_range=0.5))
    model.save_pretrained(tmp_path / "model")
    FiftyNetByteTokenizer().save_pretrained(tmp_path / "model")
    text = tmp_path / "text.txt"
    text.write_text(load_corpus("validation")[:length])
    metrics = evaluation.main(["--model", str(tmp_path / "model"), "--text", str(text), "--block_size", "64"])
    data = list(text.read_bytes())
    # A one-token tail has nothing to predict in a block of its own: 65 bytes are one block, its last byte unmeasured.
    starts = range(0, length - 1 if length % 64 == 1 else length, 64)
    with torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(model.eval()(torch.tensor([data[s:s + 64]])).logits[0, :-1],
                                                    torch.tensor(data[s + 1:s + 64]), reduction="sum")
                  for s in starts]
    targets = sum(min(64, length - s) - 1 for s in starts)
    assert metrics["predicted_tokens"] == targets
    assert metrics["eval_loss"] == pytest.approx(float(sum(losses)) / targets, rel=1e-5)


def test_eval_refuses_a_text_with_nothing_to_predict(tmp_path, capsys):
    model = FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1))
    model.save_pretrained(tmp_path / "model")
    FiftyNetByteTokenizer().save_pretrained(tmp_path / "model")
    text = tmp_path / "text.txt"
    text.write_text("A")
    error = fails_with(["eval", "--model", str(tmp_path / "model"), "--text", str(text)], capsys)
    assert "the evaluation text has 1 token(s); at least 2 are needed to predict one" in error


def test_greedy_agreement_compares_greedy_continuations_position_by_position():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=64, bos_token_id=7,
                        eos_token_id=7, initializer_range=0.5)
    reference, other = GPT2LMHeadModel(config).eval(), GPT2LMHeadModel(config).eval()
    blocks = Dataset.from_dict({"input_ids": torch.randint(8, 50, (40, 20)).tolist()}).with_format("torch")
    prompts, new_tokens = evaluation.greedy_prompts(blocks)
    # The first half of the first 32 blocks, continued by the other half (10 tokens, fewer than 32).
    assert prompts.shape == (32, 10) and new_tokens == 10 and torch.equal(prompts, blocks[:32]["input_ids"][:, :10])

    expected = reference.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=10,
                                  do_sample=False, pad_token_id=7)[:, 10:]
    # The model's own generation defaults are not used: sampling at a high temperature would change every token.
    reference.generation_config.update(do_sample=True, temperature=5.0)
    continuations = evaluation.greedy_continuations(reference, prompts, new_tokens, batch_size=5)
    assert torch.equal(continuations, expected) and continuations.shape == (32, 10)
    assert evaluation.greedy_agreement(continuations, expected) == 1.0

    agreement = evaluation.greedy_agreement(evaluation.greedy_continuations(other, prompts, 10, 32), expected)
    assert 0 <= agreement < 0.5  # another random model
    changed = expected.clone()
    changed[:4, 3] += 1  # 4 tokens of 320
    assert evaluation.greedy_agreement(changed, expected) == pytest.approx(1 - 4 / 320)


def test_greedy_continuations_that_end_early_are_padded_with_the_end_of_text_token():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=64,
                                       bos_token_id=7, eos_token_id=7)).eval()
    with torch.no_grad():
        model.lm_head.weight.zero_()
        model.lm_head.weight[7] = 1.0  # end of text, whatever the input: only its logit has a bias
        model.transformer.ln_f.bias.fill_(1.0)
    prompts = torch.randint(8, 50, (3, 5))
    assert torch.equal(evaluation.greedy_continuations(model, prompts, 4, batch_size=2), torch.full((3, 4), 7))
