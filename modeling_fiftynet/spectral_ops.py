"""Spectral operations behind FiftyNet's mixers.

The reference implementations here are plain `torch.fft` and run on every device. Fused kernels, when they exist,
sit beside them with the same signature and are checked against them.

Every FFT runs in float32 or wider whatever the autocast dtype: cuFFT has no bfloat16 and float16 only for
power-of-two sizes, and half precision loses too much of long filters. Float64 inputs stay float64, so
`torch.autograd.gradcheck` can check these operations.
"""

import torch


def fft_size(seq_len: int) -> int:
    """Smallest power of two >= 2 * seq_len: padding to 2L makes the circular FFT product a linear convolution."""
    return 1 << (2 * seq_len - 1).bit_length()


def at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in float32, or unchanged when it is already float32, float64 or complex."""
    if tensor.is_complex():
        return tensor
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


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
    seq_len = inputs.shape[-1]
    n = fft_size(seq_len)
    with torch.autocast(device_type=inputs.device.type, enabled=False):
        inputs_f = torch.fft.rfft(at_least_float32(inputs), n=n)
        kernel_f = torch.fft.rfft(at_least_float32(kernel[..., :seq_len]), n=n)
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


def rotary_angles(position_ids: torch.Tensor, pairs: int, base: float) -> torch.Tensor:
    """`(..., pairs)` float32 angles `position * base ** (-k / pairs)`: one rotation per pair of channels, with
    frequencies spaced evenly on a log scale from 1 to `1 / base` radians per position (as in RoPE)."""
    frequencies = base ** (-torch.arange(pairs, device=position_ids.device, dtype=torch.float32) / pairs)
    return position_ids[..., None].float() * frequencies


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
