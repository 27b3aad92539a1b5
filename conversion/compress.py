"""`fiftynet compress`: store the Linear layers of a saved FiftyNet or GPT-2 in fewer bytes, optionally fine-tune
briefly on the bundled corpus to recover, and save a folder that loads with `trust_remote_code=True`, with a model
card that names the source and records the compression and the losses before and after.

    fiftynet compress --model fiftynet-quickstart --method dct --ratio 0.25 --modules mlp --out fiftynet-dct25

`--method dct` keeps the largest coefficients of each weight's 2D DCT (`SpectralLinear`), `svd` a truncated SVD
(`LowRankLinear`), `int8` int8 weights with per-channel scales (`Int8Linear`, fixed ratio of about 0.25). `--ratio`
is the compressed layer's bytes over the float32 layer's, indices and scales included.
"""

import argparse
import copy
import math
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2LMHeadModel,
    PreTrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fiftynet.hub_cards.card import CardRecord, Measurement, source_name
from fiftynet.hub_cards.help_format import HelpFormatter
from fiftynet.training.corpus import CORPUS_NAME, load_corpus
from fiftynet.training.errors import (
    UsageError, claimed, non_negative_int, positive_float, positive_int, refuse_non_empty,
)
from modeling_fiftynet import FiftyNetByteTokenizer, FiftyNetForCausalLM
from modeling_fiftynet.compression import CompressedLinear, check_compression_arguments, compress_layers
from modeling_fiftynet.modeling_compressed_gpt2 import CompressedGPT2Config, CompressedGPT2LMHeadModel
from modeling_fiftynet.saving import staged_folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="saved FiftyNet or GPT2LMHeadModel folder")
    parser.add_argument("--method", required=True, metavar="dct|svd|int8",
                        help="how the weights are stored (see above)")
    parser.add_argument("--ratio", type=float, help="compressed bytes / float32 bytes per layer, in (0, 1]")
    parser.add_argument("--modules", help="comma-separated module names to compress, e.g. mlp,mixer (default: all)")
    parser.add_argument("--block_size", "--block-size", type=positive_int, default=128,
                        help="columns per streamed block (dct)")
    parser.add_argument("--finetune_steps", "--finetune-steps", type=non_negative_int, default=0,
                        help="AdamW steps on the bundled corpus after compressing; 0 skips the fine-tuning")
    parser.add_argument("--batch_size", "--batch-size", type=positive_int, default=8,
                        help="sequences per fine-tuning step")
    parser.add_argument("--sequence_length", "--sequence-length", type=positive_int, default=256,
                        help="tokens per sequence, fine-tuned on and evaluated")
    parser.add_argument("--learning_rate", "--learning-rate", type=positive_float, default=1e-3,
                        help="learning rate of the fine-tuning")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fine-tuning's batches")
    parser.add_argument("--out", type=Path, required=True,
                        help="where the compressed model goes: a new or empty folder")
    parser.add_argument("--overwrite_output_dir", "--overwrite-output-dir", action="store_true",
                        help="replace the model in a non-empty --out")


def load_dense_model(folder: Path) -> PreTrainedModel:
    """The FiftyNet or GPT-2 causal LM saved in `folder`, uncompressed; a `ValueError` for anything else."""
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder} holds no saved model (no config.json)")
    config, _ = PreTrainedConfig.get_config_dict(folder)
    model_type = config.get("model_type")
    if config.get("compression") is not None or model_type == CompressedGPT2Config.model_type:
        raise ValueError(f"{folder} is already compressed; compress the original model instead")
    model_classes = {"fiftynet": FiftyNetForCausalLM, "gpt2": GPT2LMHeadModel}
    if model_type not in model_classes:
        raise ValueError(f"{folder} holds a {model_type!r} model; fiftynet compress handles fiftynet and gpt2")
    return model_classes[model_type].from_pretrained(folder).eval()


def compressed_copy(
    model: PreTrainedModel, method: str, ratio: float | None, modules: list[str] | None = None, block_size: int = 128
) -> PreTrainedModel:
    """A copy of a dense FiftyNet or GPT-2 causal LM with the chosen backbone layers compressed, built the way
    `from_pretrained` builds it (from a config carrying `compression`), so what it computes is what a reload computes.
    """
    model = copy.deepcopy(model)
    backbone = model.model if isinstance(model, FiftyNetForCausalLM) else model.transformer
    compression = compress_layers(backbone, method, ratio, modules, block_size)
    if isinstance(model, FiftyNetForCausalLM):
        config = copy.deepcopy(model.config)
        config.compression = compression
        compressed = FiftyNetForCausalLM(config)
    else:
        config = CompressedGPT2Config.from_dict({**model.config.to_dict(), "compression": compression})
        compressed = CompressedGPT2LMHeadModel(config)
    compressed.load_state_dict(model.state_dict(), strict=True)
    return compressed.eval()


def compressed_bytes(model: PreTrainedModel) -> tuple[int, int]:
    """Bytes of the compressed layers, and of the float32 layers they replace."""
    layers = [layer for layer in model.modules() if isinstance(layer, CompressedLinear)]
    return sum(layer.nbytes() for layer in layers), sum(layer.dense_nbytes() for layer in layers)


def saved_tokenizer(model_folder: Path) -> PreTrainedTokenizerBase | None:
    """The tokenizer saved next to the model, or None when the folder has none."""
    # Checked first: without tokenizer files, transformers builds an empty tokenizer from the model's config.
    if not any((model_folder / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json")):
        return None
    return AutoTokenizer.from_pretrained(model_folder, trust_remote_code=True)


def corpus_token_ids(tokenizer: PreTrainedTokenizerBase | None, split: str) -> torch.Tensor:
    """One split of the bundled corpus as a 1D tensor of token ids (bytes, as FiftyNet's, without a tokenizer)."""
    return torch.tensor((tokenizer or FiftyNetByteTokenizer())(load_corpus(split))["input_ids"])


def token_blocks(ids: torch.Tensor, length: int, count: int | None = None) -> torch.Tensor:
    """`(blocks, length)`: consecutive blocks of the token stream (the first `count`, or all)."""
    blocks = ids[: len(ids) // length * length].view(-1, length)
    return blocks if count is None else blocks[:count]


@torch.no_grad()
def evaluate_loss(model: PreTrainedModel, blocks: torch.Tensor, batch_size: int = 8) -> float:
    """Mean next-token cross-entropy (nats per token) over `(blocks, length)` token ids."""
    model.eval()
    losses = [model(batch, labels=batch).loss.item() for batch in blocks.split(batch_size)]
    return sum(losses) / len(losses)


def finetune(
    model: PreTrainedModel, train_ids: torch.Tensor, steps: int, batch_size: int, length: int, learning_rate: float,
    seed: int = 0,
) -> list[float]:
    """`steps` AdamW steps on random blocks of `train_ids`, to recover what compression lost; returns the losses.
    Compressed values, low-rank factors, biases and every dense parameter train; int8 weights stay frozen."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    model.train()
    losses = []
    for _ in range(steps):
        starts = torch.randint(0, len(train_ids) - length, (batch_size,), generator=generator)
        batch = torch.stack([train_ids[start : start + length] for start in starts.tolist()])
        loss = model(batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def peak_memory_bytes(function) -> int:
    """Peak CPU memory that `function()` allocates above what was allocated when it started, in bytes, from the
    running total the PyTorch profiler records at every allocation (tensors only, not Python objects)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        function()
    allocations = []
    pending = list(profiler.profiler.kineto_results.experimental_event_tree())
    while pending:
        event = pending.pop()
        pending.extend(event.children)
        if event.tag == torch._C._profiler._EventType.Allocation:
            allocations.append((event.start_time_ns, event.extra_fields.alloc_size, event.extra_fields.total_allocated))
    if not allocations:
        return 0
    allocations.sort()
    _, first_size, first_total = allocations[0]
    return max(total for _, _, total in allocations) - (first_total - first_size)


def card_record(
    args: argparse.Namespace, summary: dict, stored: int, evaluated_tokens: int, tokens_per_byte: float
) -> CardRecord:
    """The compressed folder's card: its source (and the story of the source's own card), how it was compressed, and
    the loss before and after on the evaluated validation tokens."""
    source = CardRecord.load(args.model)
    stages = {"dense": "dense_validation_loss", "compressed": "compressed_validation_loss",
              f"compressed, then fine-tuned {args.finetune_steps} steps": "finetuned_validation_loss"}
    table = "\n".join(f"| {stage} | {summary[key]:.4f} | {math.exp(summary[key]):.3f} |"
                      for stage, key in stages.items() if key in summary)
    finetuning = f", then {args.finetune_steps} AdamW steps on the bundled corpus" if args.finetune_steps else ""
    text = (
        f"`fiftynet compress --method {args.method}` of {source_name(args.model)}: "
        f"{summary['layers']} Linear layers stored in {stored / 1e6:.3f} MB, {summary['ratio']:.3f} of their float32 "
        f"bytes{finetuning}. Loss on the first {evaluated_tokens:,} tokens of the validation text of {CORPUS_NAME}:"
        f"\n\n| model | loss (nats per token) | perplexity |\n|---|---|---|\n{table}"
    )
    if source is not None:
        text += f"\n\nThe dense model: {source.training_summary}"
    final_loss = summary.get("finetuned_validation_loss", summary["compressed_validation_loss"])
    split = f"validation, first {evaluated_tokens:,} tokens"
    measurements = [
        Measurement("perplexity", "Perplexity", math.exp(final_loss), CORPUS_NAME, split),
        Measurement("bits_per_byte", "Bits per byte", final_loss / math.log(2) * tokens_per_byte, CORPUS_NAME, split),
    ]
    # The source is a local folder, so the text names it; `fiftynet push --base-model` puts its Hub id in the metadata.
    return CardRecord(args.out.resolve().name, text, measurements, datasets=source.datasets if source else [])


def run(args: argparse.Namespace) -> dict:
    if not args.overwrite_output_dir:
        refuse_non_empty(args.out, "--out")
    try:
        modules = [name.strip() for name in args.modules.split(",") if name.strip()] if args.modules else None
        check_compression_arguments(args.method, args.ratio)
        dense = load_dense_model(args.model)
        model = compressed_copy(dense, args.method, args.ratio, modules, args.block_size)
    except ValueError as error:
        raise UsageError(str(error)) from None  # `fiftynet` prints it as one line and exits with code 2

    stored, replaced = compressed_bytes(model)
    layers = model.config.compression["layers"]
    print(f"{args.method}: {len(layers)} layers compressed, {replaced / 1e6:.3f} MB -> {stored / 1e6:.3f} MB "
          f"(ratio {stored / replaced:.3f})")
    tokenizer = saved_tokenizer(args.model)
    validation_ids = corpus_token_ids(tokenizer, "validation")
    validation = token_blocks(validation_ids, args.sequence_length, count=16)
    summary = {
        "layers": len(layers),
        "ratio": stored / replaced,
        "dense_validation_loss": evaluate_loss(dense, validation),
        "compressed_validation_loss": evaluate_loss(model, validation),
    }
    if args.finetune_steps > 0:
        torch.manual_seed(args.seed)  # dropout, where the model has it
        finetune(model, corpus_token_ids(tokenizer, "train"), args.finetune_steps, args.batch_size, args.sequence_length, args.learning_rate,
                 args.seed)
        summary["finetuned_validation_loss"] = evaluate_loss(model, validation)
    print(", ".join(f"{name}: {value:.4f}" for name, value in summary.items() if name.endswith("loss")),
          "(nats per token, first 16 validation blocks)")

    model.config.compression["finetune_steps"] = args.finetune_steps
    tokens_per_byte = len(validation_ids) / len(load_corpus("validation").encode("utf-8"))
    with staged_folder(args.out) as folder:  # moved into place whole, so an earlier --out stays loadable until then
        model.save_pretrained(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        card_record(args, summary, stored, validation.numel(), tokens_per_byte).save(folder, model.config)
    reloaded = AutoModelForCausalLM.from_pretrained(args.out, trust_remote_code=True).eval()
    probe = validation[:2]
    with torch.no_grad():
        if not torch.equal(model.eval()(probe).logits, reloaded(probe).logits):
            raise RuntimeError(f"the model reloaded from {args.out} does not reproduce the compressed model")
    print(f"saved to {args.out}; reloads with trust_remote_code=True with identical logits")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fiftynet compress", description=__doc__, formatter_class=HelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    with claimed(args.out, "--out"):
        run(args)


if __name__ == "__main__":
    main()
