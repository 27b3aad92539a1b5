"""Spectral operations behind FiftyNet's mixers.

The reference implementations here are plain `torch.fft` and run on every device. Fused kernels, when they exist,
sit beside them with the same signature and are checked against them.

Every FFT runs in float32 or wider whatever the autocast dtype: cuFFT has no bfloat16 and float16 only for
power-of-two sizes, and half precision loses too much of long filters. Float64 inputs stay float64, so
`torch.autograd.gradcheck` can check these operations.
"""

import torch


try:  # Triton is optional: without it (or off CUDA) `modal_causal_conv` runs its torch reference.
    from .modal_conv_triton import modal_chunk_scan as modal_chunk_scan_triton
    from .modal_conv_triton import supports as triton_supports
except ImportError:
    modal_chunk_scan_triton = triton_supports = None


MODAL_CHUNK_SIZE = 64
"""Tokens per chunk of `modal_causal_conv`. Per token, the chunked scan costs `chunk_size` multiply-adds for the
convolution inside the chunk and about `4 * modes` for the carried state, so 64 balances the two at the default 16
modes; it is also a power of two of at least 16, which the Triton kernel's matrix products need."""


# The complex dtype of each real one (`torch.dtype.to_complex` is not traceable by torch.compile).
COMPLEX_DTYPES = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def fft_size(seq_len: int) -> int:
    """Smallest power of two >= 2 * seq_len: padding to 2L makes the circular FFT product a linear convolution."""
    return 1 << (2 * seq_len - 1).bit_length()


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32, or unchanged when it is already float32, float64 or complex."""
    if tensor.is_complex():
        return tensor
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def complex_exp(z: torch.Tensor) -> torch.Tensor:
    """`exp(z)` of a complex tensor as `exp(Re z) * (cos(Im z) + i sin(Im z))`: the same values, and on CPU about
    five times faster than `torch.exp`, whose complex kernel is not vectorised (measured on `(768, 16, 65)` powers)."""
    modulus = torch.exp(z.real)
    return torch.complex(modulus * torch.cos(z.imag), modulus * torch.sin(z.imag))


def fft_causal_conv(inputs: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal convolution `y[..., t] = sum_{s <= t} kernel[..., t - s] * inputs[..., s]` through FFTs.

    Args:
        inputs: `(..., channels, seq_len)`, any real floating dtype.
        kernel: `(..., channels, kernel_len)`, the filter at lags `0 .. kernel_len - 1`; broadcast against `inputs`
            (e.g. a bank `(filters, channels, kernel_len)` with inputs `(batch, 1, channels, seq_len)`). Lags beyond
            `seq_len` cannot reach any output and are ignored; a shorter kernel is zero at the missing lags.

    Returns:
        `(..., channels, seq_len)` in float32 (float64 for float64 inputs).
    """
    seq_len, kernel_len = inputs.shape[-1], kernel.shape[-1]
    if isinstance(seq_len, torch.SymInt) or isinstance(kernel_len, torch.SymInt):
        # A symbolic length (torch.export with a dynamic dimension) cannot be compared with the kernel's or rounded
        # to a power of two: any transform of at least seq_len + kernel_len is linear for the whole kernel (an even
        # one keeps the half spectrum's length free of rounding).
        n = 2 * (seq_len + kernel_len)
    else:
        kernel, n = kernel[..., :seq_len], fft_size(seq_len)
    with torch.autocast(device_type=inputs.device.type, enabled=False):
        inputs_f = torch.fft.rfft(at_least_float32(inputs), n=n)
        kernel_f = torch.fft.rfft(at_least_float32(kernel), n=n)
        return torch.fft.irfft(inputs_f * kernel_f, n=n)[..., :seq_len]


def frequency_response_to_kernel(coefficients: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Causal filter of `kernel_size` lags from its lowest complex frequency coefficients.

    Args:
        coefficients: `(..., modes)` complex, the coefficients of the `modes` lowest frequencies of a length
            `kernel_size` real signal (the others are zero).
        kernel_size: number of lags of the filter.

    Returns:
        `(..., kernel_size)` real: the inverse real FFT, read as the filter at lags `0 .. kernel_size - 1`. Being
        defined at non-negative lags only, it is causal whatever the coefficients.
    """
    with torch.autocast(device_type=coefficients.device.type, enabled=False):
        return torch.fft.irfft(coefficients, n=kernel_size, norm="ortho")


def modrelu(z: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """modReLU (Arjovsky et al., 2016): `z * relu(|z| + bias) / |z|`, a ReLU on the magnitude that keeps the phase.

    Args:
        z: complex tensor `(..., features)`.
        bias: real `(features,)`; negative values zero the small magnitudes.
    """
    magnitude = z.abs()
    return z * (torch.relu(magnitude + bias) / magnitude.clamp_min(eps))


def rotary_frequencies(pairs: int, base: float, device: torch.device | None = None) -> torch.Tensor:
    """`(pairs,)` float32 `base ** (-k / pairs)` radians per position: one frequency per pair of channels, spaced
    evenly on a log scale from 1 to `1 / base` (RoPE's, Su et al. 2021)."""
    return base ** (-torch.arange(pairs, device=device, dtype=torch.float32) / pairs)


def rotary_angles(position_ids: torch.Tensor, frequencies: torch.Tensor) -> torch.Tensor:
    """`(..., pairs)` float32 angles `position * frequency` of `(...)` positions and `(pairs,)` frequencies."""
    return position_ids[..., None].float() * frequencies.to(position_ids.device)


def rotate_pairs(hidden_states: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Reads consecutive channel pairs `(x[2k], x[2k+1])` as complex numbers and multiplies them by `exp(i angle)`.

    Args:
        hidden_states: `(..., 2 * pairs)` real.
        angles: `(..., pairs)`, broadcast against `hidden_states`.

    Returns:
        `(..., 2 * pairs)` in the dtype of `hidden_states`; norms are unchanged.
    """
    with torch.autocast(device_type=hidden_states.device.type, enabled=False):
        pairs = torch.view_as_complex(at_least_float32(hidden_states).unflatten(-1, (-1, 2)).contiguous())
        angles = at_least_float32(angles)
        rotated = pairs * torch.polar(torch.ones_like(angles), angles)
        return torch.view_as_real(rotated).flatten(-2).to(hidden_states.dtype)


def modal_causal_conv(
    inputs: torch.Tensor,
    log_poles: torch.Tensor,
    residues: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    *,
    chunk_size: int = MODAL_CHUNK_SIZE,
    backend: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal convolution with the modal filter `h[d, t] = Re(sum_n C[d, n] * lambda[d, n] ** t)`, `t >= 0`.

    A sum of geometric sequences, the filter is the diagonal linear recurrence `s_t = lambda * s_{t-1} + u_t`,
    `y_t = Re(sum_n C_n s_t,n)`, computed in chunks of `chunk_size` tokens (as Mamba-2's SSD): a small causal
    Toeplitz product inside each chunk, the chunk's end state through a `(chunk_size, modes)` matrix of powers, a
    scan of the states across chunks (`lambda ** chunk_size` per chunk) and the carried state's share of each chunk's
    outputs through a `(modes, chunk_size)` matrix. Work `O(seq_len * (chunk_size + modes))` per channel, memory
    `O(seq_len)`: no `(channels, modes, seq_len)` tensor, and the final state comes with the outputs.

    Args:
        inputs: `(batch, channels, seq_len)`, any real floating dtype.
        log_poles: `(channels, modes)` complex `log(lambda)`, with negative real parts (`|lambda| < 1`).
        residues: `(channels, modes)` complex `C`.
        initial_state: `(batch, channels, modes)` complex state after earlier tokens, or None for none; output `t`
            then also gets `Re(sum_n C_n lambda_n ** (t + 1) s_n)`.
        chunk_size: tokens per chunk; any positive size gives the same result (the Triton kernels take 16, 32 or 64,
            see `modal_conv_triton.supports`).
        backend: `"triton"` (the kernels of `modal_conv_triton`), `"torch"` (the reference below), or None for the
            kernels on CUDA whenever Triton is installed and takes the dtype and chunk size, else the reference. A
            symbolic `seq_len` (`torch.export` with a dynamic dimension) takes [`modal_fft_conv`] instead.

    Returns:
        `outputs` `(batch, channels, seq_len)` and `final_state` `(batch, channels, modes)`, the state after the last
        token: float32 and complex64 (float64 and complex128 for float64 inputs), whatever the autocast dtype.
    """
    batch_size, channels, seq_len = inputs.shape
    if isinstance(seq_len, torch.SymInt):
        # A traced graph with a dynamic length cannot loop over a symbolic number of chunks.
        return modal_fft_conv(inputs, log_poles, residues, initial_state)
    if backend is None:
        use_triton = (
            triton_supports is not None and inputs.is_cuda and triton_supports(inputs, chunk_size, log_poles.shape[-1])
        )
        backend = "triton" if use_triton else "torch"
    if backend == "triton" and modal_chunk_scan_triton is None:
        raise ImportError("backend='triton' needs Triton >= 3.2 (pip install triton)")
    if backend not in ("triton", "torch"):
        raise ValueError(f"backend must be 'triton', 'torch' or None, not {backend!r}")
    if backend == "torch":
        # A sequence shorter than a chunk is one chunk of its own length (a few tokens of speculative decoding should
        # not pay for 64 x 64 Toeplitz matrices); the result is the same for any chunk size.
        chunk_size = max(1, min(chunk_size, seq_len))
    with torch.autocast(device_type=inputs.device.type, enabled=False):
        real_dtype = torch.promote_types(inputs.dtype, torch.float32)
        complex_dtype = COMPLEX_DTYPES[real_dtype]
        log_poles, residues = log_poles.to(complex_dtype), residues.to(complex_dtype)
        if initial_state is None:
            initial_state = log_poles.new_zeros(batch_size, *log_poles.shape)
        initial_state = initial_state.to(complex_dtype)
        if seq_len == 0:
            return inputs.new_zeros(inputs.shape, dtype=real_dtype), initial_state

        lags = torch.arange(chunk_size + 1, device=inputs.device, dtype=real_dtype)
        powers = complex_exp(log_poles[..., None] * lags)  # (channels, modes, chunk_size + 1): lambda ** 0 .. T
        operators = modal_chunk_operators(powers, residues)
        if backend == "triton":
            outputs, last_state = modal_chunk_scan_triton(inputs, *operators, initial_state)
        else:
            outputs, last_state = modal_chunk_scan_torch(inputs.to(real_dtype), *operators, initial_state)

        # The last chunk may be short (`remainder` tokens): its end state is the final state.
        remainder = seq_len - (seq_len - 1) // chunk_size * chunk_size
        last_inputs = inputs[..., seq_len - remainder :].to(complex_dtype)
        final_state = powers[..., remainder] * last_state + torch.einsum(
            "bdj,dnj->bdn", last_inputs, powers[..., :remainder].flip(-1)
        )
        return outputs, final_state


def modal_fft_conv(
    inputs: torch.Tensor,
    log_poles: torch.Tensor,
    residues: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """[`modal_causal_conv`] as one FFT convolution with the filter written out, for symbolic lengths.

    Same arguments and results. The filter `h[t]`, the final state and the initial state's share of the outputs are
    sums over the `modes` (a fixed number) of `(channels, seq_len)` terms `lambda_n ** t`, and the convolution is
    [`fft_causal_conv`]: no step depends on the value of `seq_len`, so a graph traced with a symbolic sequence length
    (`torch.export` with a dynamic dimension) holds it, where the chunked scan would loop over a symbolic number of
    chunks. Work `O(modes * channels * seq_len)` plus the FFTs; memory `O(batch * channels * seq_len)`.
    """
    seq_len = inputs.shape[-1]
    with torch.autocast(device_type=inputs.device.type, enabled=False):
        real_dtype = torch.promote_types(inputs.dtype, torch.float32)
        complex_dtype = COMPLEX_DTYPES[real_dtype]
        log_poles, residues = log_poles.to(complex_dtype), residues.to(complex_dtype)
        inputs = inputs.to(real_dtype)
        complex_inputs = inputs.to(complex_dtype)
        # The phases frequency * t reach thousands of radians; in float32 their rounding would dominate the error,
        # so the powers are computed in float64 (where the device has it) and rounded once.
        wide = torch.float64 if inputs.device.type != "mps" else real_dtype
        lags = torch.arange(seq_len, device=inputs.device, dtype=wide)
        wide_log_poles = log_poles.to(COMPLEX_DTYPES[wide])
        kernel = 0
        final_state = []
        for mode in range(log_poles.shape[-1]):
            powers = torch.exp(wide_log_poles[:, mode, None] * lags).to(complex_dtype)  # (channels, seq_len): lambda**t
            kernel = kernel + (residues[:, mode, None] * powers).real
            # The state after the last token: sum_t lambda ** (seq_len - 1 - t) * u_t.
            final_state.append(torch.einsum("bdl,dl->bd", complex_inputs, powers.flip(-1)))
        outputs = fft_causal_conv(inputs, kernel)
        final_state = torch.stack(final_state, dim=-1)
        if initial_state is not None:
            initial_state = initial_state.to(complex_dtype)
            for mode in range(log_poles.shape[-1]):
                # Output t also gets Re(C_n lambda_n ** (t + 1) s_n).
                powers = torch.exp(wide_log_poles[:, mode, None] * (lags + 1)).to(complex_dtype)
                outputs = outputs + ((residues[:, mode] * initial_state[..., mode])[..., None] * powers).real
            final_state = final_state + torch.exp(log_poles * seq_len) * initial_state
        return outputs, final_state


def modal_chunk_operators(
    powers: torch.Tensor, residues: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The per-channel matrices of the chunked modal convolution, for chunks of `T = powers.shape[-1] - 1` tokens.

    Args:
        powers: `(channels, modes, T + 1)` complex `lambda ** k` for `k = 0 .. T`.
        residues: `(channels, modes)` complex `C`.

    Returns:
        - `toeplitz` `(channels, T, T)` real, `[j, i] = h[i - j]` for `i >= j`, else 0: the filter inside a chunk,
          `outputs = inputs @ toeplitz`.
        - `state_in` `(channels, T, modes)` complex `lambda ** (T - 1 - j)`: a chunk's inputs to its end state.
        - `state_out` `(channels, modes, T)` complex `C * lambda ** (i + 1)`: the state before a chunk to its outputs.
        - `chunk_decay` `(channels, modes)` complex `lambda ** T`: the state across one chunk.
    """
    chunk_size = powers.shape[-1] - 1
    impulse = torch.einsum("dn,dnk->dk", residues, powers[..., :chunk_size]).real  # h at lags 0 .. T - 1
    # Windows of the impulse after T - 1 zeros: window j starts at lag -j, so row j reads h[i - j] (0 for i < j).
    # A strided view; gathering with an index tensor costs about three times more, forward and backward.
    padded = torch.nn.functional.pad(impulse, (chunk_size - 1, 0))
    toeplitz = padded.unfold(-1, chunk_size, 1).flip(-2)
    state_in = powers[..., :chunk_size].flip(-1).transpose(1, 2)
    state_out = residues[..., None] * powers[..., 1:]
    return toeplitz, state_in, state_out, powers[..., chunk_size]


def modal_chunk_scan_torch(
    inputs: torch.Tensor,
    toeplitz: torch.Tensor,
    state_in: torch.Tensor,
    state_out: torch.Tensor,
    chunk_decay: torch.Tensor,
    initial_state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference chunked scan in plain torch (its Triton twin is `modal_conv_triton.modal_chunk_scan`).

    Args:
        inputs: `(batch, channels, seq_len)` real, in the dtype of `toeplitz`.
        toeplitz, state_in, state_out, chunk_decay: from [`modal_chunk_operators`], for chunks of `T` tokens.
        initial_state: `(batch, channels, modes)` complex state before the first token.

    Returns:
        `outputs` `(batch, channels, seq_len)` and the state before the last chunk `(batch, channels, modes)`: the
        last chunk may be short, so its end state is left to the caller.
    """
    seq_len, chunk_size = inputs.shape[-1], toeplitz.shape[-1]
    num_chunks = -(-seq_len // chunk_size)
    chunks = torch.nn.functional.pad(inputs, (0, num_chunks * chunk_size - seq_len)).unflatten(-1, (num_chunks, -1))
    outputs = torch.einsum("bdkj,dji->bdki", chunks, toeplitz)
    increments = torch.einsum("bdkj,djn->bdkn", chunks.to(state_in.dtype), state_in)
    states = [initial_state]  # the state before each chunk
    for increment in increments[:, :, :-1].unbind(2):
        states.append(chunk_decay * states[-1] + increment)
    states = torch.stack(states, dim=2)
    outputs = outputs + torch.einsum("bdkn,dni->bdki", states, state_out).real
    return outputs.flatten(-2)[..., :seq_len], states[:, :, -1]
