"""`fiftynet generate` streams what `model.generate` produces."""

import torch

from fiftynet.training import cli
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


def test_generate_streams_the_greedy_continuation(tmp_path, capsys):
    torch.manual_seed(0)
    model = FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1))
    tokenizer = FiftyNetByteTokenizer()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    prompt = tokenizer("And God said", return_tensors="pt")
    expected = tokenizer.decode(
        model.generate(**prompt, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)[0],
        skip_special_tokens=True,
    )
    cli.main(["generate", "--model", str(tmp_path), "--prompt", "And God said", "--max-new-tokens", "12",
              "--temperature", "0"])
    assert capsys.readouterr().out.strip() == expected.strip()


def test_generate_samples_with_temperature_top_k_top_p(tmp_path, capsys):
    model = FiftyNetForCausalLM(FiftyNetConfig(hidden_size=16, num_hidden_layers=1))
    model.save_pretrained(tmp_path)
    FiftyNetByteTokenizer().save_pretrained(tmp_path)
    cli.main(["generate", "--model", str(tmp_path), "--prompt", "In the", "--max-new-tokens", "8",
              "--temperature", "1.5", "--top-k", "20", "--top-p", "0.9"])
    assert capsys.readouterr().out.startswith("In the")
