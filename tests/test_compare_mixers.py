"""`python -m benchmarks.compare_mixers` at a tiny size, and the attention baselines it shares with the other
benchmarks. How the models rank at this size is never asserted; docs/mixers.md has the measured run."""

import json

import pytest
from transformers import GPT2LMHeadModel, LlamaForCausalLM

from benchmarks import compare_mixers
from benchmarks.baselines import attention_baseline


def test_attention_baselines_have_the_asked_shape_and_no_dropout():
    gpt2 = attention_baseline("gpt2", 259, 48, 3, 4, 128, pad_token_id=256, bos_token_id=257, eos_token_id=258)
    llama = attention_baseline("llama", 259, 48, 3, 4, 128, pad_token_id=256, bos_token_id=257, eos_token_id=258)
    assert isinstance(gpt2, GPT2LMHeadModel) and isinstance(llama, LlamaForCausalLM)
    assert (gpt2.config.n_embd, gpt2.config.n_layer, gpt2.config.n_head, gpt2.config.n_positions) == (48, 3, 4, 128)
    assert (gpt2.config.resid_pdrop, gpt2.config.embd_pdrop, gpt2.config.attn_pdrop) == (0.0, 0.0, 0.0)
    assert (llama.config.hidden_size, llama.config.num_hidden_layers, llama.config.num_attention_heads) == (48, 3, 4)
    assert llama.config.intermediate_size == 128  # FiftyNet's gated MLP: 8/3 of 48, rounded up to 64
    for model in (gpt2, llama):
        assert model.config._attn_implementation == "sdpa"
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
        assert (model.config.pad_token_id, model.config.bos_token_id, model.config.eos_token_id) == (256, 257, 258)
    with pytest.raises(ValueError, match="unknown attention baseline 'mamba'"):
        attention_baseline("mamba", 259, 48, 3, 4, 128)


@pytest.mark.benchmark
def test_compare_mixers_at_a_tiny_size_trains_every_model_and_writes_the_table(tmp_path):
    out = tmp_path / "out"
    compare_mixers.main(["--output-dir", str(out), "--max-steps", "2", "--eval-every", "1", "--batch-size", "2",
                         "--block-size", "32", "--hidden-size", "32", "--num-layers", "2", "--num-heads", "2",
                         "--curve-blocks", "2", "--validation-blocks", "4"])
    models = json.loads((out / "results.json").read_text())["models"]
    assert list(models) == [*compare_mixers.FIFTYNET_VARIANTS, *compare_mixers.BASELINES]
    for result in models.values():
        assert result["validation_bits_per_byte"] > 0 and result["parameters"] > 0
        assert [step for step, _ in result["curve_bits_per_byte"]] == [1, 2]
    table = (out / "results.md").read_text()
    assert all(f"| {name} |" in table for name in models)
    assert (out / "validation_curves.png").read_bytes().startswith(b"\x89PNG")
