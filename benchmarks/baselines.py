"""The attention baselines the benchmarks train next to FiftyNet: transformers' own models, built at a given size.

- `gpt2`: `GPT2LMHeadModel` (learned absolute positions, LayerNorm, 4x GELU MLP, biases).
- `llama`: `LlamaForCausalLM` (rotary positions, RMSNorm, SwiGLU MLP, no biases), the "Transformer++" recipe that
  state-space and convolution papers (Mamba, Zoology) compare against; its MLP has FiftyNet's default width, 8/3 of
  the hidden size rounded up to a multiple of 64.

Both use PyTorch SDPA attention and no dropout (FiftyNet has none), and tie the LM head to the embeddings.
"""

from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

ATTENTION_BASELINES = ("gpt2", "llama")


def attention_baseline(
    name: str,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    max_positions: int,
    **special_token_ids: int | None,
) -> PreTrainedModel:
    """`name` ("gpt2" or "llama") with `num_layers` blocks of width `hidden_size`, `num_heads` heads, room for
    `max_positions` tokens (GPT-2's position table), and the given `pad/bos/eos_token_id`s.

    Raises:
        ValueError: for a name not in `ATTENTION_BASELINES`.
    """
    if name == "gpt2":
        config = GPT2Config(vocab_size=vocab_size, n_positions=max_positions, n_embd=hidden_size, n_layer=num_layers,
                            n_head=num_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **special_token_ids)
        return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa")
    if name == "llama":
        config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
                             num_attention_heads=num_heads, num_key_value_heads=num_heads,
                             intermediate_size=-(-8 * hidden_size // 3 // 64) * 64,
                             max_position_embeddings=max_positions,
                             rms_norm_eps=1e-6, tie_word_embeddings=True, **special_token_ids)
        return LlamaForCausalLM._from_config(config, attn_implementation="sdpa")
    raise ValueError(f"unknown attention baseline {name!r}: expected one of {ATTENTION_BASELINES}")
