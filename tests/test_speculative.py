"""Rolling a FiftyNet state back, and speculative decoding on top of it: the chunk head (self-speculative) and
transformers' assisted generation. Whatever the drafts, the output must be greedy decoding's."""

import pytest
import torch
from test_modeling import ALL_VARIANTS, assert_same_logits, cache_of, random_ids, tiny_model, variant_id
from transformers import AutoModelForCausalLM

from modeling_fiftynet import FiftyNetForCausalLM
from training import chunk_head
from training.corpus import load_corpus
from training.tokenizer import load_tokenizer


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=variant_id)
def test_crop_rolls_back_exactly_within_and_across_calls(variant):
    """As an assistant drafts: one token per call, then a crop that removes several calls and part of another, a
    second crop within the call it cut into, and a round whose drafts are all rejected."""
    model = tiny_model(**variant)
    ids, drafts = random_ids(2, 30), random_ids(2, 6, seed=9)
    with torch.no_grad():
        cache = cache_of(model(ids[:, :10], use_cache=True))
        cache.activate_past_recording()
        model(ids[:, 10:12], cache=cache)  # kept
        model(torch.cat([ids[:, 12:13], drafts[:, :3]], dim=1), cache=cache)  # its first token is kept
        for token in drafts[:, 3:].unbind(1):
            model(token[:, None], cache=cache)
        cache.crop(-5)  # 3 one-token calls and 2 tokens of the 4-token call
        cache.crop(-1)  # a second crop within the call it cut into
        assert cache.get_seq_length() == 13
        for t in range(3):
            model(drafts[:, t : t + 1], cache=cache)
        cache.crop(-3)
        continued = model(ids[:, 13:20], cache=cache).logits
        expected = model(ids[:, :20]).logits[:, 13:]
        kept_a_draft = model(torch.cat([ids[:, :13], drafts[:, :1]], dim=1)).logits[:, -1]
    assert_same_logits(continued, expected)
    assert (kept_a_draft - expected[:, 0]).abs().max() > 1e-3  # the test can fail


def test_crop_refuses_what_it_cannot_undo_and_forgets_what_it_no_longer_needs():
    model = tiny_model()
    with torch.no_grad():
        cache = cache_of(model(random_ids(1, 8), use_cache=True))
        with pytest.raises(ValueError, match="activate_past_recording"):
            cache.crop(-1)
        cache.activate_past_recording()
        model(random_ids(1, 3), cache=cache)
        model(random_ids(1, 2), cache=cache)
        with pytest.raises(ValueError, match="only the 5 token"):
            cache.crop(-6)  # the prefill was not recorded
        assert cache.get_seq_length() == 13  # a refused crop changes nothing
        cache.crop(-4)  # two calls back: what is older than the call it cut into is forgotten
        assert cache.get_seq_length() == 9 and all(len(layer._recorded_calls) == 1 for layer in cache.layers)
        cache.crop(-1)
        assert cache.get_seq_length() == 8
        with pytest.raises(ValueError, match="only the 0 token"):
            cache.crop(-1)
        model(random_ids(1, 3), cache=cache)
        cache.crop(0)  # keeps every token and forgets how to remove them, as a sliding-window layer does
        with pytest.raises(ValueError, match="only the 0 token"):
            cache.crop(-1)
        for _ in range(5):
            model(random_ids(1, 1), cache=cache)
        cache.crop(15)  # a positive value is the length to keep, as in older transformers releases
        assert cache.get_seq_length() == 15
        model(random_ids(1, 1), cache=cache)
        cache.layers[0].record_past = False  # how transformers stops recording: the replays go with it
        assert cache.layers[0]._recorded_calls == [] and len(cache.layers[1]._recorded_calls) == 1


def chunk_head_model(variant: dict, chunk_head_size: int = 3) -> FiftyNetForCausalLM:
    model = tiny_model(chunk_head_size=chunk_head_size, **variant)
    torch.nn.init.normal_(model.chunk_head.weight, std=0.3)  # drafts that differ from the next-token guess
    return model


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=variant_id)
def test_chunk_head_decoding_equals_greedy_generate(variant):
    model = chunk_head_model(variant)
    ids = random_ids(3, 12)
    mask = torch.ones_like(ids)
    mask[1, :5] = 0  # left padding
    greedy = model.generate(ids, attention_mask=mask, max_new_tokens=25, do_sample=False, pad_token_id=256)
    # Token 258 is the end of sequence: rows that end early are padded, as generate() pads them.
    output = model.generate_with_chunk_head(ids, attention_mask=mask, max_new_tokens=25,
                                            return_dict_in_generate=True)
    assert torch.equal(output.sequences, greedy)


@pytest.mark.parametrize("drafts", ["right", "wrong"])
def test_chunk_head_passes_depend_only_on_draft_quality(drafts):
    """Perfect drafts need one pass per `chunk_head_size + 1` tokens; wrong ones one pass per token, and the output
    is greedy's either way."""
    model = tiny_model(chunk_head_size=3)
    ids = random_ids(1, 10)
    greedy = model.generate(ids, max_new_tokens=24, do_sample=False, pad_token_id=256, eos_token_id=None)
    positions = []

    def drafts_for(hidden_states, lm_head):
        # The drafts of the last position fed so far: greedy's next 3 tokens after it, or tokens that never match.
        end = positions[-1]
        logits = torch.zeros(1, hidden_states.shape[1], 3, model.config.vocab_size)
        for t in range(hidden_states.shape[1]):
            after = end - hidden_states.shape[1] + t + 1  # tokens before and at position t
            future = greedy[0, after + 1 : after + 4]
            future = torch.nn.functional.pad(future, (0, 3 - len(future)))
            if drafts == "wrong":
                future = (future + 1) % model.config.vocab_size
            logits[0, t].scatter_(-1, future[:, None], 1.0)
        return logits

    original_forward = model.forward

    def recording_forward(input_ids=None, cache=None, **kwargs):
        past = cache.get_seq_length() if cache is not None else 0
        positions.append(past + input_ids.shape[1])
        return original_forward(input_ids=input_ids, cache=cache, **kwargs)

    model.forward = recording_forward
    model.chunk_head.forward = drafts_for
    output = model.generate_with_chunk_head(ids, max_new_tokens=24, eos_token_id=[], return_dict_in_generate=True)
    assert torch.equal(output.sequences, greedy)
    if drafts == "right":
        # The prefill gives 1 token; each later pass 3 drafts and 1 token of its own: 6 passes for the other 23.
        assert output.forward_passes == 1 + 6 and output.accepted_drafts == 23 - 6
    else:
        assert output.forward_passes == 24 and output.accepted_drafts == 0


def test_chunk_loss_is_the_cross_entropy_of_each_draft_against_its_future_token():
    model = chunk_head_model({}, chunk_head_size=2)
    ids = random_ids(2, 16)
    output = model(ids, labels=ids, output_chunk_logits=True)
    losses = [
        torch.nn.functional.cross_entropy(
            output.chunk_logits[:, : 16 - 1 - draft, draft - 1].flatten(0, 1), ids[:, 1 + draft :].flatten()
        )
        for draft in (1, 2)
    ]
    torch.testing.assert_close(output.chunk_loss, torch.stack(losses).mean())
    torch.testing.assert_close(output.loss, model(ids, labels=ids).loss)  # the LM loss is unchanged
    assert model(ids, labels=ids).chunk_logits is None and model(ids).chunk_loss is None


def test_chunk_head_round_trips_and_is_refused_when_absent(tmp_path):
    model = chunk_head_model({}, chunk_head_size=2)
    model.save_pretrained(tmp_path)
    reloaded = FiftyNetForCausalLM.from_pretrained(tmp_path)
    ids = random_ids(1, 9)
    with torch.no_grad():
        assert torch.equal(model(ids, output_chunk_logits=True).chunk_logits,
                           reloaded(ids, output_chunk_logits=True).chunk_logits)
    plain = tiny_model()
    with pytest.raises(ValueError, match="no chunk head"):
        plain.generate_with_chunk_head(ids)
    with pytest.raises(ValueError, match="no chunk head"):
        plain(ids, output_chunk_logits=True)


@pytest.mark.parametrize("variant", [ALL_VARIANTS[0], ALL_VARIANTS[6], ALL_VARIANTS[-1]], ids=variant_id)
def test_transformers_assisted_generation_equals_greedy(variant):
    model = tiny_model(**variant)
    ids = random_ids(1, 12).repeat(1, 3)  # repeats give prompt lookup something to find
    greedy = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=256)
    lookup = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=256, prompt_lookup_num_tokens=4)
    assistant = tiny_model(seed=5, **variant)
    assisted = model.generate(ids, max_new_tokens=20, do_sample=False, pad_token_id=256, assistant_model=assistant)
    assert torch.equal(lookup, greedy) and torch.equal(assisted, greedy)


def test_chunk_head_command_trains_the_head_only_and_keeps_greedy_output(tmp_path):
    base = tmp_path / "base"
    model = tiny_model()
    model.save_pretrained(base)
    load_tokenizer("byte").save_pretrained(base)
    text = tmp_path / "text.txt"
    text.write_text(load_corpus("validation")[:20_000])
    metrics = chunk_head.main(["--model", str(base), "--data", str(text), "--output_dir", str(tmp_path / "out"),
                               "--chunk_head_size", "2", "--block_size", "32", "--per_device_train_batch_size", "8",
                               "--max_steps", "15", "--learning_rate", "1e-2", "--report_to", "none",
                               "--eval_strategy", "no", "--save_strategy", "no", "--decode_prompts", "2",
                               "--prompt_tokens", "8", "--new_tokens", "12"])
    assert metrics["chunk_loss_after"] < metrics["chunk_loss_before"]
    assert metrics["decoding"]["identical_to_greedy"] and metrics["decoding"]["tokens_per_forward_pass"] >= 1
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model")
    assert trained.config.chunk_head_size == 2
    ids = random_ids(1, 10)
    with torch.no_grad():  # the backbone is the base model's, untouched
        torch.testing.assert_close(trained(ids).logits, model(ids).logits, rtol=0, atol=0)
    assert "chunk head" in (tmp_path / "out" / "model" / "README.md").read_text()
