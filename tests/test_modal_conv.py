"""The chunked modal convolution `spectral_ops.modal_causal_conv`: the FFT convolution and the direct sum it replaces,
its final state, gradients and causality, and its Triton kernels against the torch reference (through the Triton
interpreter on CPU, compiled for an H100 without one, and at full size where a GPU is present)."""

import importlib.util
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.autograd import gradcheck

from modeling_fiftynet.spectral_ops import MODAL_CHUNK_SIZE, fft_causal_conv, modal_causal_conv, modal_fft_conv


HAS_TRITON = importlib.util.find_spec("triton") is not None


def random_filter(channels: int, modes: int, dtype: torch.dtype = torch.float32, seed: int = 0):
    """`(log_poles, residues)` spread as `FiftyNetModalFilter` initialises them: decay rates log-uniform in
    [1e-3, 1] (memories of 1 to 1000 tokens), frequencies in [0, pi)."""
    generator = torch.Generator().manual_seed(seed)
    log_decay = torch.empty(channels, modes, dtype=dtype).uniform_(math.log(1e-3), 0.0, generator=generator)
    frequency = math.pi * torch.rand(channels, modes, dtype=dtype, generator=generator)
    residues = torch.complex(*torch.randn(2, channels, modes, dtype=dtype, generator=generator)) / math.sqrt(modes)
    return torch.complex(-log_decay.exp(), frequency), residues


def random_problem(batch: int, channels: int, modes: int, seq_len: int, dtype: torch.dtype, seed: int = 0):
    """`(inputs, log_poles, residues, initial_state)` in `dtype` (complex of the same precision)."""
    generator = torch.Generator().manual_seed(seed + 1)
    inputs = torch.randn(batch, channels, seq_len, dtype=dtype, generator=generator)
    initial_state = torch.randn(batch, channels, modes, dtype=dtype.to_complex(), generator=generator)
    return inputs, *random_filter(channels, modes, dtype, seed), initial_state


def fft_reference(inputs, log_poles, residues, initial_state=None):
    """What `FiftyNetModalFilter.forward` computed before the chunked scan: the kernel and the state through the
    `(channels, modes, seq_len)` powers, and an FFT convolution."""
    powers = torch.exp(log_poles[..., None] * torch.arange(inputs.shape[-1], dtype=inputs.dtype))
    outputs = fft_causal_conv(inputs, torch.einsum("dn,dnl->dl", residues, powers).real)
    final_state = torch.einsum("bdl,dnl->bdn", inputs.to(powers.dtype), powers.flip(-1))
    if initial_state is not None:
        poles = log_poles.exp()
        outputs = outputs + torch.einsum("dn,bdn,dnl->bdl", residues * poles, initial_state, powers).real
        final_state = final_state + initial_state * powers[..., -1] * poles
    return outputs, final_state


def direct_reference(inputs, log_poles, residues, initial_state=None):
    """The definition as an O(L^2) sum: `y[t] = sum_{s <= t} h[t - s] u[s] + Re(sum_n C_n lambda_n^(t+1) s_n)`."""
    positions = torch.arange(inputs.shape[-1])
    lag = positions[:, None] - positions  # [t, s] = t - s
    filters = torch.einsum("dn,dnts->dts", residues, torch.exp(log_poles[..., None, None] * lag.clamp(min=0))).real
    outputs = torch.einsum("dts,bds->bdt", filters * (lag >= 0), inputs)
    if initial_state is not None:
        powers = torch.exp(log_poles[..., None] * (positions + 1))
        outputs = outputs + torch.einsum("dn,bdn,dnt->bdt", residues, initial_state, powers).real
    return outputs


def recurrence_reference(inputs, log_poles, residues, initial_state):
    """Token by token: `s <- lambda * s + u_t`, `y_t = Re(sum_n C_n s_n)`."""
    poles, state, outputs = log_poles.exp(), initial_state, []
    for token in inputs.unbind(-1):
        state = poles * state + token[..., None]
        outputs.append((residues * state).sum(-1).real)
    return torch.stack(outputs, -1), state


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, tolerance: float, name: str = "") -> None:
    """Every element within `tolerance * max|expected|`."""
    wide = torch.complex128 if expected.is_complex() else torch.float64
    actual, expected = actual.detach().cpu().to(wide), expected.detach().cpu().to(wide)
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale, error = expected.abs().max().item(), (actual - expected).abs().max().item()
    assert error <= tolerance * scale, f"{name}: error {error:.2e} > {tolerance:g} * scale {scale:.2e}"


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-11)])
@pytest.mark.parametrize("seq_len", [1, 37, 64, 128, 150])
@pytest.mark.parametrize("chunk_size", [MODAL_CHUNK_SIZE, 7])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunked_scan_equals_fft_convolution_and_direct_sum(dtype, tolerance, seq_len, chunk_size, with_state):
    inputs, log_poles, residues, initial_state = random_problem(2, 3, 4, seq_len, dtype)
    initial_state = initial_state if with_state else None
    outputs, final_state = modal_causal_conv(inputs, log_poles, residues, initial_state, chunk_size=chunk_size)
    fft_outputs, fft_final_state = fft_reference(inputs, log_poles, residues, initial_state)
    assert (outputs.dtype, final_state.dtype) == (dtype, dtype.to_complex())
    assert_close_to_scale(outputs, fft_outputs, tolerance, "outputs vs FFT")
    assert_close_to_scale(final_state, fft_final_state, tolerance, "final state vs FFT")
    assert_close_to_scale(outputs, direct_reference(inputs, log_poles, residues, initial_state), tolerance, "direct")


@pytest.mark.parametrize("dtype, tolerance", [(torch.float32, 1e-5), (torch.float64, 1e-11)])
@pytest.mark.parametrize("seq_len", [1, 37, 150])
@pytest.mark.parametrize("with_state", [False, True])
def test_loop_free_path_for_symbolic_lengths_equals_the_direct_sum_and_the_recurrence(dtype, tolerance, seq_len,
                                                                                     with_state):
    """`modal_fft_conv`, which `modal_causal_conv` takes when torch.export traces a dynamic length."""
    inputs, log_poles, residues, initial_state = random_problem(2, 3, 4, seq_len, dtype)
    start = initial_state if with_state else torch.zeros_like(initial_state)
    outputs, final_state = modal_fft_conv(inputs, log_poles, residues, initial_state if with_state else None)
    expected_outputs, expected_state = recurrence_reference(inputs, log_poles, residues, start)
    assert (outputs.dtype, final_state.dtype) == (dtype, dtype.to_complex())
    assert_close_to_scale(outputs, direct_reference(inputs, log_poles, residues, initial_state if with_state else None),
                          tolerance, "outputs vs direct sum")
    assert_close_to_scale(outputs, expected_outputs, tolerance, "outputs vs recurrence")
    assert_close_to_scale(final_state, expected_state, tolerance, "final state vs recurrence")


def test_loop_free_path_gradcheck():
    leaves = [tensor.requires_grad_() for tensor in random_problem(2, 2, 3, 9, torch.float64)]
    assert gradcheck(modal_fft_conv, leaves)


def test_final_state_is_the_token_by_token_recurrence():
    inputs, log_poles, residues, initial_state = random_problem(2, 3, 5, 150, torch.float64)
    outputs, final_state = modal_causal_conv(inputs, log_poles, residues, initial_state)
    expected_outputs, expected_state = recurrence_reference(inputs, log_poles, residues, initial_state)
    assert_close_to_scale(outputs, expected_outputs, 1e-12, "outputs")
    assert_close_to_scale(final_state, expected_state, 1e-12, "final state")


@pytest.mark.parametrize("split", [1, 64, 100, 149])
def test_two_calls_with_the_state_carried_equal_one_call(split):
    inputs, log_poles, residues, initial_state = random_problem(2, 3, 4, 150, torch.float32)
    outputs, final_state = modal_causal_conv(inputs, log_poles, residues, initial_state)
    first, state = modal_causal_conv(inputs[..., :split], log_poles, residues, initial_state)
    second, state = modal_causal_conv(inputs[..., split:], log_poles, residues, state)
    assert_close_to_scale(torch.cat([first, second], -1), outputs, 1e-5, "outputs")
    assert_close_to_scale(state, final_state, 1e-5, "final state")


@pytest.mark.parametrize("seq_len, chunk_size", [(11, 4), (5, MODAL_CHUNK_SIZE)])
def test_gradcheck(seq_len, chunk_size):
    leaves = [tensor.requires_grad_() for tensor in random_problem(2, 2, 3, seq_len, torch.float64)]
    assert gradcheck(lambda *args: modal_causal_conv(*args, chunk_size=chunk_size), leaves)


@pytest.mark.parametrize("cut", [0, 30, 63, 64, 130])
def test_future_inputs_do_not_change_past_outputs(cut):
    inputs, log_poles, residues, initial_state = random_problem(2, 3, 4, 200, torch.float32)
    perturbed = inputs.clone()
    perturbed[..., cut + 1 :] = torch.randn(2, 3, 200 - cut - 1)
    outputs, _ = modal_causal_conv(inputs, log_poles, residues, initial_state)
    perturbed_outputs, _ = modal_causal_conv(perturbed, log_poles, residues, initial_state)
    assert (outputs[..., : cut + 1] - perturbed_outputs[..., : cut + 1]).abs().max() < 1e-6
    assert (outputs[..., cut + 1 :] - perturbed_outputs[..., cut + 1 :]).abs().max() > 1e-3  # the test can fail


def test_runs_in_float32_under_bf16_autocast():
    inputs, log_poles, residues, initial_state = random_problem(1, 2, 4, 90, torch.float32)
    inputs = inputs.bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs, final_state = modal_causal_conv(inputs, log_poles, residues, initial_state)
    assert (outputs.dtype, final_state.dtype) == (torch.float32, torch.complex64)
    expected_outputs, expected_state = modal_causal_conv(inputs.float(), log_poles, residues, initial_state)
    torch.testing.assert_close(outputs, expected_outputs)
    torch.testing.assert_close(final_state, expected_state)


def test_empty_sequence_keeps_the_state():
    _, log_poles, residues, initial_state = random_problem(2, 3, 4, 1, torch.float32)
    outputs, final_state = modal_causal_conv(torch.zeros(2, 3, 0), log_poles, residues, initial_state)
    assert outputs.shape == (2, 3, 0) and torch.equal(final_state, initial_state)


def run_python(script: str, **env: str) -> None:
    """Runs `script` in a fresh interpreter that imports this project and its tests; fails showing its output."""
    tests = Path(__file__).resolve().parent
    python_path = os.pathsep.join(filter(None, [str(tests), str(tests.parent), os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env={**os.environ, "PYTHONPATH": python_path, **env},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_works_without_triton():
    run_python(
        """
        import sys

        import pytest
        import torch

        sys.modules["triton"] = None  # `import triton` now raises ImportError
        from modeling_fiftynet import spectral_ops
        from test_modal_conv import random_problem

        assert spectral_ops.modal_chunk_scan_triton is None
        problem = random_problem(2, 3, 4, 100, torch.float32)
        outputs, final_state = spectral_ops.modal_causal_conv(*problem)
        assert outputs.shape == (2, 3, 100) and final_state.shape == (2, 3, 4)
        with pytest.raises(ImportError, match="needs Triton"):
            spectral_ops.modal_causal_conv(*problem, backend="triton")
        """
    )


def assert_backends_agree(
    batch: int,
    channels: int,
    modes: int,
    seq_len: int,
    chunk_size: int,
    dtype: torch.dtype,
    device: str,
    tolerance: float,
) -> None:
    """The Triton kernels and the torch reference give the same outputs, final state and gradients with respect to
    the inputs, log_poles, residues and initial_state (within `tolerance` of each one's scale; gradients with
    respect to half-precision inputs are rounded to that precision, so within 1e-2)."""
    inputs, log_poles, residues, initial_state = random_problem(batch, channels, modes, seq_len, torch.float32)
    leaves = [tensor.to(device).requires_grad_() for tensor in (inputs.to(dtype), log_poles, residues, initial_state)]
    generator = torch.Generator().manual_seed(7)
    output_weights = torch.randn(batch, channels, seq_len, generator=generator).to(device)
    state_weights = torch.randn(batch, channels, modes, dtype=torch.complex64, generator=generator).to(device)
    results = {}
    for backend in ("torch", "triton"):
        outputs, final_state = modal_causal_conv(*leaves, chunk_size=chunk_size, backend=backend)
        loss = (outputs * output_weights).sum() + (final_state * state_weights.conj()).real.sum()
        results[backend] = (outputs, final_state, *torch.autograd.grad(loss, leaves))
    names = ("outputs", "final state", "grad inputs", "grad log_poles", "grad residues", "grad initial_state")
    for name, expected, actual in zip(names, results["torch"], results["triton"]):
        low_precision = name == "grad inputs" and dtype != torch.float32
        assert_close_to_scale(actual, expected, 1e-2 if low_precision else tolerance, f"{dtype} {name}")


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_kernels_equal_the_reference_in_the_interpreter():
    """On CPU through the Triton interpreter, which must be on before triton is imported: a fresh process."""
    run_python(
        """
        import torch
        from test_modal_conv import assert_backends_agree

        # Two tiles of 16 chunks, a short last chunk, 5 modes padded to 16.
        assert_backends_agree(2, 3, 5, 300, 16, torch.float32, "cpu", tolerance=1e-5)
        # The default chunk size over two tiles, bfloat16 inputs.
        assert_backends_agree(1, 2, 16, 1100, 64, torch.bfloat16, "cpu", tolerance=1e-5)
        # A single chunk shorter than the chunk size, float16 inputs.
        assert_backends_agree(2, 1, 3, 5, 32, torch.float16, "cpu", tolerance=1e-5)
        """,
        TRITON_INTERPRET="1",
    )


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed")
def test_triton_kernels_compile_for_h100_within_shared_memory():
    """Compiled ahead of time for sm_90 (no GPU needed) at the default sizes: the kernels lower to a cubin and ask
    for no more than the 99 KB of shared memory `modal_conv_triton.supports` promises."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from modeling_fiftynet import modal_conv_triton as kernels

    constants = dict(CHUNK=MODAL_CHUNK_SIZE, ROWS=kernels.ROWS, MODES=16, PRECISION="tf32x3")
    for kernel, num_warps in [
        (kernels._modal_scan_fwd_kernel, kernels.FORWARD_WARPS),
        (kernels._modal_scan_bwd_kernel, kernels.BACKWARD_WARPS),
    ]:
        signature = {name: "*fp32" if name.endswith("_ptr") else "i32" for name in kernel.arg_names}
        signature.update(dict.fromkeys(constants, "constexpr"))
        constexprs = {(kernel.arg_names.index(name),): value for name, value in constants.items()}
        source = ASTSource(kernel, signature, constexprs=constexprs)
        compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})
        assert compiled.asm["cubin"] and compiled.metadata.shared <= 99 * 1024


@pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs triton and a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_kernels_equal_the_reference_on_gpu(dtype):
    assert_backends_agree(2, 256, 16, 4096, MODAL_CHUNK_SIZE, dtype, "cuda", tolerance=1e-4)
    # Without a backend, CUDA inputs take the kernels.
    inputs, log_poles, residues, initial_state = (t.cuda() for t in random_problem(2, 8, 16, 300, torch.float32))
    auto = modal_causal_conv(inputs.to(dtype), log_poles, residues, initial_state)
    explicit = modal_causal_conv(inputs.to(dtype), log_poles, residues, initial_state, backend="triton")
    assert all(torch.equal(a, b) for a, b in zip(auto, explicit))
