"""TRL's `SFTTrainer` fine-tunes a saved FiftyNet folder on prompt/completion pairs: the loss is the completion's only,
it goes down, and the saved output reloads, through its own remote code too."""

import json

import torch
from conftest import run_isolated
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

from fiftynet.training.corpus import load_corpus
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM


def chapter_openings(count: int) -> list[dict[str, str]]:
    """Prompt: a chapter's header line; completion: the chapter's first verse."""
    chapters = load_corpus("train").split("\n\n")[:count]
    return [{"prompt": f"{header}\n", "completion": verse}
            for header, verse, *_ in (chapter.split("\n") for chapter in chapters)]


@torch.no_grad()
def completion_loss(model, pairs: list[dict[str, str]]) -> float:
    """Mean negative log-likelihood per completion byte (and end-of-sequence token), prompts unscored."""
    eos = FiftyNetByteTokenizer().eos_token_id
    total = count = 0
    for pair in pairs:
        prompt, completion = list(pair["prompt"].encode()), [*pair["completion"].encode(), eos]
        logprobs = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1].log_softmax(-1)
        total -= logprobs.gather(-1, torch.tensor(completion)[:, None]).sum().item()
        count += len(completion)
    return total / count


def test_sft_trains_on_completions_only_and_its_output_reloads(tmp_path):
    torch.manual_seed(0)
    base = tmp_path / "base"
    FiftyNetForCausalLM(FiftyNetConfig(hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                                       filter_state_size=8)).save_pretrained(base)
    FiftyNetByteTokenizer().save_pretrained(base)
    pairs = chapter_openings(8)

    # TRL appends `eos_token` to each completion as text; the byte tokenizer keeps text that spells a special token
    # as bytes unless asked to match special tokens, which the end of sequence needs to be one token.
    tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=True, split_special_tokens=False)
    args = SFTConfig(output_dir=str(tmp_path / "sft"), trust_remote_code=True, max_steps=20,
                     per_device_train_batch_size=4, learning_rate=1e-2, logging_steps=1, save_strategy="no",
                     report_to="none", seed=0, use_cpu=True)  # TRL's default bf16 needs use_cpu on a CPU
    trainer = SFTTrainer(model=str(base), args=args, train_dataset=Dataset.from_list(pairs),
                         processing_class=tokenizer)

    for pair, example in zip(pairs, trainer.train_dataset):
        prompt, completion = list(pair["prompt"].encode()), list(pair["completion"].encode())
        assert example["input_ids"] == prompt + completion + [tokenizer.eos_token_id]
        assert example["labels"] == [-100] * len(prompt) + completion + [tokenizer.eos_token_id]
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all(), "padding is not scored"
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tokenizer.pad_token_id).all()

    before = completion_loss(trainer.model.eval(), pairs)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 20 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 1.0, losses
    trained = trainer.model.eval()
    assert completion_loss(trained, pairs) < before - 1.0

    out = tmp_path / "sft" / "final"
    trainer.save_model(out)
    reloaded = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
    # Weights, not logits: the Trainer's mixed precision wraps the trained model's forward in bf16 autocast.
    trained_weights, reloaded_weights = trained.state_dict(), reloaded.state_dict()
    assert trained_weights.keys() == reloaded_weights.keys()
    assert all(torch.equal(reloaded_weights[name], weight) for name, weight in trained_weights.items())
    probe = torch.tensor([list(pairs[0]["prompt"].encode() + pairs[0]["completion"].encode())])
    with torch.no_grad():
        expected = reloaded(probe).logits
    # The output keeps the tokenizer it was trained with, special tokens matched in text.
    assert AutoTokenizer.from_pretrained(out, trust_remote_code=True)("<|endoftext|>")["input_ids"] == [258]

    (tmp_path / "probe.json").write_text(json.dumps({"ids": probe.tolist(), "logits": expected.tolist()}))
    run_isolated(f"""
        import json
        import torch
        from transformers import AutoModelForCausalLM

        probe = json.load(open("probe.json"))
        model = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True).eval()
        with torch.no_grad():
            logits = model(torch.tensor(probe["ids"])).logits
        assert type(model).__name__ == "FiftyNetForCausalLM"
        torch.testing.assert_close(logits, torch.tensor(probe["logits"]), rtol=0, atol=1e-5)
    """, cwd=tmp_path)
