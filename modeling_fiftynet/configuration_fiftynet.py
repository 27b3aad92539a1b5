"""FiftyNet model configuration."""

import math
import os
from dataclasses import dataclass

import torch
from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

from .saving import finish_before_loading, staged_folder


@dataclass(frozen=True)
class MixerSpec:
    """One row of the table of token mixers, read by config validation, the model, model cards, conversion,
    benchmarks and tests: a new mixer is one class in `modeling_fiftynet.py` and one row here.

    Attributes:
        name: the value of `mixer_type` / `mixer_types`.
        class_name: the `nn.Module` in `modeling_fiftynet.py` that implements it.
        causal: its output at position t depends on tokens <= t only (FiftyNetForCausalLM refuses the others).
        constant_state: its decoding state has a size that does not grow with the context.
        spectral: it mixes with FFT-based filters (what a card says of spectral mixers applies to it).
        convertible: `fiftynet convert` can put it in place of a teacher's attention.
        description: the model card's line about it, a `str.format` template over the config's fields plus
            `mixer_biases`, `attention_biases` and `attention_heads` (see `hub_cards.card`).
    """

    name: str
    class_name: str
    causal: bool
    constant_state: bool
    spectral: bool
    convertible: bool
    description: str


MIXERS = {spec.name: spec for spec in (
    MixerSpec("spectral_conv", "FiftyNetSpectralConvMixer", causal=True, constant_state=True, spectral=True,
              convertible=True,
              description="gated causal long convolution (FFT in float32, padded to 2L), {filter_state_size} complex "
                          "modes per channel (the decoding state), short convolution of {short_conv_size} tokens"
                          "{mixer_biases}"),
    MixerSpec("nfo", "FiftyNetFourierOperatorMixer", causal=True, constant_state=True, spectral=True,
              convertible=True,
              description="Neural Fourier Operator: a causal filter of {fourier_kernel_size} lags from its "
                          "{fourier_modes} lowest learned frequencies{mixer_biases}"),
    MixerSpec("fftnet", "FiftyNetAdaptiveSpectralMixer", causal=True, constant_state=True, spectral=True,
              convertible=True,
              description="causal adaptive spectral filter (FFTNet): {adaptive_filter_count} basis filters of "
                          "{fourier_kernel_size} lags mixed by the running context, modReLU{mixer_biases}"),
    MixerSpec("attention", "FiftyNetAttention", causal=True, constant_state=False, spectral=False,
              convertible=False,
              description="causal {attention_heads} ({attention_biases} biases)"),
    MixerSpec("fnet", "FiftyNetFNetMixer", causal=False, constant_state=False, spectral=True, convertible=False,
              description="FNet: Re(FFT2(x)), bidirectional"),
)}
# The cache-layer type of the layers whose mixer keeps a constant-size state (`FiftyNetMixerState`), in
# `FiftyNetConfig.layer_types`: transformers' `DynamicCache(config)` builds the layers from those types.
MIXER_STATE_LAYER_TYPE = "fiftynet_mixer_state"
# The `rope_type`s of transformers' rope initialisation that FiftyNet's attention computes: their frequencies are
# fixed, so a decoding step rotates as the full forward does ("dynamic" and "longrope" change with the length).
ROPE_TYPES = ("default", "linear", "llama3", "yarn")
# 2**48 float32 weights are a pebibyte: a config asking for a larger matrix is a typo, not a model.
MAX_MATRIX_ELEMENTS = 2**48
POSITION_ENCODINGS = ("none", "learned", "sinusoidal", "rope", "complex_rope")
MIXER_GATES = ("none", "glu", "phase")
EMBEDDING_TYPES = ("real", "complex")
NORM_TYPES = ("rms_norm", "layer_norm")
MLP_TYPES = ("gated", "plain")
# The special tokens of FiftyNetByteTokenizer, after its 256 bytes: the default ids of the config.
BYTE_SPECIAL_TOKEN_IDS = {"pad_token_id": 256, "bos_token_id": 257, "eos_token_id": 258}


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
            Width of the MLP. Defaults to 8/3 of `hidden_size` rounded up to a multiple of 64 for the gated MLP,
            which keeps its parameter count at that of a plain 4x MLP, and to 4 `hidden_size` for the plain one.
        max_position_embeddings (`int`, *optional*, defaults to 2048):
            Longest sequence the learned position table covers when `position_encoding="learned"`. With any other
            position encoding the model has no length limit (the filters are defined at every lag), and this field
            is None, so that `generate()` neither stops at it nor warns about it; except with a `"llama3"` or
            `"yarn"` rotary embedding, whose scaling transformers computes from it (the teacher's context length).
        mixer_type (`str`, defaults to `"spectral_conv"`):
            Token mixer of every block unless `mixer_types` lists one per block:
            - `"spectral_conv"`: gated causal long convolution with a modal filter, see [`FiftyNetSpectralConvMixer`].
            - `"nfo"`: Neural Fourier Operator, a filter learned in the frequency domain and made causal, see
              [`FiftyNetFourierOperatorMixer`].
            - `"fftnet"`: causal form of FFTNet's adaptive spectral filter with modReLU, see
              [`FiftyNetAdaptiveSpectralMixer`].
            - `"attention"`: standard causal multi-head attention (PyTorch SDPA), for hybrid stacks.
            - `"fnet"`: FNet's parameter-free 2D Fourier transform. It mixes in future tokens, so only
              [`FiftyNetModel`] and [`FiftyNetForSequenceClassification`] accept it.
        mixer_types (`list[str]`, *optional*):
            The token mixer of each block, e.g. `["spectral_conv", "attention", "spectral_conv", "attention"]` for a
            hybrid stack. Defaults to `mixer_type` repeated `num_hidden_layers` times, and while it is that
            repetition it follows later changes of either field (`config.num_hidden_layers = 4`,
            `from_pretrained(..., mixer_type="nfo")`). A list whose entries are all one mixer sets `mixer_type` to it.
            A per-block list is kept as given, so its length must then match `num_hidden_layers`.
        mixer_gate (`str`, defaults to `"none"`):
            Output gate applied to every mixer, per token: `"glu"` multiplies by `sigmoid(W x)`; `"phase"` views the
            output as `hidden_size / 2` complex numbers and multiplies each by `sigmoid(a(x)) * exp(i * theta(x))`, a
            data-dependent scaling and rotation (phase-aware mixing).
        filter_state_size (`int`, defaults to 16):
            Number of complex modes per channel in each modal filter (`"spectral_conv"`). A filter is
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
        fourier_kernel_size (`int`, defaults to 256):
            Length in tokens of the causal filters that `"nfo"` and `"fftnet"` learn in the frequency domain: the
            filter is the inverse real FFT of `fourier_kernel_size // 2 + 1` complex coefficients, read as lags
            `0 .. fourier_kernel_size - 1`. It is also the number of past inputs their decoding state keeps.
        fourier_modes (`int`, defaults to 64):
            Number of lowest frequencies with learnable coefficients (the others are zero), as in Fourier neural
            operators: fewer modes give smoother filters.
        adaptive_filter_count (`int`, defaults to 4):
            Number of basis filters `"fftnet"` mixes, per token, with weights predicted from the context.
        num_attention_heads (`int`, defaults to 12):
            Query heads of the `"attention"` mixers; must divide `hidden_size` unless `head_dim` is given.
        num_key_value_heads (`int`, *optional*):
            Key/value heads of the `"attention"` mixers: fewer than `num_attention_heads` is grouped-query attention
            (GQA; Ainslie et al., 2023), each key/value head serving `num_attention_heads / num_key_value_heads`
            query heads, and the key/value cache holds this many heads. Defaults to `num_attention_heads`.
        head_dim (`int`, *optional*):
            Channels per attention head. Defaults to `hidden_size / num_attention_heads`; Qwen3 and Gemma use others.
        attention_bias (`bool`, defaults to `False`):
            Whether the query, key and value projections (and, unless `attention_out_bias` says otherwise, the
            output projection) have biases.
        attention_out_bias (`bool`, *optional*):
            Whether the attention output projection has a bias. Defaults to `attention_bias`; Qwen2 has biases on
            the query, key and value projections only.
        attention_qk_norm (`bool`, defaults to `False`):
            Whether queries and keys go through an RMSNorm over each head's channels (epsilon `rms_norm_eps`)
            before the rotary embedding, as in Qwen3 and OLMo 2.
        mixer_bias (`bool`, defaults to `False`):
            Whether the input and output projections of the spectral mixers (`"spectral_conv"`, `"nfo"`,
            `"fftnet"`) have biases. A GPT-2 converted by `fiftynet convert` uses them to carry its attention
            layers' biases.
        position_encoding (`str`, defaults to `"none"`):
            - `"none"`: the causal convolutions carry the order of tokens.
            - `"learned"`: absolute position embeddings, limited to `max_position_embeddings`.
            - `"sinusoidal"`: fixed sine/cosine position embeddings added to the token embeddings (no length limit).
            - `"rope"`: rotary position embeddings on the queries and keys of the `"attention"` mixers.
            - `"complex_rope"`: the embeddings are read as `hidden_size / 2` complex numbers and each is rotated by
              the phase `position * rotary_base ** (-k / (hidden_size / 2))`, a rotation whose frequencies are spaced
              on a log scale, as RoPE's are.
        rotary_base (`float`, defaults to 10000.0):
            Base of the log-spaced frequencies of `"complex_rope"` and `"sinusoidal"`, and the default `rope_theta`
            of `"rope"`.
        rope_parameters (`dict`, *optional*):
            The rotary embedding of the `"attention"` mixers (`position_encoding="rope"`), in transformers' own
            format and computed by its rope initialisation (`transformers.modeling_rope_utils`): `rope_type` one of
            `"default"`, `"linear"`, `"llama3"`, `"yarn"` (the types whose frequencies do not change with the
            sequence length), `rope_theta`, and the type's own fields (`factor`, `original_max_position_embeddings`,
            ...). Defaults to `{"rope_type": "default", "rope_theta": rotary_base}`.
        embedding_type (`str`, defaults to `"real"`):
            `"complex"` reads each token vector as `hidden_size / 2` complex numbers, with the helpers
            `semantic_similarity` and `phase_relationship` of [`FiftyNetComplexEmbedding`].
        mlp_type (`str`, defaults to `"gated"`):
            `"gated"`: `down_proj(act(gate_proj(x)) * up_proj(x))`; `"plain"`: `down_proj(act(up_proj(x)))`, the
            MLP of GPT-2 (with `intermediate_size=4 * hidden_size`, `hidden_act="gelu_new"`, `mlp_bias=True`).
        mlp_bias (`bool`, defaults to `False`):
            Whether the MLP projections have biases.
        hidden_act (`str`, defaults to `"silu"`):
            Activation of the MLP.
        norm_type (`str`, defaults to `"rms_norm"`):
            `"rms_norm"` (RMSNorm, epsilon `rms_norm_eps`) or `"layer_norm"` (LayerNorm with bias, epsilon
            `layer_norm_epsilon`, as in GPT-2) for the norms before each mixer and MLP and after the last block.
        rms_norm_eps (`float`, defaults to 1e-6):
            Epsilon of the RMS norms.
        layer_norm_epsilon (`float`, defaults to 1e-5):
            Epsilon of the LayerNorms (`norm_type="layer_norm"`).
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal initializer of linear and embedding weights.
        use_cache (`bool`, defaults to `True`):
            Whether the model returns its decoding state (a `DynamicCache`, see `layer_types`) for incremental
            decoding.
        tie_word_embeddings (`bool`, defaults to `True`):
            Whether the LM head shares the input embedding matrix.
        chunk_head_size (`int`, defaults to 0):
            Number of tokens beyond the next one that the chunk head ([`FiftyNetChunkHead`]) drafts from each
            position, for [`FiftyNetForCausalLM.generate_with_chunk_head`]; 0: no chunk head.
        compression (`dict`, *optional*):
            Set by `fiftynet compress`: which Linear layers of the backbone are stored compressed and how
            (`{"method", "ratio", "modules", "layers": {path: structure}}`, see `modeling_fiftynet.compression`). The
            model then builds those layers compressed, and `from_pretrained` fills them from the checkpoint.
        pad_token_id / bos_token_id / eos_token_id (`int`, defaults to 256 / 257 / 258):
            Special token ids of [`FiftyNetByteTokenizer`]. A vocabulary too small to hold one of these defaults has
            no such token (None) unless an id inside it is given.

    Example:

    ```python
    >>> from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM

    >>> config = FiftyNetConfig(hidden_size=256, num_hidden_layers=4)
    >>> model = FiftyNetForCausalLM(config)
    ```"""

    model_type = "fiftynet"
    # The cache is not a prediction: the Trainer leaves it out of evaluation outputs (its name since and before
    # transformers 5.24).
    keys_to_ignore_at_inference = ["cache", "past_key_values"]
    # GPT-2 style names, so configs written for GPT-2 tooling read naturally.
    attribute_map = {
        "n_embd": "hidden_size",
        "n_layer": "num_hidden_layers",
        "n_positions": "max_position_embeddings",
        "n_inner": "intermediate_size",
        "n_head": "num_attention_heads",
    }

    vocab_size: int = 259
    hidden_size: int = 768
    num_hidden_layers: int = 12
    intermediate_size: int | None = None
    max_position_embeddings: int | None = 2048
    mixer_type: str = "spectral_conv"
    mixer_types: list[str] | None = None
    mixer_gate: str = "none"
    filter_state_size: int = 16
    filter_decay_min: float | int = 1e-3  # float | int here and below: a JSON 0 or 1 is an int
    filter_decay_max: float | int = 1.0
    short_conv_size: int = 4
    fourier_kernel_size: int = 256
    fourier_modes: int = 64
    adaptive_filter_count: int = 4
    num_attention_heads: int = 12
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    attention_bias: bool = False
    attention_out_bias: bool | None = None
    attention_qk_norm: bool = False
    mixer_bias: bool = False
    position_encoding: str = "none"
    rotary_base: float | int = 10000.0
    rope_parameters: dict | None = None
    embedding_type: str = "real"
    mlp_type: str = "gated"
    mlp_bias: bool = False
    hidden_act: str = "silu"
    norm_type: str = "rms_norm"
    rms_norm_eps: float | int = 1e-6
    layer_norm_epsilon: float | int = 1e-5
    initializer_range: float | int = 0.02
    use_cache: bool = True
    tie_word_embeddings: bool = True
    chunk_head_size: int = 0
    compression: dict | None = None
    pad_token_id: int | None = 256
    bos_token_id: int | None = 257
    eos_token_id: int | list[int] | None = 258

    def __post_init__(self, **kwargs):
        # transformers turns a dtype name into `getattr(torch, name)`, an AttributeError for a name torch lacks; a
        # `torch_dtype` (the old name) beside `dtype` would be ignored, so both are checked.
        for name, dtype in (("dtype", self.dtype), ("torch_dtype", kwargs.get("torch_dtype"))):
            if isinstance(dtype, str) and not isinstance(getattr(torch, dtype, None), torch.dtype):
                raise ValueError(f"{name}={dtype!r} is not a torch dtype, e.g. 'float32' or 'bfloat16'")
        if self.rope_parameters is None:  # before the base init, which standardizes it (and would default its theta)
            self.rope_parameters = {"rope_type": "default", "rope_theta": self.rotary_base}
        super().__post_init__(**kwargs)
        # Derived after the base init, which has already applied the `attribute_map` aliases.
        if self.intermediate_size is None:
            gated = self.mlp_type == "gated"
            self.intermediate_size = -(-8 * self.hidden_size // 3 // 64) * 64 if gated else 4 * self.hidden_size
        for name, default in BYTE_SPECIAL_TOKEN_IDS.items():
            if getattr(self, name) == default and default >= self.vocab_size:
                setattr(self, name, None)
        # transformers' rope initialisation and validation read the context length of a scaled rotary embedding.
        scaled_rope = self.position_encoding == "rope" and self.rope_parameters.get("rope_type") in ("llama3", "yarn")
        if self.position_encoding != "learned" and not scaled_rope:
            self.max_position_embeddings = None  # no length limit

    def __setattr__(self, name, value):
        name = self.attribute_map.get(name, name)
        if name == "layer_types":  # derived from mixer_types (a config.json may still hold it)
            if value is not None and "mixer_types" in self.__dict__ and list(value) != self.layer_types:
                raise ValueError(
                    f"layer_types={value} does not follow mixer_types={self.mixer_types}, from which FiftyNet derives "
                    "it: set mixer_types"
                )
            return
        if name == "mixer_types":
            if value is None:
                value = [self.mixer_type] * self.num_hidden_layers
            elif value and len(set(value)) == 1 and self.__dict__.get("mixer_type", value[0]) in MIXERS:
                # One mixer for every block: it follows mixer_type (an unknown mixer_type stays, to be refused).
                super().__setattr__("mixer_type", value[0])
        follows = name in ("num_hidden_layers", "mixer_type") and self._mixer_types_follow_mixer_type()
        super().__setattr__(name, value)
        if follows:
            super().__setattr__("mixer_types", [self.mixer_type] * self.num_hidden_layers)

    def _mixer_types_follow_mixer_type(self) -> bool:
        """Whether `mixer_types` is unset or `mixer_type` repeated, i.e. derived rather than chosen per block."""
        mixer_types = self.__dict__.get("mixer_types")
        return mixer_types is None or mixer_types == [self.mixer_type] * len(mixer_types)

    @classmethod
    def get_config_dict(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> tuple[dict, dict]:
        """`PreTrainedConfig.get_config_dict`, after finishing a save into the folder that a killed process left half
        moved in (see `saving.finish_interrupted_saves`), so that the config read describes the weights beside it."""
        finish_before_loading(pretrained_model_name_or_path, kwargs.get("subfolder"))
        return super().get_config_dict(pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory: str | os.PathLike, *args, **kwargs) -> None:
        """`PreTrainedConfig.save_pretrained`, validating before anything is written (transformers writes the code
        files first) and writing the folder beside `save_directory` before moving it into place (see
        `saving.staged_folder`)."""
        self.validate_architecture()
        if kwargs.get("push_to_hub"):
            kwargs.setdefault("repo_id", os.path.basename(os.path.abspath(save_directory)))
        with staged_folder(save_directory) as staged:
            super().save_pretrained(staged, *args, **kwargs)

    def validate_architecture(self):
        """Rejects settings the model cannot be built from, naming the field."""
        for name, value, choices in (
            ("mixer_type", self.mixer_type, tuple(MIXERS)),
            ("mixer_gate", self.mixer_gate, MIXER_GATES),
            ("position_encoding", self.position_encoding, POSITION_ENCODINGS),
            ("embedding_type", self.embedding_type, EMBEDDING_TYPES),
            ("norm_type", self.norm_type, NORM_TYPES),
            ("mlp_type", self.mlp_type, MLP_TYPES),
        ):
            if value not in choices:
                raise ValueError(f"{name}={value!r} is not one of {choices}")
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "filter_state_size", "short_conv_size",
                     "fourier_kernel_size", "fourier_modes", "adaptive_filter_count", "num_attention_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("rms_norm_eps", "layer_norm_epsilon", "rotary_base", "filter_decay_min", "filter_decay_max"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):  # NaN fails both
                raise ValueError(f"{name} must be a positive finite number, got {value}")
        if not (math.isfinite(self.initializer_range) and self.initializer_range >= 0):
            raise ValueError(f"initializer_range must be a finite number >= 0, got {self.initializer_range}")
        if self.hidden_act not in ACT2FN:
            raise ValueError(
                f"hidden_act={self.hidden_act!r} is not an activation transformers knows (ACT2FN), e.g. 'silu', "
                "'gelu', 'gelu_new', 'relu'"
            )
        if self.position_encoding == "learned" and (self.max_position_embeddings or 0) < 1:
            raise ValueError(
                "position_encoding='learned' needs max_position_embeddings, the size of its position table, got "
                f"{self.max_position_embeddings}"
            )
        for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
            token_ids = getattr(self, name)
            for token_id in token_ids if isinstance(token_ids, list) else [token_ids]:
                if token_id is not None and not 0 <= token_id < self.vocab_size:
                    raise ValueError(f"{name}={token_id} is outside the vocabulary [0, {self.vocab_size})")
        if self.chunk_head_size < 0:
            raise ValueError(f"chunk_head_size must be 0 (no chunk head) or positive, got {self.chunk_head_size}")
        if self.intermediate_size is not None and self.intermediate_size < 1:
            raise ValueError(f"intermediate_size must be a positive integer, got {self.intermediate_size}")
        # torch cannot even allocate such a matrix on the meta device (its byte count overflows): say which field.
        widest = max(self.vocab_size, self.intermediate_size or 0, 3 * self.hidden_size)
        if widest * self.hidden_size > MAX_MATRIX_ELEMENTS:
            raise ValueError(
                f"hidden_size={self.hidden_size} with vocab_size={self.vocab_size} and intermediate_size="
                f"{self.intermediate_size} makes weight matrices of {widest * self.hidden_size:.3g} elements, more "
                "than any machine holds"
            )
        if not 0 < self.filter_decay_min <= self.filter_decay_max:
            raise ValueError(
                "filter decay rates must satisfy 0 < filter_decay_min <= filter_decay_max, got "
                f"{self.filter_decay_min} and {self.filter_decay_max}"
            )
        if self.fourier_modes > self.fourier_kernel_size // 2 + 1:
            raise ValueError(
                f"fourier_modes={self.fourier_modes} exceeds the {self.fourier_kernel_size // 2 + 1} frequencies of a "
                f"filter of fourier_kernel_size={self.fourier_kernel_size}"
            )
        self._validate_mixer_types()
        complex_features = [
            name for name, used in (
                ("mixer_type 'fftnet'", "fftnet" in self.mixer_types),
                ("mixer_gate='phase'", self.mixer_gate == "phase"),
                ("embedding_type='complex'", self.embedding_type == "complex"),
                (f"position_encoding={self.position_encoding!r}",
                 self.position_encoding in ("sinusoidal", "complex_rope")),
            ) if used
        ]
        if complex_features and self.hidden_size % 2:
            raise ValueError(
                f"{complex_features[0]} pairs channels into complex numbers, so hidden_size must be even, got "
                f"{self.hidden_size}"
            )

    def _validate_mixer_types(self):
        if self.mixer_types is None:
            return
        if len(self.mixer_types) != self.num_hidden_layers:
            raise ValueError(
                f"mixer_types lists {len(self.mixer_types)} mixers for num_hidden_layers={self.num_hidden_layers}"
            )
        unknown = sorted(set(self.mixer_types) - set(MIXERS))
        if unknown:
            raise ValueError(f"mixer_types contains {unknown}, not in {tuple(MIXERS)}")
        if "attention" in self.mixer_types:
            self._validate_attention()
        elif self.position_encoding == "rope":
            raise ValueError(
                "position_encoding='rope' rotates the queries and keys of attention mixers, but mixer_types has no "
                "'attention' layer; use 'complex_rope', 'sinusoidal' or 'learned' for a purely spectral stack"
            )

    def _validate_attention(self):
        for name in ("num_key_value_heads", "head_dim"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer or None, got {getattr(self, name)}")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_attention_heads={self.num_attention_heads}; "
                "set head_dim for heads of another size"
            )
        if self.num_attention_heads % self.attention_key_value_heads:
            raise ValueError(
                f"num_attention_heads={self.num_attention_heads} is not a multiple of "
                f"num_key_value_heads={self.num_key_value_heads}"
            )
        if self.position_encoding != "rope":
            return
        if self.attention_head_dim % 2:
            raise ValueError(
                f"position_encoding='rope' needs an even attention head size, got {self.attention_head_dim}"
            )
        rope_type = self.rope_parameters.get("rope_type")
        if rope_type not in ROPE_TYPES:
            raise ValueError(
                f"rope_parameters has rope_type={rope_type!r}; FiftyNet's attention supports {ROPE_TYPES} (the types "
                "whose frequencies do not depend on the sequence length)"
            )
        if self.rope_parameters.get("partial_rotary_factor", 1.0) != 1.0:
            raise ValueError("rope_parameters has a partial_rotary_factor; FiftyNet's attention rotates whole heads")

    @property
    def attention_head_dim(self) -> int:
        """Channels per attention head: `head_dim`, or `hidden_size / num_attention_heads` when it is None."""
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def attention_key_value_heads(self) -> int:
        """Key/value heads of each attention mixer: `num_key_value_heads`, or `num_attention_heads` when it is None."""
        return self.num_key_value_heads or self.num_attention_heads

    @property
    def layer_types(self) -> list[str]:
        """The kind of decoding state of each block that runs, in transformers' terms: `"full_attention"` (keys and
        values, transformers' `DynamicLayer`) or `MIXER_STATE_LAYER_TYPE` (a constant-size `FiftyNetMixerState`).
        Derived from `mixer_types`, so not saved."""
        # Read before validation too (transformers' config init), where an unknown mixer is not yet refused.
        return [
            MIXER_STATE_LAYER_TYPE if mixer in MIXERS and MIXERS[mixer].constant_state else "full_attention"
            for mixer in self.mixer_types[: self.num_hidden_layers]
        ]

    def validate_layer_type(self):
        """`layer_types` follows the validated `mixer_types`; it names FiftyNet's own cache-layer type, which
        transformers' list of attention types (what its own check accepts) does not hold."""

    @property
    def is_causal(self) -> bool:
        """Whether every block only looks at past tokens (required by FiftyNetForCausalLM)."""
        return all(MIXERS[mixer].causal for mixer in self.mixer_types)


__all__ = ["MIXERS", "MIXER_STATE_LAYER_TYPE", "FiftyNetConfig", "MixerSpec"]
