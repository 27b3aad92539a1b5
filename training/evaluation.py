"""Language-model metrics for the Trainer, and `fiftynet eval` for any causal LM on any text.

Metrics, on packed blocks of the text: `loss` (nats per token), `perplexity`, `bits_per_token`, `bits_per_byte`
(bits per token times the text's tokens per UTF-8 byte, so models with different tokenizers compare) and
`accuracy` (next-token top-1). GPT-2 or any other `AutoModelForCausalLM` is measured exactly as FiftyNet is.
"""

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from peft import AutoPeftModelForCausalLM
from transformers import (
    AutoModelForCausalLM,
    EvalPrediction,
    GenerationConfig,
    PreTrainedModel,
    Trainer,
    TrainingArguments,
)

from fiftynet.hub_cards.help_format import HelpFormatter
from modeling_fiftynet import FiftyNetConfig  # and registers FiftyNet with the Auto classes

from .corpus import CORPUS_NAME, load_corpus
from .data import check_vocabulary, packed_blocks, read_text_files, token_stream, tokens_per_byte
from .errors import UsageError, positive_int
from .presets import check_fits
from .tokenizer import from_pretrained, load_tokenizer


# Model outputs that are not logits (a FiftyNet or GPT-2 cache, under its name before and since transformers 5.24)
# stay out of the gathered predictions.
IGNORE_KEYS = ["past_key_values", "cache"]

# Generation measured against a reference model: greedy continuations of this many tokens, of this many held-out
# prompts. Students scored within a fraction of a point of their teacher by log-likelihood can still fall far behind
# when they must generate (errors compound along a continuation), which perplexity does not show.
GREEDY_PROMPTS = 32
GREEDY_TOKENS = 32


def collate_blocks(features: list[dict]) -> dict[str, torch.Tensor]:
    """Stacks packed blocks; the labels are the inputs (the model shifts them), or the blocks' own `labels` where
    an evaluated text's padded last block has them (see `packed_blocks`).

    Training blocks are never padded, so no pad token is needed (GPT-2 has none), and no token is masked:
    DataCollatorForLanguageModeling would drop every label equal to the pad id, e.g. eos where pad = eos.
    """
    input_ids = torch.stack([feature["input_ids"] for feature in features])
    if "labels" in features[0]:
        return {"input_ids": input_ids, "labels": torch.stack([feature["labels"] for feature in features])}
    return {"input_ids": input_ids, "labels": input_ids.clone()}


def preprocess_logits_for_metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per batch, keeps the predicted token and the loss of each position instead of `(tokens, vocab)` logits."""
    logits = logits[0] if isinstance(logits, tuple) else logits
    shifted = logits[:, :-1].float()
    token_loss = F.cross_entropy(shifted.transpose(1, 2), labels[:, 1:], reduction="none", ignore_index=-100)
    return shifted.argmax(dim=-1), token_loss


def language_model_metrics(text_tokens_per_byte: float):
    """`compute_metrics` for the Trainer.

    Accuracy is computed here rather than with `evaluate.load("accuracy")`: that downloads its script from the Hub,
    which fails offline, for one line of numpy.
    """

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        predicted, token_loss = prediction.predictions
        targets = prediction.label_ids[:, 1:]
        scored = targets != -100
        loss = float(token_loss[scored].astype(np.float64).mean())
        bits_per_token = loss / math.log(2)
        return {
            "perplexity": math.exp(loss),
            "bits_per_token": bits_per_token,
            "bits_per_byte": bits_per_token * text_tokens_per_byte,
            "accuracy": float((predicted[scored] == targets[scored]).mean()),
        }

    return compute_metrics


def trainer_evaluation(text_tokens_per_byte: float) -> dict:
    """The Trainer arguments that make its evaluation report the metrics above."""
    return dict(
        data_collator=collate_blocks,
        compute_metrics=language_model_metrics(text_tokens_per_byte),
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )


def load_model(name_or_path: str, **kwargs) -> PreTrainedModel:
    """A saved causal LM, or a PEFT adapter folder (its base model is loaded and the adapter merged)."""
    adapter_config = Path(name_or_path) / "adapter_config.json"
    if adapter_config.is_file():
        try:
            return from_pretrained(AutoPeftModelForCausalLM.from_pretrained, name_or_path, "adapter").merge_and_unload()
        except UsageError as error:
            if "size mismatch" not in str(error):
                raise
            base = json.loads(adapter_config.read_text()).get("base_model_name_or_path")
            raise UsageError(f"{error} Its base model, {base}, is not the model the adapter was trained on "
                             "(base_model_name_or_path in adapter_config.json)") from None
    config_file = Path(name_or_path) / "config.json"
    if config_file.is_file():
        try:
            settings = json.loads(config_file.read_text())
        except ValueError:
            settings = {"model_type": None}  # loading it says what is wrong
        if not isinstance(settings, dict):
            raise UsageError(f"cannot load model {name_or_path}: its config.json holds a JSON "
                             f"{type(settings).__name__}, not an object of settings")
        if "model_type" not in settings:  # transformers would guess from the name, or ask to run custom code
            raise UsageError(f"cannot load model {name_or_path}: its config.json has no model_type (e.g. "
                             f"\"{FiftyNetConfig.model_type}\"), which names the model it describes")
        if settings["model_type"] == FiftyNetConfig.model_type:
            check_fits(settings, f"cannot load model {name_or_path}: its config.json", torch.device("cpu"))
    return from_pretrained(AutoModelForCausalLM.from_pretrained, name_or_path, "model", **kwargs)


# The settings by which TrainingArguments set up accelerate's process group, which every new TrainingArguments resets.
PROCESS_SETTINGS = ("use_cpu", "ddp_backend", "ddp_timeout")


class EvaluatedModel(torch.nn.Module):
    """A model as one evaluation's Trainer holds it. accelerate marks what a Trainer prepares as prepared for good, and
    a later Trainer would then train the model itself without DistributedDataParallel (each process alone, silently):
    the mark goes to this holder instead."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None):
        return self.model(input_ids=input_ids, labels=labels)


def evaluate_blocks(model: PreTrainedModel, blocks: Dataset, text_tokens_per_byte: float, batch_size: int,
                    run_args: TrainingArguments | None = None) -> dict:
    """The metrics of `model` on packed blocks, through `Trainer.evaluate` (so on a GPU, or several, if present).
    Inside a training run, pass its `run_args`: the evaluation then sets up the same processes (a CPU run of several
    processes, `use_cpu`, would otherwise go on as independent processes that all see the same batches); the model
    can be trained by a Trainer afterwards (see `EvaluatedModel`)."""
    settings = {name: getattr(run_args, name) for name in PROCESS_SETTINGS} if run_args is not None else {}
    with tempfile.TemporaryDirectory() as trainer_dir:
        args = TrainingArguments(output_dir=trainer_dir, per_device_eval_batch_size=batch_size, report_to="none",
                                 dataloader_pin_memory=torch.cuda.is_available(), **settings)
        trainer = Trainer(model=EvaluatedModel(model), args=args, eval_dataset=blocks,
                          **trainer_evaluation(text_tokens_per_byte))
        # Training and validation blocks are full, so the plain mean per batch is exact (`evaluate_text` corrects
        # eval_loss for its padded last block; the other metrics count tokens). Passing models that accept loss kwargs
        # (GPT-2) a token count instead makes transformers 5.23 count position 0, which is never a target: a loss
        # (L-1)/L low.
        trainer.model_accepts_loss_kwargs = False
        return trainer.evaluate(ignore_keys=IGNORE_KEYS)


def evaluate_text(model: PreTrainedModel, documents: list[str], tokenizer, block_size: int, batch_size: int,
                  run_args: TrainingArguments | None = None) -> dict:
    """The metrics of `model` on the documents, packed into blocks of `block_size` tokens, the last one possibly
    shorter (every token but each block's first is a target). `predicted_tokens` counts the targets. `run_args`: as
    for `evaluate_blocks`."""
    token_ids = token_stream(documents, tokenizer)
    blocks = packed_blocks(token_ids, block_size, name="the evaluation text", keep_tail=True)
    metrics = evaluate_blocks(model, blocks, tokens_per_byte(documents, len(token_ids)), batch_size, run_args)
    # The Trainer's eval_loss is a mean of batch means, which would weigh the short last block's tokens more.
    metrics["eval_loss"] = math.log(metrics["eval_perplexity"])
    labels = blocks[:]["labels"]
    return {"evaluated_tokens": int((labels != -100).sum()), "predicted_tokens": int((labels[:, 1:] != -100).sum()),
            "text_tokens": len(token_ids), **metrics}


def greedy_prompts(blocks: Dataset, count: int = GREEDY_PROMPTS) -> tuple[torch.Tensor, int]:
    """Prompts for `greedy_agreement`, `(count, block_size // 2)` token ids: the first half of each of the first
    `count` blocks (pass held-out ones, so that no continuation is recalled from training); and how many tokens to
    continue each by: `GREEDY_TOKENS`, or the rest of the block if shorter, so that prompt and continuation stay
    within the block size the models were trained at."""
    block_size = len(blocks[0]["input_ids"])
    half = block_size // 2
    if half < 1:
        raise UsageError(f"blocks of {block_size} token cannot hold a prompt and its continuation")
    return blocks[: min(count, len(blocks))]["input_ids"][:, :half], min(GREEDY_TOKENS, block_size - half)


@torch.no_grad()
def greedy_continuations(model: PreTrainedModel, prompts: torch.Tensor, new_tokens: int, batch_size: int
                         ) -> torch.Tensor:
    """`(prompts, new_tokens)` token ids: `model.generate`'s greedy continuation of each prompt (of equal length, no
    padding), under a generation config of its own rather than the model's (a sampling or repetition-penalty default
    would make two models' continuations differ for reasons that are not the models'). A continuation that ends with
    the end-of-text token is padded after it with that token."""
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=False, eos_token_id=eos,
                              pad_token_id=eos if eos is not None else 0)
    device = next(model.parameters()).device
    continuations = []
    for batch in prompts.split(batch_size):
        batch = batch.to(device)
        output = model.generate(batch, attention_mask=torch.ones_like(batch), generation_config=config)
        continuation = output[:, batch.shape[1]:]
        continuations.append(F.pad(continuation, (0, new_tokens - continuation.shape[1]), value=config.pad_token_id))
    return torch.cat(continuations).cpu()


def greedy_agreement(continuations: torch.Tensor, reference: torch.Tensor) -> float:
    """The share of continuation tokens equal to the reference's at the same position (1.0: identical greedy text)."""
    return (continuations == reference).float().mean().item()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model to load, as `fiftynet eval` and `fiftynet generate` take it."""
    parser.add_argument("--model", required=True, help="a saved model folder, Hub id or PEFT adapter folder")
    parser.add_argument("--tokenizer", help="tokenizer folder, Hub id or 'byte' (default: the model's own)")
    parser.add_argument("--trust_remote_code", "--trust-remote-code", action="store_true",
                        help="run the Python code a model's folder or Hub repository ships (for architectures that "
                             "transformers and fiftynet do not know)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="fiftynet eval", description=__doc__, formatter_class=HelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--text", nargs="+",
                        help=f"text files or folders (default: the validation split of {CORPUS_NAME})")
    parser.add_argument("--block_size", "--block-size", type=positive_int,
                        help="tokens per evaluated block (default: the model's max_position_embeddings if it has "
                             "one, at most 1024)")
    parser.add_argument("--batch_size", "--batch-size", type=positive_int, default=8, help="blocks per forward pass")
    parser.add_argument("--output_json", "--output-json", type=Path, help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)

    run_model = Path(args.model) / "model"
    if not (Path(args.model) / "config.json").is_file() and (run_model / "config.json").is_file():
        raise UsageError(f"--model {args.model} is a run's folder; its model is --model {run_model}")
    model = load_model(args.model, trust_remote_code=args.trust_remote_code)
    tokenizer = load_tokenizer(args.tokenizer or args.model)
    check_vocabulary(tokenizer, model.config)
    documents = read_text_files(args.text) if args.text else [load_corpus("validation")]
    block_size = args.block_size or min(1024, getattr(model.config, "max_position_embeddings", None) or 1024)
    metrics = evaluate_text(model, documents, tokenizer, block_size, args.batch_size)
    print(json.dumps(metrics, indent=2))
    if args.output_json:
        args.output_json.write_text(json.dumps(metrics, indent=2))
    return metrics
