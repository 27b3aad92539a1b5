"""`fiftynet chunk-head`: give a trained FiftyNet a chunk head, so that `generate_with_chunk_head` decodes greedily in
fewer forward passes.

The model itself is frozen, so its greedy output does not change: only the head's drafts are trained (their
cross-entropy against the tokens 2, 3, ... positions ahead, as Medusa-1 trains its heads). After training, the
command decodes validation prompts both ways, checks that the outputs are identical, and reports the tokens per
forward pass and the wall-clock speed-up on this machine. TrainingArguments flags work as in `fiftynet train`.

OUTPUT_DIR gets `model/` (the Hub-ready folder with the head), `metrics.json` and checkpoints.
"""

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Trainer, set_seed

from fiftynet.hub_cards.card import CardRecord, run_model_name, source_name
from modeling_fiftynet import FiftyNetConfig
from modeling_fiftynet.modeling_fiftynet import FiftyNetCausalLMOutputWithPast, FiftyNetChunkHead, chunk_head_targets
from modeling_fiftynet.saving import staged_folder

from .data import DataArguments, check_block_size, check_streamed_steps, check_vocabulary, load_texts, prepare_data
from .errors import UsageError, claimed
from .evaluation import IGNORE_KEYS, collate_blocks, load_model
from .tokenizer import load_tokenizer
from .train import (
    TRAINING_DEFAULTS, TrainerArguments, check_output_dir, clear_earlier_run, sequences_per_step,
    trainer_argument_parser,
)


@dataclass(kw_only=True)
class ChunkHeadArguments(DataArguments):
    _argument_group_name = "fiftynet chunk-head: data, model, head, speed measurement"

    model: str = field(metadata={"help": "the trained FiftyNet folder or Hub id"})
    chunk_head_size: int = field(default=3, metadata={"help": "tokens drafted beyond the next one"})
    block_size: int = field(default=256, metadata={"help": "tokens per training sequence"})
    decode_prompts: int = field(default=8, metadata={"help": "validation prompts decoded to measure the speed-up"})
    prompt_tokens: int = field(default=64, metadata={"help": "tokens per measurement prompt"})
    new_tokens: int = field(default=128, metadata={"help": "tokens generated per measurement prompt"})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "train in a non-empty --output_dir: its earlier checkpoints and logs are deleted first, "
                          "its model/ and metrics.json replaced at the end"},
    )


class ChunkHeadTrainer(Trainer):
    """Trains on the chunk head's loss; the LM loss is a constant of the frozen model. Like transformers' causal LM
    loss, the chunk loss of each micro-batch is summed and divided by the number of items in the whole accumulated
    batch (all processes' with `average_tokens_across_devices`), so that accumulation gives the update of one batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # So that the Trainer counts the items (below) for `compute_loss`, and does not divide its loss, normalised by
        # them, by the accumulation steps as well.
        self.model_accepts_loss_kwargs = True

    # Private API, tested under every admitted release by .ci/run: `Trainer._get_num_items_in_batch`, extended (its
    # own still sums over processes and divides among parallel devices); no public hook says what a loss's items are.
    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> torch.Tensor | int | None:
        # The Trainer counts next-token targets; the chunk loss's items are its drafts' targets: up to
        # `chunk_head_size` per position, fewer at each row's end and next to -100 labels, so no multiple of that
        # count. Its counter (which also sums over processes) counts `shift_labels`, `labels` or `labels[..., 1:]`,
        # by release and model: give it the drafts' targets as each, after a -100.
        size = self.model.config.chunk_head_size
        drafts = []
        for batch in batch_samples:
            if "labels" in batch:
                targets = chunk_head_targets(batch["labels"], size, batch.get("shift_labels")).flatten(1)
                targets = F.pad(targets, (1, 0), value=-100)
                drafts.append({"labels": targets, "shift_labels": targets})
        return super()._get_num_items_in_batch(drafts, device)

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, FiftyNetCausalLMOutputWithPast]:
        outputs = model(**inputs, chunk_num_items_in_batch=num_items_in_batch)
        loss = outputs.chunk_loss
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            # The count is over all processes, whose gradients are averaged: scaled back as Trainer.compute_loss does.
            loss = loss * (self.args.n_gpu if self.args.n_gpu > 1 else self.accelerator.num_processes)
        return (loss, outputs) if return_outputs else loss


def add_chunk_head(model, chunk_head_size: int) -> None:
    """Freezes `model` and gives it a new chunk head of `chunk_head_size` drafts (every draft starting as the
    next-token prediction), the only trainable part."""
    model.requires_grad_(False)
    model.config.chunk_head_size = chunk_head_size
    model.chunk_head = FiftyNetChunkHead(model.config).to(model.device)
    model._init_weights(model.chunk_head)


@torch.no_grad()
def measure_decoding(model, prompts: torch.Tensor, new_tokens: int) -> dict:
    """Greedy `generate()` against `generate_with_chunk_head` on each prompt `(prompts, prompt_len)` alone (batch 1):
    whether every output is identical, tokens per forward pass and wall-clock times."""
    model.eval()
    greedy_seconds = chunked_seconds = 0.0
    identical, passes, generated = True, 0, 0
    for prompt in prompts[:, None]:
        start = time.perf_counter()
        # Both stop at the model's end-of-sequence token, so their outputs compare one to one.
        greedy = model.generate(prompt, max_new_tokens=new_tokens, do_sample=False)
        greedy_seconds += time.perf_counter() - start
        start = time.perf_counter()
        chunked = model.generate_with_chunk_head(prompt, max_new_tokens=new_tokens, return_dict_in_generate=True)
        chunked_seconds += time.perf_counter() - start
        identical &= torch.equal(greedy, chunked.sequences)
        passes += chunked.forward_passes
        generated += chunked.sequences.shape[1] - prompt.shape[1]
    return {
        "identical_to_greedy": identical,
        "tokens_per_forward_pass": generated / passes,
        "greedy_seconds": greedy_seconds,
        "chunk_head_seconds": chunked_seconds,
        "speedup": greedy_seconds / chunked_seconds,
        "prompts": len(prompts),
        "new_tokens_per_prompt": new_tokens,
        "device": str(model.device),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = trainer_argument_parser((ChunkHeadArguments, TrainerArguments), "fiftynet chunk-head", __doc__,
                                     {**TRAINING_DEFAULTS, "output_dir": "fiftynet-chunk-head"})
    try:
        script, training_args = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:
        raise UsageError(" ".join(str(error).split())) from None
    if script.chunk_head_size < 1:
        raise UsageError(f"--chunk_head_size must be at least 1, got {script.chunk_head_size}")
    check_block_size(script.block_size)
    with claimed(training_args.output_dir, "--output_dir", training_args.process_index == 0):
        return run(script, training_args)


def run(script: ChunkHeadArguments, training_args: TrainerArguments) -> dict:
    """Trains the chunk head, measures its decoding and saves; returns the metrics."""
    clear_output_dir = check_output_dir(training_args.output_dir, None, script.overwrite_output_dir)
    set_seed(training_args.seed)
    tokenizer = load_tokenizer(script.model)
    model = load_model(script.model)
    if not isinstance(model.config, FiftyNetConfig):
        raise UsageError(f"--model {script.model} is a {model.config.model_type} model; a chunk head needs a FiftyNet")
    check_vocabulary(tokenizer, model.config)
    add_chunk_head(model, script.chunk_head_size)
    check_streamed_steps(script, training_args.max_steps)
    data = prepare_data(load_texts(script), tokenizer, script.block_size, script.validation_fraction)

    if clear_output_dir and training_args.should_save:
        clear_earlier_run(training_args.output_dir)
    trainer = ChunkHeadTrainer(model=model, args=training_args, train_dataset=data.train,
                               eval_dataset=data.validation, data_collator=collate_blocks)
    initial = trainer.evaluate(ignore_keys=IGNORE_KEYS)["eval_loss"]
    trainer.train(ignore_keys_for_eval=IGNORE_KEYS)
    final = trainer.evaluate(ignore_keys=IGNORE_KEYS)["eval_loss"]
    prompts = data.validation[: script.decode_prompts]["input_ids"][:, : script.prompt_tokens]
    decoding = measure_decoding(model, prompts.to(model.device), script.new_tokens)
    metrics = {"chunk_loss_before": initial, "chunk_loss_after": final, "decoding": decoding}
    print(f"chunk loss {initial:.4f} -> {final:.4f}; {decoding['tokens_per_forward_pass']:.2f} tokens per forward "
          f"pass, {decoding['speedup']:.2f}x greedy's speed on {decoding['device']}, identical output: "
          f"{decoding['identical_to_greedy']}")

    output_dir = Path(training_args.output_dir)
    model_dir = output_dir / "model"
    if trainer.is_world_process_zero():
        record = CardRecord.load(script.model) if Path(script.model).is_dir() else None
        summary = (
            f"`fiftynet chunk-head`: a {script.chunk_head_size}-token chunk head trained on the frozen "
            f"{source_name(script.model)} for {trainer.state.global_step} steps of "
            f"{sequences_per_step(training_args)} blocks of {script.block_size} tokens on {data.name}; "
            f"`generate_with_chunk_head` gave {decoding['tokens_per_forward_pass']:.2f} tokens per forward pass and "
            f"{decoding['speedup']:.2f}x the speed of greedy `generate()` on {decoding['device']} "
            f"({decoding['prompts']} validation prompts, batch 1); outputs identical to greedy's: "
            f"{'yes' if decoding['identical_to_greedy'] else 'NO'}."
        )
        if record is None:
            record = CardRecord(run_model_name(output_dir), summary, [])
        else:
            record.model_name = run_model_name(output_dir)  # the snippet loads this folder, not the source
            record.training_summary = f"{record.training_summary} Then {summary}"
        record.num_parameters = model.num_parameters()
        with staged_folder(model_dir) as folder:  # moved into place whole
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            record.save(folder, model.config)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
        print(f"saved to {model_dir}")
    return metrics


if __name__ == "__main__":
    from . import cli

    cli.main(["chunk-head", *sys.argv[1:]])
