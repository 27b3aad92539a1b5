"""Behaviour of the FiftyNet model: causality, exact incremental decoding, generation, padding, loading, bad input."""

import json
import re

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from safetensors.torch import load_file, save_file
from transformers import DynamicCache

from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM, FiftyNetModel
from modeling_fiftynet.modeling_fiftynet import CACHE_NAME
from modeling_fiftynet.spectral_ops import fft_causal_conv


def tiny_config(**overrides) -> FiftyNetConfig:
    # initializer_range 0.5: with the usual 0.02 a random tiny model repeats one token whatever its input, so two
    # decoding paths agree even when one of them is wrong. With 0.5 its outputs vary (see
    # test_tiny_models_generate_varied_tokens).
    settings = dict(hidden_size=32, num_hidden_layers=2, intermediate_size=64, filter_state_size=8,
                    max_position_embeddings=128, fourier_kernel_size=16, fourier_modes=6, num_attention_heads=4,
                    initializer_range=0.5)
    settings.update(overrides)
    return FiftyNetConfig(**settings)


def assert_same_logits(actual: torch.Tensor, expected: torch.Tensor, relative: float = 2e-5) -> None:
    """Two float32 computations of the same logits agree to `relative` of the logits' largest magnitude (float32
    rounding in long convolutions grows with the values, and these tiny models' logits reach about 12)."""
    difference = (actual - expected).abs().max().item()
    assert difference <= relative * expected.abs().max().item(), f"logits differ by {difference:.3g}"


def cache_of(output) -> DynamicCache:
    """The cache of a model output, under the field name of the running transformers release."""
    return getattr(output, CACHE_NAME)


def tiny_model(seed: int = 0, **overrides) -> FiftyNetForCausalLM:
    torch.manual_seed(seed)
    return FiftyNetForCausalLM(tiny_config(**overrides)).eval()


def random_ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


# Every causal mixer, position encoding, gate and embedding option, and a hybrid stack with attention. The Fourier
# filters (16 lags) are shorter than most test sequences, so their decoding state is exercised past its length.
ALL_VARIANTS = [
    dict(mixer_type="spectral_conv"),
    dict(mixer_type="spectral_conv", position_encoding="learned"),
    dict(mixer_type="spectral_conv", position_encoding="sinusoidal"),
    dict(mixer_type="spectral_conv", position_encoding="complex_rope", embedding_type="complex"),
    dict(mixer_type="nfo"),
    dict(mixer_type="nfo", mixer_gate="glu"),
    dict(mixer_type="fftnet"),
    dict(mixer_type="fftnet", mixer_gate="phase"),
    dict(mixer_type="attention", position_encoding="rope"),
    dict(num_hidden_layers=4, mixer_types=["spectral_conv", "attention", "nfo", "fftnet"], position_encoding="rope"),
    # The shape `fiftynet convert` gives a Llama/Qwen3: grouped-query attention, q/k norm, Llama 3.x rope scaling.
    dict(mixer_types=["attention", "spectral_conv"], position_encoding="rope", num_key_value_heads=2, head_dim=16,
         attention_qk_norm=True, attention_bias=True, attention_out_bias=False,
         rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                              high_freq_factor=4.0, original_max_position_embeddings=16)),
    # The shape `fiftynet convert` gives a GPT-2: LayerNorm, plain biased MLP, biased projections, learned positions.
    dict(num_hidden_layers=4, mixer_types=["spectral_conv", "attention", "nfo", "fftnet"], position_encoding="learned",
         norm_type="layer_norm", mlp_type="plain", mlp_bias=True, mixer_bias=True, attention_bias=True,
         hidden_act="gelu_new"),
]


def variant_id(variant: dict) -> str:
    return "-".join("+".join(v) if isinstance(v, list) else str(v) for v in variant.values())


# What changes from one transformers release to the next (cache layers, generation, loading, rope initialisation) is
# exercised by these variants: constant-state layers only, attention only, hybrids, grouped-query attention with
# llama3 rope, GPT-2's shape. The others differ from them in model math only, which is transformers' in no release:
# they carry the `model_math` marker, and CI runs them under the newest and the oldest admitted release only.
RELEASE_VARIANTS = (0, 8, 9, 10, 11)
VARIANTS = [pytest.param(variant, id=variant_id(variant),
                         marks=() if index in RELEASE_VARIANTS else pytest.mark.model_math)
            for index, variant in enumerate(ALL_VARIANTS)]


def test_fft_causal_conv_matches_direct_convolution():
    inputs, kernel = torch.randn(2, 3, 37), torch.randn(3, 37)
    expected = torch.zeros_like(inputs)
    for t in range(37):
        for s in range(t + 1):
            expected[..., t] += kernel[:, t - s] * inputs[..., s]
    torch.testing.assert_close(fft_causal_conv(inputs, kernel), expected, atol=1e-4, rtol=1e-4)


def test_fft_runs_in_float32_under_bf16_autocast():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fft_causal_conv(torch.randn(1, 2, 8, dtype=torch.bfloat16), torch.randn(2, 8))
    assert out.dtype == torch.float32


def test_modal_filter_is_its_definition():
    mixer = tiny_model().model.layers[0].mixer
    poles = mixer.filter.poles()
    residues = mixer.filter.complex_residues()
    kernel = torch.einsum("dn,dnl->dl", residues, mixer.filter.powers(6)).real
    by_definition = torch.stack([(residues * poles**t).sum(-1).real for t in range(6)], -1)
    torch.testing.assert_close(kernel, by_definition, atol=1e-5, rtol=1e-5)
    assert (poles.abs() < 1).all(), "every mode must decay"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("cut", [0, 9, 30])
def test_future_tokens_do_not_change_past_logits(variant, cut):
    # In float64, where FFT rounding (which spreads over all positions) is 1e-13: any leak would be far above it.
    model = tiny_model(**variant).double()
    ids = random_ids(2, 40)
    perturbed = ids.clone()
    perturbed[:, cut + 1 :] = random_ids(2, 40 - cut - 1, seed=7)
    with torch.no_grad():
        logits, perturbed_logits = model(ids).logits, model(perturbed).logits
    assert (logits[:, : cut + 1] - perturbed_logits[:, : cut + 1]).abs().max() < 1e-10
    assert (logits[:, cut + 1 :] - perturbed_logits[:, cut + 1 :]).abs().max() > 1e-3  # the test can fail


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("length", [1, 7, 33, 100])
def test_incremental_decoding_equals_full_forward(variant, length):
    model = tiny_model(**variant)
    ids = random_ids(3, length)
    with torch.no_grad():
        full = model(ids).logits
        prefill = max(1, length // 3)
        out = model(ids[:, :prefill], use_cache=True)
        steps, cache = [out.logits], cache_of(out)
        for t in range(prefill, length):
            out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
    assert isinstance(cache, DynamicCache) and cache.get_seq_length() == length
    assert_same_logits(torch.cat(steps, dim=1), full)


@pytest.mark.parametrize("variant", VARIANTS)
def test_chunked_prefill_equals_full_forward(variant):
    model = tiny_model(**variant)
    ids = random_ids(2, 50)
    with torch.no_grad():
        full = model(ids).logits
        first = model(ids[:, :20], use_cache=True)
        second = model(ids[:, 20:45], cache=cache_of(first), use_cache=True)
        third = model(ids[:, 45:], cache=cache_of(second), use_cache=True)
    assert_same_logits(torch.cat([first.logits, second.logits, third.logits], 1), full)


def test_greedy_generate_equals_argmax_loop_over_full_forwards():
    model = tiny_model()
    ids = random_ids(2, 9)
    generated = model.generate(ids, max_new_tokens=15, do_sample=False, pad_token_id=256)
    sequence = ids
    with torch.no_grad():
        for _ in range(15):
            next_token = model(sequence, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            sequence = torch.cat([sequence, next_token], dim=1)
    assert torch.equal(generated, sequence)


@pytest.mark.parametrize("variant", [ALL_VARIANTS[0], ALL_VARIANTS[-1]], ids=variant_id)
def test_beam_search_with_cache_equals_without(variant):
    model = tiny_model(**variant)
    ids = random_ids(2, 6)
    kwargs = dict(max_new_tokens=10, num_beams=3, num_return_sequences=2, do_sample=False, pad_token_id=256)
    assert torch.equal(model.generate(ids, use_cache=True, **kwargs), model.generate(ids, use_cache=False, **kwargs))


@pytest.mark.parametrize(
    "sampling", [dict(temperature=0.7), dict(top_k=5), dict(top_p=0.8), dict(temperature=1.3, top_k=20, top_p=0.9)]
)
def test_sampling_with_cache_equals_without(sampling):
    model = tiny_model()
    ids = random_ids(2, 5)
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(3)
        outputs.append(model.generate(ids, do_sample=True, max_new_tokens=12, use_cache=use_cache,
                                      pad_token_id=256, **sampling))
    assert torch.equal(*outputs)
    assert outputs[0].shape == (2, 17)


def test_repetition_penalty_changes_greedy_output_consistently():
    model = tiny_model()
    ids = random_ids(1, 5)
    kwargs = dict(max_new_tokens=20, do_sample=False, repetition_penalty=3.0, pad_token_id=256)
    penalised = model.generate(ids, **kwargs)
    assert torch.equal(penalised, model.generate(ids, use_cache=False, **kwargs))
    new_tokens = penalised[0, 5:].tolist()
    plain = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=256)[0, 5:].tolist()
    assert len(set(new_tokens)) >= len(set(plain))


def test_generate_continues_from_returned_cache():
    model = tiny_model()
    ids = random_ids(1, 7)
    first = model.generate(ids, max_new_tokens=6, do_sample=False, return_dict_in_generate=True, pad_token_id=256)
    assert isinstance(cache_of(first), DynamicCache)
    continued = model.generate(first.sequences, **{CACHE_NAME: cache_of(first)}, max_new_tokens=6,
                               do_sample=False, pad_token_id=256)
    assert torch.equal(continued, model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=256))


@pytest.mark.parametrize("variant", VARIANTS)
def test_left_padded_batch_generates_what_each_prompt_generates_alone(variant):
    model = tiny_model(**variant)
    prompts = [random_ids(1, 11, seed=4)[0], random_ids(1, 4, seed=5)[0], random_ids(1, 8, seed=6)[0]]
    width = max(len(p) for p in prompts)
    batch = torch.full((3, width), 256)
    mask = torch.zeros(3, width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        batch[row, width - len(prompt) :] = prompt
        mask[row, width - len(prompt) :] = 1
    with torch.no_grad():
        padded_logits = model(batch, attention_mask=mask).logits
    generated = model.generate(batch, attention_mask=mask, max_new_tokens=10, do_sample=False, pad_token_id=256)
    for row, prompt in enumerate(prompts):
        with torch.no_grad():
            alone_logits = model(prompt[None]).logits[0]
        assert_same_logits(padded_logits[row, width - len(prompt) :], alone_logits)
        alone = model.generate(prompt[None], max_new_tokens=10, do_sample=False, pad_token_id=256)[0, len(prompt) :]
        # A prompt that reaches the end of sequence (258) alone stops there; in the batch its row is padded after.
        assert torch.equal(generated[row, width : width + len(alone)], alone)
        assert (generated[row, width + len(alone) :] == 256).all()


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    assert {"configuration_fiftynet.py", "modeling_fiftynet.py", "spectral_ops.py"} <= files
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForCausalLM"] == "modeling_fiftynet.FiftyNetForCausalLM"
    reloaded = FiftyNetForCausalLM.from_pretrained(tmp_path).eval()
    for (name, param), (_, loaded) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(param, loaded), name
    ids = random_ids(2, 20)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert all(p.requires_grad for p in reloaded.parameters())
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight


def test_bfloat16_loading_keeps_filters_in_float32(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    model = FiftyNetForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    for name, param in model.named_parameters():
        assert param.dtype == (torch.float32 if ".filter." in name else torch.bfloat16), name
    logits = model(random_ids(1, 16)).logits
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("variant", VARIANTS)
def test_training_under_bf16_autocast_has_finite_gradients(variant):
    model = tiny_model(**variant).train()
    ids = random_ids(2, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("variant", [ALL_VARIANTS[0], ALL_VARIANTS[-1]], ids=variant_id)
def test_gradient_checkpointing_gives_the_same_gradients(variant):
    ids = random_ids(2, 16)
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(**variant).train()
        if checkpointing:
            # Renamed activation_checkpointing_enable in recent transformers releases.
            getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
        model(ids, labels=ids).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_importing_the_package_registers_the_auto_classes():
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

    config = AutoConfig.for_model("fiftynet", hidden_size=32, num_hidden_layers=1)
    assert isinstance(config, FiftyNetConfig)
    assert type(AutoModel.from_config(config)) is FiftyNetModel
    assert type(AutoModelForCausalLM.from_config(config)) is FiftyNetForCausalLM


def test_embeddings_are_reachable_and_resizable():
    model = tiny_model()
    assert model.get_input_embeddings() is model.model.embed_tokens
    assert model.get_output_embeddings() is model.lm_head
    model.resize_token_embeddings(300)
    assert model.config.vocab_size == 300 and model.lm_head.weight is model.model.embed_tokens.weight
    assert model(torch.tensor([[299]])).logits.shape == (1, 1, 300)


def test_base_model_outputs_hidden_states():
    torch.manual_seed(0)
    model = FiftyNetModel(tiny_config()).eval()
    out = model(random_ids(2, 5), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 5, 32)
    assert len(out.hidden_states) == 3


def test_short_training_run_lowers_the_loss():
    model = tiny_model().train()
    pattern = torch.tensor([[ord(c) for c in "the cat sat on the mat. "] * 4])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(pattern, labels=pattern).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "ids, message",
    [
        (torch.tensor([[1, 2, 259]]), r"input_ids must lie in \[0, 259\)"),
        (torch.tensor([[1, -1, 2]]), r"input_ids must lie in \[0, 259\)"),
        (torch.tensor([[1.0, 2.0]]), "integer tensor"),
        (torch.zeros(1, 0, dtype=torch.long), "empty"),
        (torch.tensor([1, 2, 3]), r"shape \(batch, seq_len\)"),
    ],
)
def test_bad_input_ids_raise_clear_errors(ids, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(ids)


def test_mismatched_attention_mask_raises():
    model = tiny_model()
    with pytest.raises(ValueError, match="attention_mask must be a 2D padding mask"):
        model(random_ids(2, 5), attention_mask=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="attention_mask must be a 2D padding mask"):
        model(random_ids(2, 5), attention_mask=torch.ones(2, 1, 5, 5))


def test_sequence_longer_than_learned_positions_raises():
    model = tiny_model(position_encoding="learned", max_position_embeddings=16)
    model(random_ids(1, 16))
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        model(random_ids(1, 17))


def test_spectral_mixer_without_positions_accepts_longer_sequences():
    model = tiny_model(max_position_embeddings=16)
    assert model(random_ids(1, 40)).logits.shape == (1, 40, 259)


def test_an_empty_dynamic_cache_gets_the_layers_of_the_model():
    """`DynamicCache()` made without a config, as users pass it to transformers' own models."""
    model = tiny_model(num_hidden_layers=2, mixer_types=["attention", "spectral_conv"], position_encoding="rope")
    ids = random_ids(1, 9)
    with torch.no_grad():
        cache = DynamicCache()
        model(ids[:, :6], cache=cache)
        assert_same_logits(model(ids[:, 6:], cache=cache).logits, model(ids).logits[:, 6:])
    assert [type(layer).__name__ for layer in cache.layers] == ["DynamicLayer", "FiftyNetMixerState"]


def test_foreign_cache_is_refused():
    from transformers import GPT2Config

    with pytest.raises(ValueError, match="Layer 0 of the cache is a DynamicLayer, but this model's layer 0 "
                                         r"\(spectral_conv\) keeps its state in a FiftyNetMixerState"):
        tiny_model()(random_ids(1, 3), cache=DynamicCache(config=GPT2Config(n_layer=2)))
    with pytest.raises(ValueError, match="The cache has 3 layers but this model has 2"):
        tiny_model()(random_ids(1, 3), cache=DynamicCache(config=tiny_config(num_hidden_layers=3)))
    with pytest.raises(ValueError, match="must be a transformers Cache"):
        tiny_model()(random_ids(1, 3), cache=[])


def test_unknown_mixer_type_is_refused():
    with pytest.raises(StrictDataclassClassValidationError, match="mixer_type='mamba' is not one of"):
        tiny_config(mixer_type="mamba")


@pytest.mark.parametrize("settings, message", [
    (dict(num_key_value_heads=3), "num_attention_heads=4 is not a multiple of num_key_value_heads=3"),
    (dict(num_key_value_heads=0), "num_key_value_heads must be a positive integer or None, got 0"),
    (dict(head_dim=-8), "head_dim must be a positive integer or None, got -8"),
    (dict(num_attention_heads=5), "hidden_size=32 is not divisible by num_attention_heads=5; set head_dim"),
    (dict(head_dim=7), "position_encoding='rope' needs an even attention head size, got 7"),
    (dict(rope_parameters=dict(rope_type="dynamic", rope_theta=1e4, factor=2.0)), "rope_type='dynamic'"),
    (dict(rope_parameters=dict(rope_type="default", rope_theta=1e4, partial_rotary_factor=0.5)),
     "rotates whole heads"),
])
def test_attention_settings_it_cannot_compute_are_refused_by_name(settings, message):
    with pytest.raises(StrictDataclassClassValidationError, match=re.escape(message)):
        tiny_config(mixer_type="attention", position_encoding="rope", **settings)


def test_folder_with_missing_weights_raises(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["model.layers.1.mixer.filter.residues"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="model.layers.1.mixer.filter.residues"):
        FiftyNetForCausalLM.from_pretrained(tmp_path)


def test_folder_with_truncated_weights_raises(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(Exception, match="(?i)incomplete|deserializ|truncat|invalid|metadata|header|buffer"):
        FiftyNetForCausalLM.from_pretrained(tmp_path)


def test_folder_without_weights_raises(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors"):
        FiftyNetForCausalLM.from_pretrained(tmp_path)


@pytest.mark.parametrize("variant", [v for v in ALL_VARIANTS if "attention" not in str(v)], ids=variant_id)
def test_a_decoding_state_holds_the_same_memory_whatever_the_prompt_length(variant):
    """A fixed-size state must not keep the prompt alive: a window sliced from the prefill's inputs, or the last row of
    a running sum over it, would hold the whole prompt-sized tensor it is a view of."""
    model = tiny_model(**variant)

    def held_bytes(length: int) -> int:
        with torch.no_grad():
            cache = cache_of(model(random_ids(2, length), use_cache=True))
        storages = {id(tensor.untyped_storage()): tensor.untyped_storage().nbytes()
                    for state in cache.layers for tensor in state.tensors.values()}
        return sum(storages.values())

    assert held_bytes(120) == held_bytes(20)  # 120: within the learned position table
