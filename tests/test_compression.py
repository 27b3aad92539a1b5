"""Compressed Linear layers (DCT, SVD, int8), polar quantization, and `fiftynet compress`."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import run_isolated
from safetensors.torch import save_file
from transformers import GPT2Config, GPT2LMHeadModel

from fiftynet.conversion.compress import compressed_copy, finetune, peak_memory_bytes
from fiftynet.training.cli import main as cli_main
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM
from modeling_fiftynet.compression import (
    Int8Linear,
    LowRankLinear,
    SpectralLinear,
    compress_layers,
    dct2,
    dct_basis,
    idct,
    polar_quantize,
)


def random_weight(out_features: int = 48, in_features: int = 40) -> torch.Tensor:
    return torch.randn(out_features, in_features, generator=torch.Generator().manual_seed(0))


def tiny_fiftynet() -> FiftyNetForCausalLM:
    torch.manual_seed(0)
    config = FiftyNetConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64, filter_state_size=8)
    return FiftyNetForCausalLM(config).eval()


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=300, n_positions=64, bos_token_id=257,
                        eos_token_id=258)
    return GPT2LMHeadModel(config).eval()


def test_dct_basis_is_orthonormal_and_idct_inverts_it():
    for size in (1, 7, 64):
        basis = dct_basis(size, torch.arange(size))
        torch.testing.assert_close(basis @ basis.T, torch.eye(size), atol=1e-5, rtol=0)
        values = torch.randn(3, size)
        torch.testing.assert_close(idct(values @ basis.T), values, atol=1e-5, rtol=0)
    # A block of columns is the same as those columns of the whole matrix.
    torch.testing.assert_close(dct_basis(64, torch.arange(16, 32)), dct_basis(64, torch.arange(64))[:, 16:32])


@pytest.mark.parametrize("block_size", [7, 128])
def test_spectral_linear_error_is_exactly_the_dropped_coefficients(block_size):
    weight, bias = random_weight(), torch.randn(48)
    inputs = torch.randn(2, 5, 40)
    errors = []
    for ratio in (0.75, 0.5, 0.25, 0.1):
        layer = SpectralLinear.from_dense(weight, bias, ratio, block_size)
        assert layer.compress_ratio() <= ratio
        coefficients = dct2(weight).flatten()
        dropped = coefficients.abs().sort(descending=True).values[layer.values.numel():]
        error = (layer.dense_weight() - weight).norm()
        # Orthonormal transform (Parseval): the error is the energy of the coefficients left out, no more.
        torch.testing.assert_close(error, dropped.norm(), rtol=1e-4, atol=1e-4)
        # Forward streams blocks yet computes with exactly that weight.
        torch.testing.assert_close(layer(inputs), F.linear(inputs, layer.dense_weight(), bias), atol=1e-4, rtol=1e-4)
        errors.append(error.item())
    assert errors == sorted(errors)


def test_low_rank_error_is_the_dropped_singular_values():
    weight = random_weight()
    singular_values = torch.linalg.svdvals(weight)
    for ratio in (0.5, 0.25, 0.1):
        layer = LowRankLinear.from_dense(weight, None, ratio)
        rank = layer.down.shape[0]
        assert layer.compress_ratio() <= ratio and rank == LowRankLinear.rank_for_ratio(40, 48, False, ratio)
        torch.testing.assert_close((layer.dense_weight() - weight).norm(), singular_values[rank:].norm(), rtol=1e-4,
                                   atol=1e-4)


def test_int8_error_is_at_most_half_a_step_per_weight():
    weight, bias = random_weight(), torch.randn(48)
    layer = Int8Linear.from_dense(weight, bias)
    assert layer.weight_int8.dtype == torch.int8
    step = layer.weight_scales[:, None]
    assert ((layer.dense_weight() - weight).abs() <= step / 2 + 1e-6).all()
    assert 0.25 < layer.compress_ratio() < 0.3  # int8 weights plus float32 scales and bias
    inputs = torch.randn(2, 5, 40)
    with torch.no_grad():  # torch's int8 kernel, which never dequantizes the matrix
        torch.testing.assert_close(layer(inputs), F.linear(inputs, layer.dense_weight(), bias), atol=1e-4, rtol=1e-4)


def test_spectral_forward_peak_memory_is_a_few_blocks_not_the_matrix():
    weight = random_weight(512, 512)
    dense_bytes = weight.numel() * 4
    inputs = torch.randn(4, 512)
    peaks = {}
    for block_size in (16, 64):
        layer = SpectralLinear.from_dense(weight, None, 0.5, block_size)
        with torch.no_grad():
            peaks[block_size] = peak_memory_bytes(lambda: layer(inputs))
        block_bytes = 512 * block_size * 4
        assert peaks[block_size] <= 8 * block_bytes, (block_size, peaks[block_size])
    assert peaks[16] < dense_bytes / 4 and peaks[16] < peaks[64]
    with torch.no_grad():  # the measurement sees a dense reconstruction
        assert peak_memory_bytes(lambda: inputs @ layer.dense_weight().T) >= dense_bytes


def test_polar_quantization_error_falls_with_bits_and_phase_error_is_half_a_step():
    values = torch.randn(64, 16, 2, generator=torch.Generator().manual_seed(0))
    errors = []
    for bits in (4, 6, 8):
        quantized = polar_quantize(values, bits, bits)
        restored = torch.view_as_complex(quantized.dequantize())
        original = torch.view_as_complex(values)
        errors.append(((restored - original).abs().norm() / original.abs().norm()).item())
        phase_error = torch.remainder(restored.angle() - original.angle() + math.pi, 2 * math.pi) - math.pi
        # (Numbers whose magnitude rounds to zero have no phase left to compare.)
        assert phase_error[restored.abs() > 0].abs().max() <= quantized.phase_step / 2 + 1e-5
        assert quantized.compression() == 64 / (2 * bits)
    assert errors[0] > errors[1] > errors[2]
    with pytest.raises(ValueError, match="at least one bit"):
        polar_quantize(values, 0, 8)


def test_finetuning_trains_the_compressed_tensors():
    ids = torch.randint(0, 256, (4000,), generator=torch.Generator().manual_seed(0))
    for method, ratio in (("dct", 0.3), ("svd", 0.3), ("int8", None)):
        model = compressed_copy(tiny_fiftynet(), method, ratio)
        layer = model.model.layers[0].mlp.up_proj
        before = {name: tensor.clone() for name, tensor in layer.state_dict().items()}
        finetune(model, ids, steps=2, batch_size=2, length=32, learning_rate=1e-2)
        changed = {name for name, tensor in layer.state_dict().items() if not torch.equal(tensor, before[name])}
        assert changed == {"dct": {"values"}, "svd": {"up", "down"}, "int8": set()}[method]


def test_compressed_folders_reload_bit_exact_through_remote_code(tmp_path):
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(1))
    expected = {"ids": ids}
    folders = {
        "dct": compressed_copy(tiny_fiftynet(), "dct", 0.25, ["mlp"], block_size=16),
        "svd": compressed_copy(tiny_fiftynet(), "svd", 0.5),
        "int8": compressed_copy(tiny_fiftynet(), "int8", None, ["mixer"]),
        "gpt2_dct": compressed_copy(tiny_gpt2(), "dct", 0.25),
        "gpt2_svd": compressed_copy(tiny_gpt2(), "svd", 0.25, ["mlp"]),
    }
    for name, model in folders.items():
        model.save_pretrained(tmp_path / name)
        with torch.no_grad():
            expected[name] = model(ids).logits
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["compression"]["layers"] and "auto_map" in config
        assert (tmp_path / name / "model.safetensors").is_file() and not list((tmp_path / name).glob("*.bin"))
    assert folders["dct"].lm_head.weight is folders["dct"].model.embed_tokens.weight  # the head stays dense, tied
    save_file(expected, tmp_path / "expected.safetensors")

    run_isolated(
        f"""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM

        expected = load_file("expected.safetensors")
        for name in {list(folders)!r}:
            model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=True).eval()
            assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
            compressed = [type(m).__name__ for m in model.modules() if hasattr(m, "compress_ratio")]
            assert compressed, name
            with torch.no_grad():
                assert torch.equal(model(expected["ids"]).logits, expected[name]), name
        """,
        cwd=tmp_path,
    )


def test_compress_command_writes_a_folder_that_reloads(tmp_path, capsys):
    model = tiny_fiftynet()
    model.save_pretrained(tmp_path / "dense")
    FiftyNetByteTokenizer().save_pretrained(tmp_path / "dense")
    cli_main(["compress", "--model", str(tmp_path / "dense"), "--method", "dct", "--ratio", "0.3", "--modules",
              "mlp", "--sequence-length", "32", "--out", str(tmp_path / "out")])
    assert "identical logits" in capsys.readouterr().out
    reloaded = FiftyNetForCausalLM.from_pretrained(tmp_path / "out")
    assert reloaded.config.compression["method"] == "dct" and len(reloaded.config.compression["layers"]) == 6
    assert isinstance(reloaded.model.layers[1].mlp.down_proj, SpectralLinear)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--method", "wavelet", "--ratio", "0.5"], "unknown compression method 'wavelet'"),
        (["--method", "dct", "--ratio", "1.5"], "must lie in (0, 1]"),
        (["--method", "svd", "--ratio", "0"], "must lie in (0, 1]"),
        (["--method", "dct"], "needs a ratio"),
        (["--method", "svd", "--ratio", "0.5", "--modules", "attention"], "no Linear layers inside modules named"),
    ],
)
def test_compress_command_rejects_bad_input_in_one_line(tmp_path, capsys, arguments, message):
    tiny_fiftynet().save_pretrained(tmp_path / "dense")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["compress", "--model", str(tmp_path / "dense"), *arguments, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    output = capsys.readouterr().err  # may also hold the progress bar of loading the model
    assert "Traceback" not in output and output.strip().splitlines()[-1].startswith("fiftynet compress: error: ")
    assert message in output.strip().splitlines()[-1], output


def test_a_model_without_linear_layers_to_compress_is_refused():
    with pytest.raises(ValueError, match="no Linear layers"):
        compress_layers(torch.nn.Sequential(torch.nn.Embedding(4, 4), torch.nn.LayerNorm(4)), "svd", 0.5)
