"""FiftyNet model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


MIXER_TYPES = ("spectral_conv",)
POSITION_ENCODINGS = ("none", "learned")


@strict
class FiftyNetConfig(PreTrainedConfig):
    r"""
    Configuration of a FiftyNet causal language model: a stack of pre-norm residual blocks whose token mixer is a
    causal long convolution computed with FFTs along the sequence, followed by a gated MLP.

    Args:
        vocab_size (`int`, defaults to 259):
            Size of the vocabulary. The default matches [`FiftyNetByteTokenizer`]: 256 bytes and 3 special tokens.
        hidden_size (`int`, defaults to 768):
            Width of the residual stream.
        num_hidden_layers (`int`, defaults to 12):
            Number of blocks.
        intermediate_size (`int`, *optional*):
            Width of the gated MLP. Defaults to 8/3 of `hidden_size` rounded up to a multiple of 64, which keeps the
            gated MLP's parameter count at that of a plain 4x MLP.
        max_position_embeddings (`int`, defaults to 2048):
            Longest sequence the learned position table covers when `position_encoding="learned"`. The spectral
            mixer itself has no length limit (its filters are defined for every lag), so with
            `position_encoding="none"` longer inputs are accepted.
        mixer_type (`str`, defaults to `"spectral_conv"`):
            Token mixer of every block. `"spectral_conv"`: a causal long convolution (FFT, zero-padded to at least
            2L) with data-dependent gating, see [`FiftyNetSpectralConvMixer`].
        filter_state_size (`int`, defaults to 16):
            Number of complex modes per channel in each long-convolution filter. A filter is
            `h[t] = Re(sum_n C_n * lambda_n**t)` for `t >= 0`, so this is also the size of the per-channel recurrent
            state used for incremental decoding.
        filter_decay_min (`float`, defaults to 1e-3):
            Smallest initial decay rate `-log|lambda|` of a mode: the longest initial memory is about
            `1 / filter_decay_min` tokens.
        filter_decay_max (`float`, defaults to 1.0):
            Largest initial decay rate of a mode (shortest memory).
        short_conv_size (`int`, defaults to 4):
            Kernel size of the causal depthwise convolution applied to the mixer's projections before gating (1
            disables it).
        position_encoding (`str`, defaults to `"none"`):
            `"none"` (the causal convolutions carry the order of tokens) or `"learned"` (absolute position
            embeddings, limited to `max_position_embeddings`).
        hidden_act (`str`, defaults to `"silu"`):
            Activation of the gated MLP.
        rms_norm_eps (`float`, defaults to 1e-6):
            Epsilon of the RMS norms.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal initializer of linear and embedding weights.
        use_cache (`bool`, defaults to `True`):
            Whether the model returns its recurrent state ([`FiftyNetCache`]) for incremental decoding.
        tie_word_embeddings (`bool`, defaults to `True`):
            Whether the LM head shares the input embedding matrix.
        pad_token_id / bos_token_id / eos_token_id (`int`, defaults to 256 / 257 / 258):
            Special token ids of [`FiftyNetByteTokenizer`].

    Example:

    ```python
    >>> from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM

    >>> config = FiftyNetConfig(hidden_size=256, num_hidden_layers=4)
    >>> model = FiftyNetForCausalLM(config)
    ```"""

    model_type = "fiftynet"
    # GPT-2 style names, so configs written for GPT-2 tooling read naturally.
    attribute_map = {
        "n_embd": "hidden_size",
        "n_layer": "num_hidden_layers",
        "n_positions": "max_position_embeddings",
        "n_inner": "intermediate_size",
    }

    vocab_size: int = 259
    hidden_size: int = 768
    num_hidden_layers: int = 12
    intermediate_size: int | None = None
    max_position_embeddings: int = 2048
    mixer_type: str = "spectral_conv"
    filter_state_size: int = 16
    filter_decay_min: float = 1e-3
    filter_decay_max: float = 1.0
    short_conv_size: int = 4
    position_encoding: str = "none"
    hidden_act: str = "silu"
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = 256
    bos_token_id: int | None = 257
    eos_token_id: int | list[int] | None = 258

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # Derived after the base init, which has already applied the `attribute_map` aliases.
        if self.intermediate_size is None:
            self.intermediate_size = -(-8 * self.hidden_size // 3 // 64) * 64

    def validate_architecture(self):
        """Rejects settings the model cannot be built from, naming the field."""
        if self.mixer_type not in MIXER_TYPES:
            raise ValueError(f"mixer_type={self.mixer_type!r} is not one of {MIXER_TYPES}")
        if self.position_encoding not in POSITION_ENCODINGS:
            raise ValueError(f"position_encoding={self.position_encoding!r} is not one of {POSITION_ENCODINGS}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "max_position_embeddings",
                     "filter_state_size", "short_conv_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.intermediate_size is not None and self.intermediate_size < 1:
            raise ValueError(f"intermediate_size must be a positive integer, got {self.intermediate_size}")
        if not 0 < self.filter_decay_min <= self.filter_decay_max:
            raise ValueError(
                "filter decay rates must satisfy 0 < filter_decay_min <= filter_decay_max, got "
                f"{self.filter_decay_min} and {self.filter_decay_max}"
            )

    @property
    def mixer_types(self) -> list[str]:
        """The token mixer of each block."""
        return [self.mixer_type] * self.num_hidden_layers


__all__ = ["FiftyNetConfig"]
