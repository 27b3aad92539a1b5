"""The spectral building blocks: transforms, complex gradients, FNet, complex embeddings, hybrid stacks, options."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from test_modeling import ALL_VARIANTS, random_ids, tiny_config, tiny_model
from torch.autograd import gradcheck
from torch.func import functional_call

from modeling_fiftynet import FiftyNetForCausalLM, FiftyNetForSequenceClassification, FiftyNetModel
from modeling_fiftynet.modeling_fiftynet import (
    FiftyNetAdaptiveSpectralMixer,
    FiftyNetAttention,
    FiftyNetFNetMixer,
    FiftyNetFourierFilter,
    FiftyNetFourierOperatorMixer,
    FiftyNetMixerGate,
    FiftyNetModalFilter,
    FiftyNetSpectralConvMixer,
)
from modeling_fiftynet.spectral_ops import fft_causal_conv, frequency_response_to_kernel, modrelu, rotate_pairs


def test_fft_round_trip_error_is_below_1e_6_in_float32():
    # A signal in [-1, 1]: rounding errors scale with the largest values, and a normal signal's reach about 4.5 here,
    # so an unseeded one (drawn after whichever tests ran before) sometimes passed 1e-6 (1.2e-6 for seed 0).
    signal = 2 * torch.rand(4, 16, 1000, generator=torch.Generator().manual_seed(0)) - 1
    round_trip = torch.fft.irfft(torch.fft.rfft(signal, n=2048), n=2048)[..., :1000]
    assert (round_trip - signal).abs().max() < 1e-6
    complex_round_trip = torch.fft.ifft2(torch.fft.fft2(signal, norm="ortho"), norm="ortho")
    assert (complex_round_trip.real - signal).abs().max() < 1e-6


def test_orthonormal_transforms_preserve_energy():
    signal = torch.randn(3, 64, 32, dtype=torch.float64)
    spectrum = torch.fft.fft2(signal, dim=(-2, -1), norm="ortho")  # FNet's transform
    torch.testing.assert_close(spectrum.abs().pow(2).sum(), signal.pow(2).sum())
    # The Fourier filters' real inverse transform: every frequency but 0 and n/2 stands for a conjugate pair.
    coefficients = torch.fft.rfft(signal, norm="ortho")
    weights = torch.full((coefficients.shape[-1],), 2.0, dtype=torch.float64)
    weights[0] = weights[-1] = 1.0
    torch.testing.assert_close((weights * coefficients.abs().pow(2)).sum(), signal.pow(2).sum())
    torch.testing.assert_close(frequency_response_to_kernel(coefficients, 32), signal)


def test_fourier_filter_is_causal_and_smooth_with_few_modes():
    config = tiny_config(fourier_kernel_size=64, fourier_modes=4)
    filter_bank = FiftyNetFourierFilter(config)
    filter_bank.reset_parameters()
    kernel = filter_bank.kernel()
    assert kernel.shape == (1, 32, 64)
    spectrum = torch.fft.rfft(kernel)
    assert spectrum[..., 4:].abs().max() < 1e-4, "only the lowest fourier_modes frequencies may be non-zero"
    # A filter of 64 lags: an impulse at position 0 reaches positions 0..63 and nothing after.
    impulse = torch.zeros(1, 32, 100)
    impulse[..., 0] = 1.0
    response = filter_bank(impulse)[:, 0]
    torch.testing.assert_close(response[..., :64], kernel[0][None], atol=1e-5, rtol=1e-5)
    assert response[..., 64:].abs().max() < 1e-5


def double_module(module: torch.nn.Module) -> torch.nn.Module:
    for submodule in module.modules():
        if hasattr(submodule, "reset_parameters"):
            submodule.reset_parameters()
    return module.double()


def gradcheck_module(module: torch.nn.Module, *inputs: torch.Tensor) -> None:
    """gradcheck of a module's output with respect to its inputs and to every parameter, in float64."""
    names = [name for name, _ in module.named_parameters()]
    params = [param.detach().clone().requires_grad_() for param in module.parameters()]

    def run(*tensors):
        return functional_call(module, dict(zip(names, tensors[len(inputs) :])), tensors[: len(inputs)])

    assert gradcheck(run, (*inputs, *params), eps=1e-6, atol=1e-5)


def double_input(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, requires_grad=True)


def test_gradcheck_fft_convolution():
    assert gradcheck(fft_causal_conv, (double_input(2, 3, 9), double_input(3, 9)))


def test_gradcheck_complex_ops():
    z = torch.randn(4, 6, dtype=torch.complex128, requires_grad=True)
    bias = torch.full((6,), -0.3, dtype=torch.float64, requires_grad=True)
    assert gradcheck(modrelu, (z, bias))
    assert gradcheck(rotate_pairs, (double_input(2, 5, 8), double_input(2, 5, 4)))
    assert gradcheck(frequency_response_to_kernel, (torch.randn(3, 5, dtype=torch.complex128, requires_grad=True), 12))


@pytest.mark.parametrize("filter_class", [FiftyNetModalFilter, FiftyNetFourierFilter])
def test_gradcheck_filters(filter_class):
    config = tiny_config(hidden_size=4, filter_state_size=3, fourier_kernel_size=8, fourier_modes=3)
    gradcheck_module(double_module(filter_class(config)), double_input(2, 4, 11))


@pytest.mark.parametrize(
    "mixer_class, overrides",
    [
        (FiftyNetSpectralConvMixer, {}),
        (FiftyNetFourierOperatorMixer, {}),
        (FiftyNetAdaptiveSpectralMixer, {}),
        (FiftyNetFNetMixer, {}),
        (FiftyNetMixerGate, dict(mixer_gate="phase")),
    ],
)
def test_gradcheck_mixers(mixer_class, overrides):
    config = tiny_config(hidden_size=8, filter_state_size=3, fourier_kernel_size=8, fourier_modes=3,
                         adaptive_filter_count=2, **overrides)
    module = double_module(mixer_class(config))
    for param in module.parameters():  # away from modReLU's kink at |z| + b = 0
        torch.nn.init.normal_(param, std=0.5)
    inputs = (double_input(2, 7, 8), double_input(2, 7, 8)) if mixer_class is FiftyNetMixerGate else (double_input(2, 7, 8),)
    gradcheck_module(module, *inputs)


class EmbeddingHelpers(torch.nn.Module):
    """Both helpers of a complex embedding as one forward, so gradcheck can substitute the embedding's weight."""

    def __init__(self, embedding: torch.nn.Module):
        super().__init__()
        self.embedding = embedding

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.embedding.semantic_similarity(first, second),
                            self.embedding.phase_relationship(first, second)])


def test_gradcheck_complex_embedding_helpers():
    helpers = EmbeddingHelpers(tiny_model(embedding_type="complex", hidden_size=8).get_input_embeddings()).double()
    weight = helpers.embedding.weight.detach().clone().requires_grad_()
    first, second = torch.tensor([3, 4]), torch.tensor([5, 6])
    assert gradcheck(lambda w: functional_call(helpers, {"embedding.weight": w}, (first, second)), (weight,))


def test_a_filter_learns_its_phase():
    """The residue's phase is a free parameter that gradient descent rotates (complex gradients flow through the
    real (.., 2) storage): fit a one-mode filter to a target whose residue is rotated by 2 radians."""
    torch.manual_seed(0)
    config = tiny_config(hidden_size=1, filter_state_size=1)
    student, teacher = FiftyNetModalFilter(config), FiftyNetModalFilter(config)
    for module in (student, teacher):
        module.reset_parameters()
    with torch.no_grad():
        teacher.load_state_dict(student.state_dict())
        teacher.residues.copy_(torch.view_as_real(student.complex_residues() * torch.polar(torch.tensor(1.0), torch.tensor(2.0))))
    inputs = torch.randn(8, 1, 64)
    target = teacher(inputs).detach()
    start_phase = student.complex_residues().angle().item()
    optimizer = torch.optim.Adam([student.residues], lr=0.05)
    losses = []
    for _ in range(50):
        loss = (student(inputs) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    phase_change = (student.complex_residues().angle().item() - start_phase + torch.pi) % (2 * torch.pi) - torch.pi
    assert phase_change > 1.0, f"the phase moved by {phase_change:.3f} rad only"
    assert losses[-1] < 0.1 * losses[0]


def test_hybrid_stack_builds_the_listed_mixers():
    model = tiny_model(**ALL_VARIANTS[-1])
    kinds = [type(layer.mixer) for layer in model.model.layers]
    assert kinds == [FiftyNetSpectralConvMixer, FiftyNetAttention, FiftyNetFourierOperatorMixer,
                     FiftyNetAdaptiveSpectralMixer]
    assert model.config.mixer_types == ["spectral_conv", "attention", "nfo", "fftnet"]


def test_attention_mixer_is_softmax_attention():
    model = tiny_model(mixer_type="attention", position_encoding="none")
    attention = model.model.layers[0].mixer
    hidden = torch.randn(2, 9, 32)
    heads = lambda proj: proj(hidden).view(2, 9, 4, 8).transpose(1, 2)  # noqa: E731
    query, key, value = heads(attention.q_proj), heads(attention.k_proj), heads(attention.v_proj)
    scores = (query @ key.transpose(-1, -2)) / 8**0.5
    scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
    expected = attention.out_proj((scores.softmax(-1) @ value).transpose(1, 2).reshape(2, 9, 32))
    torch.testing.assert_close(attention(hidden), expected, atol=1e-5, rtol=1e-5)


def test_causal_lm_refuses_fnet():
    with pytest.raises(ValueError, match="FiftyNetForCausalLM needs causal mixers.*'fnet'"):
        FiftyNetForCausalLM(tiny_config(mixer_types=["spectral_conv", "fnet"]))


def test_fnet_encoder_mixes_in_both_directions_and_has_no_cache():
    torch.manual_seed(0)
    model = FiftyNetModel(tiny_config(mixer_type="fnet")).eval()
    ids = random_ids(1, 20)
    perturbed = ids.clone()
    perturbed[:, -1] = (ids[:, -1] + 1) % 256
    with torch.no_grad():
        change = (model(ids).last_hidden_state - model(perturbed).last_hidden_state)[:, 0].abs().max()
    assert change > 1e-4, "FNet is bidirectional: the last token reaches the first"
    with pytest.raises(ValueError, match="no incremental cache"):
        model(ids, use_cache=True)
    assert list(model.parameters()) and not any(
        name.startswith("layers.0.mixer.") for name, _ in model.named_parameters()
    ), "FNet's mixing has no parameters"


@pytest.mark.parametrize("mixer_type", ["fnet", "spectral_conv"])
def test_sequence_classification_trains_and_pools_the_last_real_token(mixer_type):
    torch.manual_seed(0)
    model = FiftyNetForSequenceClassification(tiny_config(mixer_type=mixer_type, num_labels=3))
    ids, labels = random_ids(4, 12), torch.tensor([0, 1, 2, 1])
    out = model(ids, labels=labels)
    assert out.logits.shape == (4, 3) and out.loss.requires_grad
    out.loss.backward()
    assert model.score.weight.grad.abs().sum() > 0
    # Right padding: the head reads the last real token, so with a causal mixer the pads change nothing.
    if mixer_type == "spectral_conv":
        model.eval()
        padded = torch.cat([ids, torch.full((4, 5), 256)], dim=1)
        mask = torch.cat([torch.ones(4, 12), torch.zeros(4, 5)], dim=1).long()
        with torch.no_grad():
            torch.testing.assert_close(model(padded, attention_mask=mask).logits, model(ids).logits)


def test_complex_embedding_helpers_measure_rotation_and_similarity():
    model = tiny_model(embedding_type="complex", position_encoding="complex_rope")
    embedding = model.get_input_embeddings()
    with torch.no_grad():
        rotated = rotate_pairs(embedding.weight[65], torch.full((16,), 0.7))
        embedding.weight[66] = rotated
    assert embedding.complex_weight().shape == (259, 16) and embedding.complex_weight().is_complex()
    torch.testing.assert_close(embedding.phase_relationship(torch.tensor(65), torch.tensor(66)), torch.tensor(0.7))
    torch.testing.assert_close(embedding.semantic_similarity(torch.tensor(65), torch.tensor(66)), torch.tensor(1.0))
    similarity = embedding.semantic_similarity(torch.tensor([65]), torch.arange(259))
    assert similarity.shape == (259,) and (similarity <= 1 + 1e-6).all() and similarity.min() < 0.9
    assert model.lm_head.weight is embedding.weight


def test_complex_rope_rotates_embeddings_by_position_without_changing_norms():
    model = tiny_model(position_encoding="complex_rope")
    embeddings = torch.randn(1, 5, 32)
    rotated = model.model._add_positions(embeddings, torch.arange(5)[None])
    torch.testing.assert_close(rotated.norm(dim=-1), embeddings.norm(dim=-1))
    torch.testing.assert_close(rotated[:, 0], embeddings[:, 0])  # position 0: no rotation
    assert (rotated[:, 1:] - embeddings[:, 1:]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(position_encoding="rope"), "no 'attention' layer"),
        (dict(mixer_types=["nfo"]), "lists 1 mixers for num_hidden_layers=2"),
        (dict(mixer_types=["nfo", "mamba"]), r"\['mamba'\], not in"),
        (dict(mixer_type="fftnet", hidden_size=33, intermediate_size=64), "hidden_size must be even"),
        (dict(mixer_type="attention", num_attention_heads=5), "not divisible by num_attention_heads=5"),
        (dict(fourier_kernel_size=8, fourier_modes=6), "fourier_modes=6 exceeds the 5 frequencies"),
        (dict(mixer_gate="sigmoid"), "mixer_gate='sigmoid' is not one of"),
        (dict(embedding_type="quaternion"), "embedding_type='quaternion' is not one of"),
        (dict(vocab_size=200, eos_token_id=230), r"eos_token_id=230 is outside the vocabulary \[0, 200\)"),
    ],
)
def test_bad_mixer_options_raise_clear_errors(overrides, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        tiny_config(**overrides)


def test_mixer_types_round_trip_through_config_json(tmp_path):
    config = tiny_config(**ALL_VARIANTS[-1])
    config.save_pretrained(tmp_path)
    assert type(config).from_pretrained(tmp_path).mixer_types == config.mixer_types
