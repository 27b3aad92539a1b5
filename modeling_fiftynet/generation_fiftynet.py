"""Greedy decoding sped up by FiftyNet's chunk head (self-speculative decoding), beside the model as transformers keeps
model-specific generation loops (e.g. `generation_whisper.py`)."""

from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache
from transformers.utils import ModelOutput


@dataclass
class FiftyNetChunkGenerateOutput(ModelOutput):
    r"""
    What [`FiftyNetForCausalLM.generate_with_chunk_head`] returns with `return_dict_in_generate=True`.

    sequences (`torch.LongTensor` of shape `(batch, prompt_len + new_tokens)`):
        The prompts followed by the generated tokens, as greedy `generate()` gives them.
    forward_passes (`int`):
        Model calls made, the prefill included; greedy decoding makes one per new token.
    accepted_drafts (`int`):
        Drafted tokens that verification kept.
    """

    sequences: torch.LongTensor | None = None
    forward_passes: int | None = None
    accepted_drafts: int | None = None


class FiftyNetChunkHeadGenerationMixin:
    """`generate_with_chunk_head` for [`FiftyNetForCausalLM`], which provides `chunk_head`, `lm_head`, `config` and
    `generation_config`."""

    @torch.no_grad()
    def generate_with_chunk_head(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        max_new_tokens: int = 20,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        return_dict_in_generate: bool = False,
    ) -> torch.LongTensor | FiftyNetChunkGenerateOutput:
        """Greedy decoding sped up by the chunk head (self-speculative decoding): each step feeds the next token and
        the head's `chunk_head_size` drafts in one forward pass, keeps the drafts the model itself would have picked,
        and rolls the cache back over the others (see [`FiftyNetMixerState`]). The kept tokens are those of greedy
        `generate()` whatever the drafts; good drafts only mean fewer forward passes.

        In a batch, every row keeps the drafts that all unfinished rows accept, so the rows stay aligned.

        Args:
            input_ids: `(batch, prompt_len)` prompts (left-padded in a batch, with `attention_mask`).
            attention_mask: `(batch, prompt_len)`, 1 for tokens and 0 for padding.
            max_new_tokens: number of tokens to generate (fewer if every row ends).
            eos_token_id / pad_token_id: end-of-sequence id(s), and the id that fills a row after its end; default
                to the generation config's.
            return_dict_in_generate: return a [`FiftyNetChunkGenerateOutput`] with the number of forward passes
                and accepted drafts instead of the sequences alone.

        Returns:
            `(batch, prompt_len + new_tokens)` token ids, or a [`FiftyNetChunkGenerateOutput`].
        """
        if self.chunk_head is None:
            raise ValueError(
                "generate_with_chunk_head drafts with the chunk head, but this model has no chunk head "
                "(config.chunk_head_size=0); train one with `fiftynet chunk-head`."
            )
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        eos_token_id = self.generation_config.eos_token_id if eos_token_id is None else eos_token_id
        pad_token_id = self.generation_config.pad_token_id if pad_token_id is None else pad_token_id
        eos_ids = torch.tensor([eos_token_id] if isinstance(eos_token_id, int) else eos_token_id or [],
                               dtype=torch.long, device=input_ids.device)
        if len(eos_ids) and pad_token_id is None:
            raise ValueError("pad_token_id is needed to fill the rows that end before the others")

        cache = DynamicCache(config=self.config)
        outputs = self(input_ids, attention_mask=attention_mask, cache=cache, use_cache=True, logits_to_keep=1,
                       output_chunk_logits=True)
        # Recording starts after the prefill, whose tokens are never rolled back.
        cache.activate_past_recording()
        drafts = outputs.chunk_logits[:, -1].argmax(-1)
        verified = [outputs.logits[:, -1].argmax(-1)]  # greedy's next tokens, not yet appended
        new_tokens, unfinished = [], torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        forward_passes, accepted_drafts = 1, 0
        while True:
            for token in verified:
                if pad_token_id is not None:
                    token = token.masked_fill(~unfinished, pad_token_id)
                new_tokens.append(token)
                unfinished &= ~torch.isin(token, eos_ids)
                if len(new_tokens) == max_new_tokens or not unfinished.any():
                    break
            if len(new_tokens) == max_new_tokens or not unfinished.any():
                break
            # Drafts past the last token asked for would be wasted (and could pass learned positions' limit).
            drafts = drafts[:, : max_new_tokens - len(new_tokens) - 1]
            candidates = torch.cat([new_tokens[-1][:, None], drafts], dim=1)
            if attention_mask is not None:
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones(candidates.shape)], dim=1)
            # The drafts are needed at one position only (after the last accepted token), so the head runs there
            # alone: drafting from every candidate would cost chunk_head_size LM-head products per candidate.
            outputs = self(candidates, attention_mask=attention_mask, cache=cache, use_cache=True,
                           output_hidden_states=True)
            forward_passes += 1
            # predicted[:, i] is greedy's token after candidates[:, : i + 1]; rows that ended accept anything.
            predicted = outputs.logits.argmax(-1)
            agrees = (predicted[:, :-1] == drafts) | ~unfinished[:, None]
            accepted = int(agrees.long().cumprod(dim=1).sum(dim=1).min())
            rejected = drafts.shape[1] - accepted
            cache.crop(-rejected)
            if attention_mask is not None:
                attention_mask = attention_mask[:, : attention_mask.shape[1] - rejected]
            accepted_drafts += accepted
            verified = [*drafts[:, :accepted].unbind(1), predicted[:, accepted]]
            drafts = self.chunk_head(outputs.hidden_states[-1][:, accepted, None], self.lm_head)[:, 0].argmax(-1)

        sequences = torch.cat([input_ids, torch.stack(new_tokens, dim=1)], dim=1)
        if return_dict_in_generate:
            return FiftyNetChunkGenerateOutput(
                sequences=sequences, forward_passes=forward_passes, accepted_drafts=accepted_drafts
            )
        return sequences


__all__ = ["FiftyNetChunkGenerateOutput", "FiftyNetChunkHeadGenerationMixin"]
