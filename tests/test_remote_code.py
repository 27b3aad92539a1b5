"""A saved folder must load, generate and train through remote code where this package cannot be imported."""

import torch
from conftest import run_isolated
from safetensors.torch import save_file

from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


def test_saved_folder_loads_generates_and_trains_without_the_package(tmp_path):
    torch.manual_seed(0)
    config = FiftyNetConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64, filter_state_size=8)
    model = FiftyNetForCausalLM(config).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    FiftyNetByteTokenizer().save_pretrained(folder)
    ids = torch.tensor([list(b"In the beginning")])
    with torch.no_grad():
        logits = model(ids).logits
    greedy = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=256)
    save_file({"ids": ids, "logits": logits, "greedy": greedy}, tmp_path / "expected.safetensors")

    run_isolated(
        """
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        expected = load_file("expected.safetensors")
        model = AutoModelForCausalLM.from_pretrained("model", trust_remote_code=True).eval()
        tokenizer = AutoTokenizer.from_pretrained("model", trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert type(tokenizer).__name__ == "FiftyNetByteTokenizer"
        assert tokenizer("In the beginning", return_tensors="pt")["input_ids"].equal(expected["ids"])
        with torch.no_grad():
            assert torch.equal(model(expected["ids"]).logits, expected["logits"])
        generated = model.generate(expected["ids"], max_new_tokens=8, do_sample=False, pad_token_id=256)
        assert torch.equal(generated, expected["greedy"])

        assert all(p.requires_grad for p in model.parameters())
        model.train()
        model(expected["ids"], labels=expected["ids"]).loss.backward()
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
        """,
        cwd=tmp_path,
    )


def test_every_mixer_option_loads_through_remote_code(tmp_path):
    """Each causal variant as a causal LM, and FNet as a sequence classifier, reload without the package."""
    from test_modeling import ALL_VARIANTS, random_ids, tiny_config, tiny_model

    from modeling_fiftynet import FiftyNetForSequenceClassification

    ids = random_ids(2, 20)
    expected = {"ids": ids}
    for index, variant in enumerate(ALL_VARIANTS):
        model = tiny_model(**variant)
        model.save_pretrained(tmp_path / f"causal_{index}")
        with torch.no_grad():
            expected[f"causal_{index}"] = model(ids).logits
    torch.manual_seed(0)
    classifier = FiftyNetForSequenceClassification(tiny_config(mixer_type="fnet", num_labels=3)).eval()
    classifier.save_pretrained(tmp_path / "fnet")
    with torch.no_grad():
        expected["fnet"] = classifier(ids).logits
    save_file(expected, tmp_path / "expected.safetensors")

    run_isolated(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

        expected = load_file("expected.safetensors")
        for index in range({len(ALL_VARIANTS)}):
            model = AutoModelForCausalLM.from_pretrained(f"causal_{{index}}", trust_remote_code=True).eval()
            with torch.no_grad():
                assert torch.equal(model(expected["ids"]).logits, expected[f"causal_{{index}}"]), index
            model.generate(expected["ids"], max_new_tokens=3, do_sample=False, pad_token_id=256)
        model = AutoModelForSequenceClassification.from_pretrained("fnet", trust_remote_code=True).eval()
        assert type(model).__name__ == "FiftyNetForSequenceClassification"
        with torch.no_grad():
            assert torch.equal(model(expected["ids"]).logits, expected["fnet"])
        """,
        cwd=tmp_path,
    )
