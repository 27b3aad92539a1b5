"""The decoding state of FiftyNet models, and the one place where FiftyNet meets what differs between transformers
releases.

transformers keeps a model's decoding state in a `Cache` of per-layer cache layers, which `DynamicCache(config)`
builds from `config.layer_types`; `generate()` builds it, rolls it back for assisted generation
(`activate_past_recording`, `crop`), reorders it for beam search and hands it back. A FiftyNet model's cache is such a
`DynamicCache(config=model.config)`: its attention layers are transformers' own `DynamicLayer`s, its spectral mixers'
layers are [`FiftyNetMixerState`]s, a cache-layer type this file registers with transformers under
`MIXER_STATE_LAYER_TYPE` (`CacheLayerMixin._layer_type`, the hook transformers offers modeling files). They keep
what those mixers need and roll it back exactly (see docs/design_cache.md for why they are not transformers'
`LinearAttentionLayer`).

What differs between the admitted releases (transformers 5.17 to 5.25), each handled here only:
- 5.24 renamed the cache argument of `forward` and the cache field of model outputs from `past_key_values` to
  `cache` (`CACHE_NAME`, `one_cache`).
- 5.25 passes `recurrent_states_to_keep` to `activate_past_recording` and reads it back through
  `Cache.get_recurrent_states_to_keep` (`FiftyNetMixerState.activate_past_recording`).
- `generate()` hands its generation-mode arguments (`tokenizer`, `assistant_tokenizer`) on to `forward` with the
  model inputs (`GENERATION_ONLY_KWARGS`).
- Some releases pass `crop` the number of tokens to remove as a 0-d tensor (`FiftyNetMixerState.crop`).
"""

from collections.abc import Callable
from dataclasses import fields

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache, DynamicLayer
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_fiftynet import MIXER_STATE_LAYER_TYPE, FiftyNetConfig


# transformers 5.24 renamed the cache argument of `forward` and the cache field of model outputs from
# `past_key_values` to `cache`. `generate` passes the cache to the model, and reads it back from the outputs, under the
# name the output classes declare, so the running release's output classes tell which name to write. `forward`
# accepts both.
CACHE_NAME = "cache" if "cache" in {field.name for field in fields(CausalLMOutputWithPast)} else "past_key_values"

# Keyword arguments that transformers passes to every model and that FiftyNet accepts without using: the loss
# normaliser of gradient accumulation is given to the loss; `output_attentions` may only ask for no attention weights.
# Anything else is refused by name, so that an argument renamed in a later release fails instead of being dropped.
ACCEPTED_EXTRA_KWARGS = ("num_items_in_batch", "output_attentions")
# What `generate()` passes to `forward` beside the model inputs, in every admitted release: the arguments of its
# generation mode (`stop_strings` needs the tokenizer, universal assisted generation both tokenizers). They are not
# inputs of the model, so `forward` ignores them.
GENERATION_ONLY_KWARGS = ("tokenizer", "assistant_tokenizer")


def check_extra_kwargs(method: str, kwargs: dict, also: tuple[str, ...] = ()) -> None:
    """Raises for keyword arguments `method` does not take (`also`: those it takes beside `ACCEPTED_EXTRA_KWARGS`),
    and for `output_attentions=True`."""
    unknown = sorted(set(kwargs) - set(ACCEPTED_EXTRA_KWARGS) - set(GENERATION_ONLY_KWARGS) - set(also))
    if unknown:
        raise TypeError(f"{method}() got unexpected keyword argument(s) {', '.join(unknown)}")
    if kwargs.get("output_attentions"):
        raise ValueError("output_attentions=True is not supported: FiftyNet's mixers return no attention weights")


def one_cache(cache: Cache | None, past_key_values: Cache | None) -> Cache | None:
    """The cache passed as `cache` or as `past_key_values` (its name before transformers 5.24)."""
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError(
            "Two different caches were passed, as `cache` and as `past_key_values`: pass one (this transformers "
            f"release's generate() passes it as `{CACHE_NAME}`)."
        )
    return cache if cache is not None else past_key_values


class FiftyNetMixerState(CacheLayerMixin):
    """Recurrent state of one block's token mixer, a layer of a transformers cache: what a new token needs from the
    past. `DynamicCache(config)` builds one for each layer whose `config.layer_types` entry is `MIXER_STATE_LAYER_TYPE`.

    The mixer of the block decides what it keeps in `tensors` (all batch-first, so beam search can reorder them):
    - `"spectral_conv"`: `conv_inputs` `(batch, 3 * hidden_size, short_conv_size - 1)`, the last inputs of the short
      convolution, and `filter_state` `(batch, hidden_size, filter_state_size)` complex, the modes of the filter.
    - `"nfo"` / `"fftnet"`: `filter_inputs` `(batch, hidden_size, fourier_kernel_size - 1)`, the inputs the finite
      filter still reaches; `"fftnet"` also `context_sum` `(batch, hidden_size)` and `context_count` `(batch, 1)`.
    None of them grows with the context (attention's keys and values, which do, are in transformers' `DynamicLayer`).

    Rolling back. A state summarises the past, so it cannot forget tokens by itself. After `activate_past_recording()`
    (as transformers' assisted generation calls it), each forward call also keeps, for every tensor it updates, a
    `replay(kept)` that rebuilds the tensor as if only the first `kept` tokens of that call had been seen. `crop` then
    removes any number of the tokens fed since recording started or since the last crop, over any number of calls,
    exactly: what speculative decoding needs to reject drafted tokens. A crop keeps the replays of the call it cut
    into and forgets older ones, so the memory held is that of the calls between two crops (a draft), not of the
    context. Setting `record_past = False` forgets them too.
    """

    _layer_type = MIXER_STATE_LAYER_TYPE  # registers the class in transformers' table of cache-layer types
    is_compileable = False
    is_sliding = False
    supports_early_init = False

    def __init__(self, **kwargs):
        # Not CacheLayerMixin.__init__: a mixer state holds no keys and values. (transformers passes per-layer
        # keyword arguments; this layer type takes none.)
        self.tensors: dict[str, torch.Tensor] = {}
        self.seq_length = 0
        self.device: torch.device | None = None
        # The config fields its tensors were made for (`cache_architecture`), set by the first model that uses it.
        self.architecture: dict | None = None
        self._record_past = False
        self.recurrent_states_to_keep = 0
        # Replays recorded during the current call, and the calls that can still be undone, oldest first, with
        # their token counts.
        self._pending_replays: dict[str, Callable[[int], torch.Tensor]] = {}
        self._recorded_calls: list[tuple[int, dict[str, Callable[[int], torch.Tensor]]]] = []

    @property
    def record_past(self) -> bool:
        return self._record_past

    @record_past.setter
    def record_past(self, value: bool) -> None:
        # transformers turns recording off by setting this attribute when it hands a cache back.
        self._record_past = value
        if not value:
            self._pending_replays, self._recorded_calls = {}, []

    @property
    def is_initialized(self) -> bool:
        return bool(self.tensors)

    @property
    def is_croppable(self) -> bool:
        return self.record_past

    def get_seq_length(self) -> int:
        return self.seq_length

    def get_max_length(self) -> int:
        return -1

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """The key length and offset of a causal mask over this layer's past and `query_length` new tokens."""
        return self.seq_length + query_length, 0

    # CacheLayerMixin's key/value methods, which only attention calls: a mixer state has no keys and values.
    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise TypeError(f"{type(self).__name__} is a spectral mixer's state: it holds no keys and values")

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        self.lazy_initialization(key_states, value_states)  # raises

    def offload(self) -> None:
        self.tensors = {name: tensor.to("cpu", non_blocking=True) for name, tensor in self.tensors.items()}

    def prefetch(self) -> None:
        self.tensors = {name: tensor.to(self.device, non_blocking=True) for name, tensor in self.tensors.items()}

    def store(self, name: str, value: torch.Tensor, replay: Callable[[int], torch.Tensor]) -> None:
        """Sets `tensors[name] = value`; `replay(kept)` gives the value after only the first `kept` tokens of this
        call (kept only while recording the past)."""
        self.tensors[name] = value
        self.device = value.device
        if self.record_past:
            self._pending_replays[name] = replay

    def store_window(self, name: str, extended: torch.Tensor, size: int) -> None:
        """Keeps the last `size` positions of `extended` (the previous window followed by this call's tokens, on the
        last dimension) as `tensors[name]`."""
        def window(kept: int) -> torch.Tensor:
            # A copy: a view would keep all of `extended` (as long as the prompt, after a prefill) alive.
            return extended[..., kept : kept + size].clone()

        self.store(name, window(extended.shape[-1] - size), replay=window)

    def advance(self, num_tokens: int) -> None:
        """Counts the `num_tokens` tokens of the call that just updated the state."""
        self.seq_length += num_tokens
        if self.record_past:
            self._recorded_calls.append((num_tokens, self._pending_replays))
        self._pending_replays = {}

    def activate_past_recording(self, recurrent_states_to_keep: int | None = None) -> None:
        """Starts recording what `crop` needs. `recurrent_states_to_keep` (transformers 5.25 on) is how many tokens
        transformers may remove: its own layers keep that many states per token, whereas a replay rebuilds a state
        only when a crop asks for it, so any number of tokens fed while recording can be removed and the count is
        only reported back (`Cache.get_recurrent_states_to_keep`)."""
        self.recurrent_states_to_keep = recurrent_states_to_keep or 0
        self.record_past = True

    def crop(self, tokens_to_remove: int) -> None:
        """Forgets the last `-tokens_to_remove` tokens (a negative count, as transformers' cache layers take it).
        Only tokens fed while recording the past, since recording started or since the last crop, can be removed; a
        crop of 0 tokens keeps everything and forgets the replays."""
        remove = self.removable(tokens_to_remove)
        self.seq_length -= remove
        cut_into = []  # the call the crop ends in, which can still be cut further; older calls are forgotten
        while remove:
            length, replays = self._recorded_calls.pop()
            kept = max(length - remove, 0)
            remove -= length - kept
            self.tensors.update({name: replay(kept) for name, replay in replays.items()})
            if kept:
                cut_into = [(kept, replays)]
        self._recorded_calls = cut_into

    def removable(self, tokens_to_remove: int) -> int:
        """The number of tokens `crop(tokens_to_remove)` removes; raises a `ValueError` if it cannot remove them."""
        tokens_to_remove = int(tokens_to_remove)  # some transformers releases pass a 0-d tensor
        if tokens_to_remove > 0:  # the length to keep, refused by transformers' own layers since 5.18
            raise ValueError(
                "crop takes minus the number of tokens to remove, as transformers' cache layers do, got "
                f"{tokens_to_remove}"
            )
        remove = -tokens_to_remove
        if remove and not self.record_past:
            raise ValueError(
                "A FiftyNet state summarises the whole past and forgets tokens only while it records the past: call "
                "`cache.activate_past_recording()` before the forward calls whose tokens you may remove."
            )
        recorded = sum(length for length, _ in self._recorded_calls)
        if remove > recorded:
            raise ValueError(
                f"Cannot remove {remove} token(s): only the {recorded} token(s) fed since recording started or since "
                "the last crop can be removed from a FiftyNet state."
            )
        return remove

    def _apply_to_states(self, fn) -> None:
        self.tensors = {name: fn(tensor) for name, tensor in self.tensors.items()}
        # Recorded replays refer to the old batch order.
        self._recorded_calls = []

    def reset(self) -> None:
        self.tensors = {}
        self.seq_length = 0
        self.architecture = None
        self._pending_replays, self._recorded_calls = {}, []

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._apply_to_states(lambda state: state.index_select(0, beam_idx.to(state.device)))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._apply_to_states(lambda state: state[indices])

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._apply_to_states(lambda state: state.repeat_interleave(repeats, dim=0))


def is_mixer_state(layer) -> bool:
    """Whether a cache layer is a [`FiftyNetMixerState`]. Compared by layer type rather than by class: the modeling
    files imported as remote code (one module per model folder) and as this package each define the class, and
    transformers builds whichever registered last."""
    return getattr(layer, "_layer_type", None) == MIXER_STATE_LAYER_TYPE


def fill_empty_cache(cache: Cache, config: FiftyNetConfig) -> None:
    """Gives a cache without layers (`DynamicCache()`, made without a config) the layers of a model of `config`, as
    transformers' own models fill such a cache on first use."""
    if not cache.layers:
        cache.layers.extend(DynamicCache(config=config).layers)


def check_cache(cache: Cache, config: FiftyNetConfig, batch_size: int) -> None:
    """Raises a `ValueError` naming the difference if `cache` does not fit a model of `config` and inputs of
    `batch_size` sequences. A cache without layers gets the model's (`fill_empty_cache`).
    """
    layer_types = config.layer_types
    if not isinstance(cache, Cache):
        raise ValueError(
            f"The cache must be a transformers Cache, DynamicCache(config=model.config), got {type(cache).__name__}"
        )
    fill_empty_cache(cache, config)
    if len(cache.layers) != len(layer_types):
        raise ValueError(
            f"The cache has {len(cache.layers)} layers but this model has {len(layer_types)}: pass the cache this "
            "model returned, or DynamicCache(config=model.config)."
        )
    expected = cache_architecture(config)
    for index, (layer, layer_type) in enumerate(zip(cache.layers, layer_types)):
        if layer_type == MIXER_STATE_LAYER_TYPE:
            fits, kind = is_mixer_state(layer), FiftyNetMixerState.__name__
        else:  # attention keeps every key and value: the sliding, static and indexed layers would lose or pad some
            fits, kind = type(layer) is DynamicLayer, DynamicLayer.__name__
        if not fits:
            raise ValueError(
                f"Layer {index} of the cache is a {type(layer).__name__}, but this model's layer {index} "
                f"({config.mixer_types[index]}) keeps its state in a {kind}: pass DynamicCache(config=model.config) "
                "or the cache this model returned."
            )
        if layer_type == MIXER_STATE_LAYER_TYPE:
            if layer.architecture is None:
                layer.architecture = expected
            elif layer.architecture != expected:
                raise ValueError(
                    f"This cache was made for another FiftyNet ({layer.architecture}), not this one ({expected}): "
                    "pass the cache this model returned."
                )
            cached = next(iter(layer.tensors.values()), None)
        else:
            cached = layer.keys if layer.get_seq_length() else None
            heads, head_dim = config.attention_key_value_heads, config.attention_head_dim
            if cached is not None and (cached.shape[1], cached.shape[3]) != (heads, head_dim):
                raise ValueError(
                    f"Layer {index} of the cache holds {cached.shape[1]} heads of size {cached.shape[3]}, but this "
                    f"model's attention keeps {heads} of size {head_dim}: pass the cache this model returned."
                )
        if cached is not None and cached.shape[0] != batch_size:
            raise ValueError(
                f"The cache holds {cached.shape[0]} sequence(s) (layer {index}) but the inputs have {batch_size}."
            )
    lengths = [int(layer.get_seq_length()) for layer in cache.layers]
    if len(set(lengths)) > 1:
        raise ValueError(
            f"The cache's layers hold different numbers of tokens ({lengths}), as a crop that failed part-way "
            "leaves them: pass a cache this model returned."
        )


def cache_architecture(config: FiftyNetConfig) -> dict:
    """The config fields that decide what a cache's states are: their mixers (those of the layers that run, fewer for
    early exit) and sizes."""
    return {
        "mixer_types": list(config.mixer_types[: config.num_hidden_layers]),
        **{name: getattr(config, name) for name in
           ("hidden_size", "filter_state_size", "short_conv_size", "fourier_kernel_size", "num_attention_heads")},
    }


__all__ = ["FiftyNetMixerState"]
