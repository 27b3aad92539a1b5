"""Triton kernels for the chunked scan behind `spectral_ops.modal_causal_conv`.

`modal_chunk_scan` has the arguments and results of its torch reference, `spectral_ops.modal_chunk_scan_torch`.

Algorithm. The modal filter of a channel is the diagonal recurrence `s_t = lambda * s_{t-1} + u_t`,
`y_t = Re(sum_n C_n s_t,n)`. Split into chunks of `T` tokens, a chunk's outputs are its inputs times a `(T, T)`
causal Toeplitz matrix plus `Re(state_before @ state_out)`, and the state after it is
`chunk_decay * state_before + inputs @ state_in` (the matrices of `spectral_ops.modal_chunk_operators`). One program
runs one (batch, channel) sequence through tiles of `ROWS = 16` chunks: the three matrix products of a tile are
`tl.dot`s, and the recurrence across its chunks is a `tl.associative_scan` of the affine maps
`s -> chunk_decay * s + increment`, with the state carried from tile to tile in registers. Complex numbers are pairs
of float32 tensors; the modes are zero-padded to a power of two of at least 16, the smallest `tl.dot` operand.

Backward. The gradient of a diagonal recurrence runs the same recurrence in reverse with `conj(chunk_decay)`. The
backward kernel walks the tiles from the last, recomputes each tile's states from the state stored at its start (one
per tile: the forward stores `modes` complex numbers per 1024 tokens rather than per token), and accumulates the
gradients of the per-channel matrices; the gradients of `log_poles` and `residues` follow from those through torch's
autograd of `modal_chunk_operators`.

Work and memory. Per token and channel, the forward does `T + 4 * modes` real multiply-adds in matrix products (the
Toeplitz product, the chunk's end state, the state's share of the outputs) and `O(modes)` for the scan; the backward
about twice that plus the recomputation. Inputs are read and outputs written once. Besides them, the forward keeps
`2 * modes` floats per sequence and tile, and the backward `batch * channels * (T * T + 4 * T * modes)` floats of
per-sequence gradients of the matrices (50 MB at batch 2, 768 channels), summed over the batch by torch. Nothing grows
like `channels * modes * seq_len`.

Block sizes. `T = 64` (`spectral_ops.MODAL_CHUNK_SIZE`) makes the Toeplitz work (`T` per token) equal the state work
(`4 * modes`) at the default 16 modes. `ROWS = 16` chunks per tile is the smallest row count of a `tl.dot`, so a tile
is 1024 tokens. Matrix products take float32 operands (bfloat16 and float16 inputs are widened on load) with
`input_precision="tf32x3"` on NVIDIA GPUs: three TF32 tensor-core products that keep float32 accuracy, where plain
TF32 would lose about three decimal digits. Compiled ahead of time for sm_90 with Triton 3.9 (no GPU needed; a test
does it), at `T = 64` and 16 modes the forward takes about 180 registers per thread with no spills and 76 KB of shared
memory, the backward 255 registers with a 32-byte spill and 88 KB; `supports` keeps every accepted size within 99 KB.

Status. The kernels equal the torch reference, outputs and gradients, through the Triton interpreter on CPU, and
compile for an H100; `tests/test_modal_conv.py` also holds the full-size comparison for a GPU. They have never run on
a GPU: their speed is not measured, no speed-up over the FFT convolution or the torch reference is claimed, and
`num_warps` are untuned guesses.
"""

import contextlib

import torch


# Inside `try`, so that transformers' remote-code check does not list triton as a requirement of this folder;
# `spectral_ops` catches the ImportError and falls back to its torch reference.
try:
    import triton
    import triton.language as tl
except ImportError as error:
    raise ImportError("modal_conv_triton needs triton") from error
if not hasattr(tl, "gather"):
    raise ImportError(f"modal_conv_triton needs Triton >= 3.2 (tl.gather), not {triton.__version__}")


ROWS = 16  # chunks per tile: the rows of every tl.dot
FORWARD_WARPS, BACKWARD_WARPS = 4, 8  # untuned; the backward holds about twice the tiles
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def supports(inputs: torch.Tensor, chunk_size: int, modes: int) -> bool:
    """Whether the kernels take `inputs` of this dtype, in chunks of `chunk_size` tokens with `modes` modes.

    `chunk_size * padded modes <= 1024` bounds the kernels' shared memory to 88 KB (at chunk 64, 16 modes), within
    the 99 KB every NVIDIA GPU since sm_80 gives a block.
    """
    return inputs.dtype in SUPPORTED_DTYPES and chunk_size in (16, 32, 64) and chunk_size * _padded(modes) <= 1024


def modal_chunk_scan(
    inputs: torch.Tensor,
    toeplitz: torch.Tensor,
    state_in: torch.Tensor,
    state_out: torch.Tensor,
    chunk_decay: torch.Tensor,
    initial_state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton twin of `spectral_ops.modal_chunk_scan_torch`, differentiable with respect to every argument.

    Args:
        inputs: `(batch, channels, seq_len)` float32, bfloat16 or float16.
        toeplitz: `(channels, T, T)` float32; `state_in` `(channels, T, modes)`, `state_out` `(channels, modes, T)`
            and `chunk_decay` `(channels, modes)` complex64, from `spectral_ops.modal_chunk_operators`.
        initial_state: `(batch, channels, modes)` complex64 state before the first token.

    Returns:
        `outputs` `(batch, channels, seq_len)` float32 and the state before the last chunk `(batch, channels, modes)`
        complex64.
    """
    chunk_size, modes = state_in.shape[-2:]
    if not supports(inputs, chunk_size, modes):
        raise ValueError(
            f"the Triton modal scan takes {SUPPORTED_DTYPES} inputs in chunks of 16, 32 or 64 tokens with "
            f"chunk_size * max(16, modes) <= 1024, not {inputs.dtype} with chunk_size={chunk_size}, modes={modes}"
        )
    outputs, last_state = _ModalChunkScan.apply(
        inputs.contiguous(),
        toeplitz.float().contiguous(),
        *(torch.view_as_real(tensor.to(torch.complex64).contiguous()) for tensor in (state_in, state_out, chunk_decay)),
        torch.view_as_real(initial_state.to(torch.complex64).contiguous()),
    )
    return outputs, torch.view_as_complex(last_state)


class _ModalChunkScan(torch.autograd.Function):
    """`modal_chunk_scan` on real views: every complex tensor is float32 with a trailing (real, imaginary) axis."""

    @staticmethod
    def forward(ctx, inputs, toeplitz, state_in, state_out, chunk_decay, initial_state):
        batch_size, channels, seq_len = inputs.shape
        chunk_size, modes = state_in.shape[1:3]
        num_tiles = triton.cdiv(triton.cdiv(seq_len, chunk_size), ROWS)
        outputs = inputs.new_empty(inputs.shape, dtype=torch.float32)
        last_state = initial_state.new_empty(initial_state.shape)
        tile_states = initial_state.new_empty(batch_size, channels, num_tiles, modes, 2)
        meta = _meta(seq_len, channels, modes, num_tiles, chunk_size, inputs)
        with _device_of(inputs):
            _modal_scan_fwd_kernel[(batch_size * channels,)](
                inputs, toeplitz, state_in, state_out, chunk_decay, initial_state, outputs, last_state, tile_states,
                **meta,
                num_warps=FORWARD_WARPS,
            )
        ctx.save_for_backward(inputs, toeplitz, state_in, state_out, chunk_decay, tile_states)
        return outputs, last_state

    @staticmethod
    def backward(ctx, grad_outputs, grad_last_state):
        inputs, toeplitz, state_in, state_out, chunk_decay, tile_states = ctx.saved_tensors
        batch_size, channels, seq_len = inputs.shape
        num_tiles = tile_states.shape[2]
        # Per (batch, channel) gradients of the channel's matrices, summed over the batch below.
        grad_inputs = torch.empty_like(inputs)
        grad_toeplitz = toeplitz.new_empty(batch_size, *toeplitz.shape)
        grad_state_in = state_in.new_empty(batch_size, *state_in.shape)
        grad_state_out = state_out.new_empty(batch_size, *state_out.shape)
        grad_chunk_decay = chunk_decay.new_empty(batch_size, *chunk_decay.shape)
        grad_initial_state = torch.empty_like(grad_last_state)
        meta = _meta(seq_len, channels, state_in.shape[2], num_tiles, state_in.shape[1], inputs)
        with _device_of(inputs):
            _modal_scan_bwd_kernel[(batch_size * channels,)](
                inputs, toeplitz, state_in, state_out, chunk_decay, tile_states,
                grad_outputs.contiguous(), grad_last_state.contiguous(),
                grad_inputs, grad_toeplitz, grad_state_in, grad_state_out, grad_chunk_decay, grad_initial_state,
                **meta,
                num_warps=BACKWARD_WARPS,
            )
        return (
            grad_inputs,
            grad_toeplitz.sum(0),
            grad_state_in.sum(0),
            grad_state_out.sum(0),
            grad_chunk_decay.sum(0),
            grad_initial_state,
        )


def _meta(seq_len: int, channels: int, modes: int, num_tiles: int, chunk_size: int, inputs: torch.Tensor) -> dict:
    """Sizes and compile-time constants shared by the two kernels."""
    return dict(
        channels=channels,
        seq_len=seq_len,
        modes=modes,
        num_tiles=num_tiles,
        CHUNK=chunk_size,
        ROWS=ROWS,
        MODES=_padded(modes),
        # AMD's Triton has no tf32x3; "ieee" keeps float32 accuracy there too.
        PRECISION="ieee" if torch.version.hip else "tf32x3",
    )


def _padded(modes: int) -> int:
    """Modes padded with zeros to a power of two of at least 16, the smallest `tl.dot` operand."""
    return max(16, triton.next_power_of_2(modes))


def _device_of(tensor: torch.Tensor):
    """Makes the tensor's GPU the current one (kernels launch on the current device)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


@triton.jit
def _compose(a_re, a_im, b_re, b_im, c_re, c_im, d_re, d_im):
    """The complex affine map `s -> a s + b` followed by `s -> c s + d`: `s -> (c a) s + (c b + d)`."""
    return (
        c_re * a_re - c_im * a_im,
        c_re * a_im + c_im * a_re,
        c_re * b_re - c_im * b_im + d_re,
        c_re * b_im + c_im * b_re + d_im,
    )


@triton.jit
def _tile_recurrence(decay_re, decay_im, inc_re, inc_im, carry_re, carry_im, REVERSE: tl.constexpr):
    """Runs `s <- decay * s + inc[g]` over the rows `g` of a tile from `s = carry`, first row first, or last row
    first with `REVERSE`. `decay`, `carry`: `(MODES,)`; `inc`: `(ROWS, MODES)`; each as real and imaginary parts.

    Returns `s` before each row's update `(ROWS, MODES)` and `s` after the whole tile `(MODES,)`.
    """
    num_rows: tl.constexpr = inc_re.shape[0]
    rows = tl.arange(0, num_rows)[:, None]
    decay_re = tl.broadcast_to(decay_re[None, :], inc_re.shape)
    decay_im = tl.broadcast_to(decay_im[None, :], inc_re.shape)
    scale_re, scale_im, acc_re, acc_im = tl.associative_scan(
        (decay_re, decay_im, inc_re, inc_im), 0, _compose, reverse=REVERSE
    )
    after_re = scale_re * carry_re[None, :] - scale_im * carry_im[None, :] + acc_re
    after_im = scale_re * carry_im[None, :] + scale_im * carry_re[None, :] + acc_im
    # Before a row's update is after the previous row's: a shift by one row, from `carry` at the first.
    if REVERSE:
        first, last, previous = num_rows - 1, 0, tl.minimum(rows + 1, num_rows - 1)
    else:
        first, last, previous = 0, num_rows - 1, tl.maximum(rows - 1, 0)
    previous = tl.broadcast_to(previous, inc_re.shape)
    before_re = tl.where(rows == first, carry_re[None, :], tl.gather(after_re, previous, 0))
    before_im = tl.where(rows == first, carry_im[None, :], tl.gather(after_im, previous, 0))
    end_re = tl.sum(tl.where(rows == last, after_re, 0.0), 0)
    end_im = tl.sum(tl.where(rows == last, after_im, 0.0), 0)
    return before_re, before_im, end_re, end_im


@triton.jit
def _load_complex(ptr, offsets, mask):
    """Real and imaginary parts at `offsets` of an interleaved (real, imaginary) float32 tensor; 0 off `mask`."""
    return tl.load(ptr + 2 * offsets, mask=mask, other=0.0), tl.load(ptr + 2 * offsets + 1, mask=mask, other=0.0)


@triton.jit
def _store_complex(ptr, offsets, value_re, value_im, mask):
    tl.store(ptr + 2 * offsets, value_re, mask=mask)
    tl.store(ptr + 2 * offsets + 1, value_im, mask=mask)


@triton.jit
def _modal_scan_fwd_kernel(
    inputs_ptr,
    toeplitz_ptr,
    state_in_ptr,
    state_out_ptr,
    decay_ptr,
    initial_ptr,
    outputs_ptr,
    last_state_ptr,
    tile_states_ptr,
    channels,
    seq_len,
    modes,
    num_tiles,
    CHUNK: tl.constexpr,
    ROWS: tl.constexpr,
    MODES: tl.constexpr,
    PRECISION: tl.constexpr,
):
    sequence = tl.program_id(0)  # batch * channels + channel
    channel = sequence % channels
    rows = tl.arange(0, ROWS)[:, None]
    lags = tl.arange(0, CHUNK)
    mode = tl.arange(0, MODES)
    real_mode = mode < modes  # the rest pad the modes to MODES with zeros

    toeplitz = tl.load(toeplitz_ptr + channel * CHUNK * CHUNK + lags[:, None] * CHUNK + lags[None, :])
    w_re, w_im = _load_complex(
        state_in_ptr, (channel * CHUNK + lags[:, None]) * modes + mode[None, :], real_mode[None, :]
    )
    v_re, v_im = _load_complex(
        state_out_ptr, (channel * modes + mode[:, None]) * CHUNK + lags[None, :], real_mode[:, None]
    )
    decay_re, decay_im = _load_complex(decay_ptr, channel * modes + mode, real_mode)
    state_re, state_im = _load_complex(initial_ptr, sequence * modes + mode, real_mode)

    last_chunk = tl.cdiv(seq_len, CHUNK) - 1
    last_re = tl.zeros((MODES,), tl.float32)
    last_im = tl.zeros((MODES,), tl.float32)
    inputs_ptr += sequence.to(tl.int64) * seq_len
    outputs_ptr += sequence.to(tl.int64) * seq_len
    for tile in range(num_tiles):
        _store_complex(tile_states_ptr, (sequence * num_tiles + tile) * modes + mode, state_re, state_im, real_mode)
        offsets = (tile * ROWS + rows) * CHUNK + lags[None, :]
        inside = offsets < seq_len
        x = tl.load(inputs_ptr + offsets, mask=inside, other=0.0).to(tl.float32)
        inc_re = tl.dot(x, w_re, input_precision=PRECISION)
        inc_im = tl.dot(x, w_im, input_precision=PRECISION)
        before_re, before_im, state_re, state_im = _tile_recurrence(
            decay_re, decay_im, inc_re, inc_im, state_re, state_im, False
        )
        y = tl.dot(x, toeplitz, input_precision=PRECISION)
        y = tl.dot(before_re, v_re, y, input_precision=PRECISION)
        y = tl.dot(-before_im, v_im, y, input_precision=PRECISION)
        tl.store(outputs_ptr + offsets, y, mask=inside)
        is_last = rows == last_chunk - tile * ROWS
        last_re += tl.sum(tl.where(is_last, before_re, 0.0), 0)
        last_im += tl.sum(tl.where(is_last, before_im, 0.0), 0)
    _store_complex(last_state_ptr, sequence * modes + mode, last_re, last_im, real_mode)


@triton.jit
def _modal_scan_bwd_kernel(
    inputs_ptr,
    toeplitz_ptr,
    state_in_ptr,
    state_out_ptr,
    decay_ptr,
    tile_states_ptr,
    grad_outputs_ptr,
    grad_last_ptr,
    grad_inputs_ptr,
    grad_toeplitz_ptr,
    grad_state_in_ptr,
    grad_state_out_ptr,
    grad_decay_ptr,
    grad_initial_ptr,
    channels,
    seq_len,
    modes,
    num_tiles,
    CHUNK: tl.constexpr,
    ROWS: tl.constexpr,
    MODES: tl.constexpr,
    PRECISION: tl.constexpr,
):
    sequence = tl.program_id(0)
    channel = sequence % channels
    rows = tl.arange(0, ROWS)[:, None]
    lags = tl.arange(0, CHUNK)
    mode = tl.arange(0, MODES)
    real_mode = mode < modes
    toeplitz_offsets = lags[:, None] * CHUNK + lags[None, :]
    state_in_offsets = (channel * CHUNK + lags[:, None]) * modes + mode[None, :]
    state_out_offsets = (channel * modes + mode[:, None]) * CHUNK + lags[None, :]

    toeplitz = tl.load(toeplitz_ptr + channel * CHUNK * CHUNK + toeplitz_offsets)
    w_re, w_im = _load_complex(state_in_ptr, state_in_offsets, real_mode[None, :])
    v_re, v_im = _load_complex(state_out_ptr, state_out_offsets, real_mode[:, None])
    decay_re, decay_im = _load_complex(decay_ptr, channel * modes + mode, real_mode)
    grad_last_re, grad_last_im = _load_complex(grad_last_ptr, sequence * modes + mode, real_mode)

    # Gradient with respect to the state before the chunk that follows the tile (nothing follows the last one).
    grad_re = tl.zeros((MODES,), tl.float32)
    grad_im = tl.zeros((MODES,), tl.float32)
    grad_toeplitz = tl.zeros((CHUNK, CHUNK), tl.float32)
    grad_w_re = tl.zeros((CHUNK, MODES), tl.float32)
    grad_w_im = tl.zeros((CHUNK, MODES), tl.float32)
    grad_v_re = tl.zeros((MODES, CHUNK), tl.float32)
    grad_v_im = tl.zeros((MODES, CHUNK), tl.float32)
    grad_decay_re = tl.zeros((MODES,), tl.float32)
    grad_decay_im = tl.zeros((MODES,), tl.float32)
    last_chunk = tl.cdiv(seq_len, CHUNK) - 1
    inputs_ptr += sequence.to(tl.int64) * seq_len
    grad_outputs_ptr += sequence.to(tl.int64) * seq_len
    grad_inputs_ptr += sequence.to(tl.int64) * seq_len
    for step in range(num_tiles):
        tile = num_tiles - 1 - step
        offsets = (tile * ROWS + rows) * CHUNK + lags[None, :]
        inside = offsets < seq_len
        x = tl.load(inputs_ptr + offsets, mask=inside, other=0.0).to(tl.float32)
        grad_y = tl.load(grad_outputs_ptr + offsets, mask=inside, other=0.0)

        # The states before each chunk, recomputed from the one stored at the start of the tile.
        start_re, start_im = _load_complex(tile_states_ptr, (sequence * num_tiles + tile) * modes + mode, real_mode)
        inc_re = tl.dot(x, w_re, input_precision=PRECISION)
        inc_im = tl.dot(x, w_im, input_precision=PRECISION)
        before_re, before_im, _, _ = _tile_recurrence(decay_re, decay_im, inc_re, inc_im, start_re, start_im, False)

        # Direct gradient with respect to the state before each chunk: through the chunk's outputs
        # (conj(state_out) @ grad_y) and, for the last chunk, through the returned state.
        direct_re = tl.dot(grad_y, tl.trans(v_re), input_precision=PRECISION)
        direct_im = -tl.dot(grad_y, tl.trans(v_im), input_precision=PRECISION)
        is_last = rows == last_chunk - tile * ROWS
        direct_re += tl.where(is_last, grad_last_re[None, :], 0.0)
        direct_im += tl.where(is_last, grad_last_im[None, :], 0.0)
        # The reverse recurrence with conj(decay); "before" a row in reverse order is the gradient with respect to
        # the state after that chunk.
        after_re, after_im, grad_re, grad_im = _tile_recurrence(
            decay_re, -decay_im, direct_re, direct_im, grad_re, grad_im, True
        )

        grad_x = tl.dot(grad_y, tl.trans(toeplitz), input_precision=PRECISION)
        grad_x = tl.dot(after_re, tl.trans(w_re), grad_x, input_precision=PRECISION)
        grad_x = tl.dot(after_im, tl.trans(w_im), grad_x, input_precision=PRECISION)
        tl.store(grad_inputs_ptr + offsets, grad_x.to(grad_inputs_ptr.dtype.element_ty), mask=inside)

        x_t = tl.trans(x)
        grad_toeplitz = tl.dot(x_t, grad_y, grad_toeplitz, input_precision=PRECISION)
        grad_w_re = tl.dot(x_t, after_re, grad_w_re, input_precision=PRECISION)
        grad_w_im = tl.dot(x_t, after_im, grad_w_im, input_precision=PRECISION)
        grad_v_re = tl.dot(tl.trans(before_re), grad_y, grad_v_re, input_precision=PRECISION)
        grad_v_im = tl.dot(tl.trans(-before_im), grad_y, grad_v_im, input_precision=PRECISION)
        # conj(state before) * gradient of the state after, over the chunks of the tile
        grad_decay_re += tl.sum(before_re * after_re + before_im * after_im, 0)
        grad_decay_im += tl.sum(before_re * after_im - before_im * after_re, 0)

    tl.store(grad_toeplitz_ptr + sequence.to(tl.int64) * CHUNK * CHUNK + toeplitz_offsets, grad_toeplitz)
    batch_offset = (sequence - channel).to(tl.int64)  # batch * channels
    grad_state_in_ptr += 2 * batch_offset * CHUNK * modes
    grad_state_out_ptr += 2 * batch_offset * modes * CHUNK
    _store_complex(grad_state_in_ptr, state_in_offsets, grad_w_re, grad_w_im, real_mode[None, :])
    _store_complex(grad_state_out_ptr, state_out_offsets, grad_v_re, grad_v_im, real_mode[:, None])
    _store_complex(grad_decay_ptr, sequence * modes + mode, grad_decay_re, grad_decay_im, real_mode)
    _store_complex(grad_initial_ptr, sequence * modes + mode, grad_re, grad_im, real_mode)
