"""PyTorch FiftyNet: causal language models that mix tokens with FFT long convolutions instead of attention."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils import can_return_tuple

from .configuration_fiftynet import FiftyNetConfig
from .spectral_ops import fft_causal_conv


class FiftyNetMixerState:
    """Recurrent state of one spectral mixer: what a new token needs from the past, independent of its length.

    - `conv_inputs`: `(batch, 3 * hidden_size, short_conv_size - 1)`, the last inputs of the short convolution.
    - `filter_state`: `(batch, hidden_size, filter_state_size)` complex64, the modes of the long-convolution filter.
    """

    is_compileable = False
    is_croppable = False
    is_sliding = False
    supports_early_init = False

    def __init__(self):
        self.conv_inputs: torch.Tensor | None = None
        self.filter_state: torch.Tensor | None = None
        self.seq_length = 0

    @property
    def is_initialized(self) -> bool:
        return self.filter_state is not None

    def get_seq_length(self) -> int:
        return self.seq_length

    def get_max_length(self) -> int:
        return -1

    def _apply_to_states(self, fn) -> None:
        if self.is_initialized:
            self.conv_inputs = fn(self.conv_inputs)
            self.filter_state = fn(self.filter_state)

    def reset(self) -> None:
        self._apply_to_states(torch.zeros_like)
        self.seq_length = 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._apply_to_states(lambda state: state.index_select(0, beam_idx.to(state.device)))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._apply_to_states(lambda state: state[indices])

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._apply_to_states(lambda state: state.repeat_interleave(repeats, dim=0))

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError(
                "A FiftyNet state summarises the whole past and cannot forget tokens, so it cannot be cropped "
                "(assisted generation needs a croppable cache)."
            )


class FiftyNetCache(Cache):
    """Cache of a FiftyNet model: one [`FiftyNetMixerState`] per layer.

    A decoding step costs O(state) per layer whatever the length of the context, because the long-convolution filters
    are sums of decaying complex exponentials whose contribution from the past is carried exactly by their modes.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__(layers=[FiftyNetMixerState() for _ in range(config.num_hidden_layers)])

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of tokens the state has consumed."""
        return self.layers[layer_idx].get_seq_length()


class FiftyNetRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.eps = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.float()
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * hidden_states.to(input_dtype)


class FiftyNetMLP(nn.Module):
    """Gated MLP: `down(act(gate(x)) * up(x))`."""

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(hidden_states)) * self.up_proj(hidden_states))


class FiftyNetModalFilter(nn.Module):
    """Per-channel causal long filter `h[c, t] = Re(sum_n C[c, n] * lambda[c, n] ** t)` for lags `t >= 0`.

    Defined only at non-negative lags, its time-domain support is causal by construction, and it has a value at every
    lag, so no sequence length is built in. The poles `lambda = exp(-exp(log_decay) + i * frequency)` lie strictly
    inside the unit circle, so every mode decays. Because each mode is a geometric sequence, the filter's effect of
    the whole past is carried exactly by `filter_state_size` complex numbers per channel (see [`FiftyNetMixerState`]).

    The complex residues `C` are stored as a real float32 tensor with a trailing dimension of 2 (real, imaginary) and
    viewed as complex in forward: complex parameters do not survive `from_pretrained`, FSDP or `.to(bfloat16)` intact.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        shape = (config.hidden_size, config.filter_state_size)
        self.decay_range = (config.filter_decay_min, config.filter_decay_max)
        self.log_decay = nn.Parameter(torch.empty(shape))
        self.frequency = nn.Parameter(torch.empty(shape))
        self.residues = nn.Parameter(torch.empty(*shape, 2))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Decay rates log-uniform over the configured range (memories from ~1 to ~1/decay_min tokens), frequencies
        spread over [0, pi), and residues scaled so that every mode starts with unit energy."""
        channels, modes = self.log_decay.shape
        low, high = (math.log(rate) for rate in self.decay_range)
        log_decay = low + (high - low) * torch.rand(channels, modes)
        frequency = (math.pi * torch.arange(modes) / modes).expand(channels, modes)
        energy = 1 - torch.exp(-2 * log_decay.exp())
        residues = torch.randn(channels, modes, 2) * (energy / (2 * modes)).sqrt()[..., None]
        init.copy_(self.log_decay, log_decay)
        init.copy_(self.frequency, frequency)
        init.copy_(self.residues, residues)

    def log_poles(self) -> torch.Tensor:
        """`(channels, modes)` complex64 `log(lambda)`."""
        return torch.complex(-self.log_decay.float().exp(), self.frequency.float())

    def poles(self) -> torch.Tensor:
        """`(channels, modes)` complex64 `lambda`."""
        return self.log_poles().exp()

    def complex_residues(self) -> torch.Tensor:
        """`(channels, modes)` complex64 `C`."""
        return torch.view_as_complex(self.residues.float())

    def powers(self, length: int) -> torch.Tensor:
        """`(channels, modes, length)` complex64 `lambda ** t` for `t = 0 .. length - 1`."""
        lags = torch.arange(length, device=self.log_decay.device, dtype=torch.float32)
        return torch.exp(self.log_poles()[..., None] * lags)


class FiftyNetSpectralConvMixer(nn.Module):
    """Causal spectral token mixer (`mixer_type="spectral_conv"`), a gated long convolution in the style of H3/Hyena:

        q, k, v = short_conv(in_proj(x))        # causal depthwise convolution over a few tokens
        y = out_proj(q * long_conv(k * v))      # long_conv: FFT convolution with a FiftyNetModalFilter

    The gates make the mixing data-dependent; the long convolution runs through float32 FFTs zero-padded to at least
    2L, so nothing wraps around and no `(L, L)` tensor is ever built. Padding positions (`attention_mask == 0`) are
    zeroed before each convolution, so a pad never leaks into a real token.
    """

    def __init__(self, config: FiftyNetConfig):
        super().__init__()
        self.in_proj = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=False)
        self.short_conv = nn.Conv1d(
            3 * config.hidden_size, 3 * config.hidden_size, config.short_conv_size, groups=3 * config.hidden_size
        )
        self.filter = FiftyNetModalFilter(config)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        state: FiftyNetMixerState | None = None,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: `(batch, seq_len, hidden_size)`.
            padding_mask: `(batch, 1, seq_len)`, 1 for real tokens and 0 for padding, or None.
            state: this layer's recurrent state, read and advanced by `seq_len` tokens; None without a cache.

        Returns:
            `(batch, seq_len, hidden_size)`.
        """
        projected = self.in_proj(hidden_states).transpose(1, 2)
        if padding_mask is not None:
            projected = projected * padding_mask
        query, key, value = self._short_conv(projected, state).chunk(3, dim=1)
        mixer_input = key * value
        if padding_mask is not None:
            mixer_input = mixer_input * padding_mask
        mixed = self._long_conv(mixer_input, state).to(query.dtype)
        if state is not None:
            state.seq_length += hidden_states.shape[1]
        return self.out_proj((query * mixed).transpose(1, 2))

    def _short_conv(self, inputs: torch.Tensor, state: FiftyNetMixerState | None) -> torch.Tensor:
        """Causal depthwise convolution of `(batch, channels, seq_len)` inputs, continuing from the state's inputs."""
        batch_size, channels, _ = inputs.shape
        history = self.short_conv.kernel_size[0] - 1
        if state is not None and state.conv_inputs is not None:
            past = state.conv_inputs.to(inputs.dtype)
        else:
            past = inputs.new_zeros(batch_size, channels, history)
        extended = torch.cat([past, inputs], dim=-1)
        if state is not None:
            state.conv_inputs = extended[..., extended.shape[-1] - history :]
        return self.short_conv(extended)

    def _long_conv(self, inputs: torch.Tensor, state: FiftyNetMixerState | None) -> torch.Tensor:
        """Long causal convolution of `(batch, channels, seq_len)` inputs with the modal filter, in float32.

        Without a state it is one FFT convolution. With a state it also adds the contribution of the tokens seen
        before (`Re(sum_n C_n lambda_n^(t+1) s_n)`) and advances the modes `s` over the new tokens; a single new
        token is the recurrence `s <- lambda * s + u`, `y = Re(sum_n C_n s_n)`.
        """
        seq_len = inputs.shape[-1]
        residues = self.filter.complex_residues()
        past = state.filter_state if state is not None else None
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            inputs = inputs.float()
            if past is not None and seq_len == 1:
                state.filter_state = self.filter.poles() * past + inputs
                return torch.einsum("dn,bdn->bd", residues, state.filter_state).real[..., None]

            powers = self.filter.powers(seq_len)
            kernel = torch.einsum("dn,dnl->dl", residues, powers).real
            outputs = fft_causal_conv(inputs, kernel)
            if state is None:
                return outputs
            new_state = torch.einsum("bdl,dnl->bdn", inputs.to(powers.dtype), powers.flip(-1))
            if past is not None:
                poles = self.filter.poles()
                outputs = outputs + torch.einsum("dn,bdn,dnl->bdl", residues * poles, past, powers).real
                new_state = new_state + past * powers[..., -1] * poles
            state.filter_state = new_state
            return outputs


class FiftyNetBlock(GradientCheckpointingLayer):
    """Pre-norm residual block: `x + mixer(norm(x))`, then `x + mlp(norm(x))`."""

    def __init__(self, config: FiftyNetConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.mixer_norm = FiftyNetRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mixer = FiftyNetSpectralConvMixer(config)
        self.mlp_norm = FiftyNetRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = FiftyNetMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        past_key_values: FiftyNetCache | None = None,
    ) -> torch.Tensor:
        state = past_key_values.layers[self.layer_idx] if past_key_values is not None else None
        hidden_states = hidden_states + self.mixer(self.mixer_norm(hidden_states), padding_mask, state)
        return hidden_states + self.mlp(self.mlp_norm(hidden_states))


class FiftyNetPreTrainedModel(PreTrainedModel):
    config: FiftyNetConfig
    config_class = FiftyNetConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["FiftyNetBlock"]
    _skip_keys_device_placement = ["past_key_values"]
    # The filters hold decay rates and phases that half precision would round away; FFTs run in float32 anyway.
    _keep_in_fp32_modules_strict = ["filter"]
    # The state is a recurrence over the whole past: it cannot be rolled back, as assisted generation would need.
    _is_stateful = True

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, except that a checkpoint lacking weights of the FiftyNet backbone is an
        error instead of a warning followed by random weights. A head the checkpoint never had (a new task head) may
        still be missing, as usual."""
        return_loading_info = kwargs.pop("output_loading_info", False)
        model, loading_info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        head_prefix = f"{cls.base_model_prefix}."
        is_backbone_model = isinstance(model, FiftyNetModel)
        missing = sorted(
            key for key in loading_info["missing_keys"] if is_backbone_model or key.startswith(head_prefix)
        )
        if missing:
            raise ValueError(
                f"The checkpoint is incomplete: {len(missing)} weight(s) of the model are missing, e.g. "
                f"{', '.join(missing[:5])}. Is the weights file truncated or from another architecture?"
            )
        return (model, loading_info) if return_loading_info else model

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, nn.Conv1d):
            # Start as the identity (only the current token), so the gates see the projections unchanged.
            weight = torch.zeros_like(module.weight)
            weight[..., -1] = 1.0
            init.copy_(module.weight, weight)
            init.zeros_(module.bias)
        elif isinstance(module, FiftyNetRMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, FiftyNetModalFilter):
            module.reset_parameters()
        # GPT-2's scaled init of the projections that write into the residual stream (two per block).
        if isinstance(module, (FiftyNetSpectralConvMixer, FiftyNetMLP)):
            output = module.out_proj if isinstance(module, FiftyNetSpectralConvMixer) else module.down_proj
            init.normal_(output.weight, mean=0.0, std=std / math.sqrt(2 * self.config.num_hidden_layers))


class FiftyNetModel(FiftyNetPreTrainedModel):
    """The bare FiftyNet stack: embeddings, `num_hidden_layers` [`FiftyNetBlock`]s and a final norm."""

    def __init__(self, config: FiftyNetConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        if config.position_encoding == "learned":
            self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(FiftyNetBlock(config, layer_idx) for layer_idx in range(config.num_hidden_layers))
        self.norm = FiftyNetRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: FiftyNetCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """
        Args:
            input_ids: `(batch, seq_len)` token ids; only the new tokens when `past_key_values` holds the past.
            attention_mask: `(batch, past_len + seq_len)` (or `(batch, seq_len)`), 1 for tokens, 0 for padding.
            position_ids: `(batch, seq_len)`, used by `position_encoding="learned"`; derived from `attention_mask`
                when omitted, so left padding does not shift positions.
            past_key_values: a [`FiftyNetCache`] from an earlier call, or None.
            inputs_embeds: `(batch, seq_len, hidden_size)`, instead of `input_ids`.
            use_cache: return the updated [`FiftyNetCache`] (defaults to `config.use_cache` outside training).
            output_hidden_states: also return the input of every block and the final output.

        Returns:
            [`BaseModelOutputWithPast`] with `last_hidden_state` of shape `(batch, seq_len, hidden_size)`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if past_key_values is not None and not isinstance(past_key_values, FiftyNetCache):
            raise ValueError(
                f"past_key_values must be a FiftyNetCache returned by this model, got {type(past_key_values).__name__}"
            )
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if use_cache and past_key_values is None:
            past_key_values = FiftyNetCache(self.config)

        if input_ids is not None:
            self._check_input_ids(input_ids)
            inputs_embeds = self.embed_tokens(input_ids)
        elif inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.hidden_size:
            raise ValueError(
                f"inputs_embeds must have shape (batch, seq_len, {self.config.hidden_size}), got "
                f"{tuple(inputs_embeds.shape)}"
            )
        batch_size, seq_len = inputs_embeds.shape[:2]
        if seq_len == 0:
            raise ValueError("The input sequence is empty: FiftyNet needs at least one token.")
        past_len = past_key_values.get_seq_length() if past_key_values is not None else 0
        attention_mask = self._check_attention_mask(attention_mask, batch_size, past_len, seq_len)

        hidden_states = inputs_embeds
        if self.config.position_encoding == "learned":
            if position_ids is None:
                position_ids = self._positions_from_mask(attention_mask, batch_size, past_len, seq_len, hidden_states.device)
            if int(position_ids.max()) >= self.config.max_position_embeddings:
                raise ValueError(
                    f"Position {int(position_ids.max())} is beyond max_position_embeddings="
                    f"{self.config.max_position_embeddings} of this model's learned position embeddings."
                )
            hidden_states = hidden_states + self.embed_positions(position_ids)

        padding_mask = None
        if attention_mask is not None and not bool(attention_mask[:, -seq_len:].all()):
            padding_mask = attention_mask[:, None, -seq_len:].to(hidden_states.dtype)

        all_hidden_states = () if output_hidden_states else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states = layer(hidden_states, padding_mask=padding_mask, past_key_values=past_key_values)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=all_hidden_states,
        )

    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        if input_ids.dtype.is_floating_point or input_ids.dtype.is_complex or input_ids.dtype == torch.bool:
            raise ValueError(f"input_ids must be an integer tensor of token ids, got dtype {input_ids.dtype}")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, seq_len), got {tuple(input_ids.shape)}")
        if input_ids.numel() == 0:
            raise ValueError("The input sequence is empty: FiftyNet needs at least one token.")
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            raise ValueError(
                f"input_ids must lie in [0, {self.config.vocab_size}) (config.vocab_size), got values from {low} to "
                f"{high}"
            )

    @staticmethod
    def _check_attention_mask(
        attention_mask: torch.Tensor | None, batch_size: int, past_len: int, seq_len: int
    ) -> torch.Tensor | None:
        """Accepts a 2D padding mask covering the past and new tokens, or only the new ones when there is no past."""
        if attention_mask is None:
            return None
        valid_shapes = {(batch_size, past_len + seq_len)}
        if past_len == 0:
            valid_shapes.add((batch_size, seq_len))
        if attention_mask.dim() != 2 or tuple(attention_mask.shape) not in valid_shapes:
            raise ValueError(
                f"attention_mask must be a 2D padding mask of shape (batch, past + new tokens) = "
                f"{(batch_size, past_len + seq_len)}, got {tuple(attention_mask.shape)}"
            )
        if attention_mask.dtype.is_floating_point and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
            raise ValueError("attention_mask must hold only 0 (padding) and 1 (token)")
        return attention_mask

    @staticmethod
    def _positions_from_mask(
        attention_mask: torch.Tensor | None, batch_size: int, past_len: int, seq_len: int, device: torch.device
    ) -> torch.LongTensor:
        """Position of each new token among the real tokens of its row (pads do not count)."""
        if attention_mask is None:
            return torch.arange(past_len, past_len + seq_len, device=device).expand(batch_size, seq_len)
        positions = attention_mask.long().cumsum(-1) - 1
        return positions.clamp(min=0)[:, -seq_len:]


class FiftyNetForCausalLM(FiftyNetPreTrainedModel, GenerationMixin):
    """FiftyNet with a language-modelling head (tied to the input embeddings by default)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: FiftyNetConfig):
        super().__init__(config)
        self.model = FiftyNetModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # `generate` must not build a key/value cache: `forward` creates the FiftyNetCache on its first call.
        return False

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: FiftyNetCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """
        Args:
            labels: `(batch, seq_len)` next-token targets, shifted inside the model (`labels = input_ids` works);
                -100 is ignored.
            logits_to_keep: compute logits for the last `logits_to_keep` positions only (0: all), or for the given
                indices.
            Other arguments: see [`FiftyNetModel.forward`].

        Returns:
            [`CausalLMOutputWithPast`] with `logits` of shape `(batch, seq_len or logits_to_keep, vocab_size)`.
        """
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state
        kept = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, kept, :])

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)

        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
        )


# `save_pretrained` then writes `auto_map` and copies these files, so a saved folder loads with trust_remote_code.
FiftyNetConfig.register_for_auto_class()
FiftyNetModel.register_for_auto_class("AutoModel")
FiftyNetForCausalLM.register_for_auto_class("AutoModelForCausalLM")

__all__ = [
    "FiftyNetCache",
    "FiftyNetForCausalLM",
    "FiftyNetModel",
    "FiftyNetPreTrainedModel",
]
