"""Spectral operations behind FiftyNet's mixers.

The reference implementations here are plain `torch.fft` and run on every device. Fused kernels, when they exist,
sit beside them with the same signature and are checked against them.
"""

import torch


def fft_size(seq_len: int) -> int:
    """Smallest power of two >= 2 * seq_len: padding to 2L makes the circular FFT product a linear convolution."""
    return 1 << (2 * seq_len - 1).bit_length()


def fft_causal_conv(inputs: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Causal convolution `y[..., t] = sum_{s <= t} kernel[..., t - s] * inputs[..., s]` through FFTs.

    Args:
        inputs: `(batch, channels, seq_len)`, any floating dtype.
        kernel: `(channels, seq_len)`, the filter at lags `0 .. seq_len - 1`.

    Returns:
        `(batch, channels, seq_len)` in float32. The FFTs always run in float32 whatever the autocast dtype: cuFFT has
        no bfloat16 and float16 only for power-of-two sizes, and half precision loses too much of long filters.
    """
    seq_len = inputs.shape[-1]
    if kernel.shape[-1] != seq_len:
        raise ValueError(f"kernel length {kernel.shape[-1]} does not match the sequence length {seq_len}")
    n = fft_size(seq_len)
    with torch.autocast(device_type=inputs.device.type, enabled=False):
        inputs_f = torch.fft.rfft(inputs.float(), n=n)
        kernel_f = torch.fft.rfft(kernel.float(), n=n)
        return torch.fft.irfft(inputs_f * kernel_f, n=n)[..., :seq_len]
