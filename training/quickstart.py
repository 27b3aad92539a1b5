"""`fiftynet quickstart`: train a small byte-level FiftyNet on the bundled corpus, save it, reload it, sample from it.

Sized to finish in about five minutes on two CPU cores; on a GPU the same command runs there.
"""

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    set_seed,
)

from fiftynet.hub_cards.card import CardRecord, Measurement
from fiftynet.hub_cards.help_format import HelpFormatter
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetConfig, FiftyNetForCausalLM
from modeling_fiftynet.saving import staged_folder

from .corpus import CORPUS_NAME, load_corpus
from .data import packed_blocks
from .errors import claimed, positive_float, positive_int, refuse_non_empty


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output_dir", "--output-dir", type=Path, default=Path("fiftynet-quickstart"),
                        help="where the model goes: a new or empty folder")
    parser.add_argument("--overwrite_output_dir", "--overwrite-output-dir", action="store_true",
                        help="replace the model in a non-empty --output_dir (an earlier quickstart)")
    parser.add_argument("--max_steps", "--max-steps", type=positive_int, default=400,
                        help="AdamW steps: 5%% warm-up, then cosine decay")
    parser.add_argument("--batch_size", "--batch-size", type=positive_int, default=16, help="sequences per step")
    parser.add_argument("--block_size", "--block-size", type=positive_int, default=256,
                        help="bytes per training sequence")
    parser.add_argument("--hidden_size", "--hidden-size", type=positive_int, default=192, help="width of the model")
    parser.add_argument("--num_layers", "--num-layers", type=positive_int, default=4, help="FiftyNet blocks")
    parser.add_argument("--learning_rate", "--learning-rate", type=positive_float, default=3e-3,
                        help="peak learning rate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialization, batches and sample")
    parser.add_argument("--prompt", default="And God said", help="text the sample at the end continues")
    parser.add_argument("--max_new_tokens", "--max-new-tokens", type=positive_int, default=200,
                        help="bytes sampled after the prompt")


def unigram_bits_per_byte(train: bytes, validation: bytes) -> float:
    """Cross-entropy of the validation bytes under the train bytes' add-one-smoothed frequencies, in bits."""
    counts = torch.bincount(torch.frombuffer(bytearray(train), dtype=torch.uint8).long(), minlength=256) + 1.0
    log2_probs = (counts / counts.sum()).log2()
    validation_bytes = torch.frombuffer(bytearray(validation), dtype=torch.uint8).long()
    return -log2_probs[validation_bytes].mean().item()


def training_arguments(args: argparse.Namespace, output_dir: str, **overrides) -> TrainingArguments:
    """The quickstart's recipe: AdamW, 5% warm-up then cosine decay, weight decay 0.1, no checkpoints, no reporting
    integrations. `overrides` replace any `TrainingArguments` field."""
    settings = dict(
        output_dir=output_dir,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=2 * args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=0.1,
        warmup_steps=max(1, args.max_steps // 20),
        lr_scheduler_type="cosine",
        logging_steps=max(1, args.max_steps // 10),
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    return TrainingArguments(**(settings | overrides))


def train_and_evaluate(
    model: FiftyNetForCausalLM,
    tokenizer: FiftyNetByteTokenizer,
    train_set: Dataset,
    validation_set: Dataset,
    args: argparse.Namespace,
) -> tuple[float, str]:
    """Trains with `transformers.Trainer`; returns the validation loss (nats per token) and the device used."""
    # No checkpoints are kept, so the Trainer's own folder is temporary and stays out of the Hub-ready folder.
    with tempfile.TemporaryDirectory() as trainer_dir:
        training_args = training_arguments(args, trainer_dir)
        trainer = Trainer(
            model=model,
            args=training_args,
            train_dataset=train_set,
            eval_dataset=validation_set,
            data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        )
        trainer.train()
        return trainer.evaluate()["eval_loss"], str(training_args.device)


def run(args: argparse.Namespace) -> dict:
    if not args.overwrite_output_dir:  # before minutes of training, not at the save
        refuse_non_empty(args.output_dir, "--output_dir")
    start = time.time()
    set_seed(args.seed)
    tokenizer = FiftyNetByteTokenizer()
    train_text, validation_text = load_corpus("train"), load_corpus("validation")
    train_set = packed_blocks(tokenizer(train_text)["input_ids"], args.block_size)
    validation_set = packed_blocks(tokenizer(validation_text)["input_ids"], args.block_size)

    config = FiftyNetConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_layers,
        max_position_embeddings=args.block_size,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = FiftyNetForCausalLM(config)
    print(f"FiftyNet: {model.num_parameters() / 1e6:.2f}M parameters, {len(train_set)} training blocks of "
          f"{args.block_size} bytes, {args.max_steps} steps of {args.batch_size} blocks")

    eval_loss, device = train_and_evaluate(model, tokenizer, train_set, validation_set, args)
    # One token is one byte, so nats per token / ln 2 is bits per byte.
    bits_per_byte = eval_loss / math.log(2)
    baseline = unigram_bits_per_byte(train_text.encode(), validation_text.encode())
    train_seconds = time.time() - start

    metrics = {
        "validation_bits_per_byte": bits_per_byte,
        "unigram_bits_per_byte": baseline,
        "validation_loss": eval_loss,
        "train_steps": args.max_steps,
        "train_tokens": args.max_steps * args.batch_size * args.block_size,
        "parameters": model.num_parameters(),
        "prepare_train_evaluate_seconds": train_seconds,
        "device": device,
    }
    summary = (
        f"`fiftynet quickstart`: {metrics['train_tokens']:,} bytes of {CORPUS_NAME} (train split), "
        f"{args.max_steps} AdamW steps, blocks of {args.block_size} bytes, on {device}; data preparation, training "
        f"and evaluation took {train_seconds:.0f} s. A unigram byte model scores {baseline:.3f} bits per byte on the "
        "same text."
    )
    measurements = [
        Measurement("bits_per_byte", "Bits per byte", bits_per_byte, CORPUS_NAME, "validation"),
        Measurement("perplexity", "Perplexity (per byte)", math.exp(eval_loss), CORPUS_NAME, "validation"),
    ]
    # Written beside the output folder and moved into place whole: an earlier quickstart there stays loadable until
    # then.
    with staged_folder(args.output_dir) as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
        CardRecord(args.output_dir.resolve().name, summary, measurements,
                   num_parameters=model.num_parameters()).save(folder, config)

    # Reload the way users will: through the remote code written next to the weights.
    reloaded = AutoModelForCausalLM.from_pretrained(args.output_dir, trust_remote_code=True)
    reloaded_tokenizer = AutoTokenizer.from_pretrained(args.output_dir, trust_remote_code=True)
    probe = validation_set[:2]["input_ids"]
    with torch.no_grad():
        if not torch.equal(model.cpu().eval()(probe).logits, reloaded(probe).logits):
            raise RuntimeError(f"the model reloaded from {args.output_dir} does not reproduce the trained model")
    inputs = reloaded_tokenizer(args.prompt, return_tensors="pt")
    sample = reloaded.generate(
        **inputs, max_new_tokens=args.max_new_tokens, do_sample=True, temperature=0.8, top_k=50,
        pad_token_id=reloaded_tokenizer.pad_token_id,
    )
    text = reloaded_tokenizer.decode(sample[0], skip_special_tokens=True)

    print(f"\nvalidation bits per byte: {bits_per_byte:.3f} (unigram baseline: {baseline:.3f})")
    print(f"saved to {args.output_dir}, reloaded with trust_remote_code=True (identical logits); "
          f"total {time.time() - start:.0f} s")
    print(f"sample:\n{text}")
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet quickstart", description=__doc__, formatter_class=HelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    with claimed(args.output_dir, "--output_dir"):
        run(args)


if __name__ == "__main__":
    main()
