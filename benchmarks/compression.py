"""Compressed Linear layers at equal bytes: DCT coefficients vs truncated SVD vs int8, on one trained FiftyNet.

    fiftynet quickstart --output-dir /tmp/qs
    python -m benchmarks.compression --model /tmp/qs --eval-blocks 16 --finetune-steps 20 --latency-batch 4 --latency-repeats 3

Prints three markdown tables (the ones in docs/compression.md):
1. the transform choice: relative reconstruction error of the backbone's Linear weights at equal bytes, keeping the
   largest coefficients of the 2D DCT, of the 2D FFT, or of the weight itself (magnitude pruning), and the SVD;
2. the models: validation bits per byte (first `--eval-blocks` blocks of the validation split), with and without
   brief fine-tuning, bytes on disk, peak memory and latency of a forward pass;
3. polar quantization of the filters' complex residues (magnitude and phase bits) against quantizing the real and
   imaginary parts.
"""

import argparse
import copy
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from fiftynet.conversion.compress import (
    compressed_bytes,
    compressed_copy,
    corpus_token_ids,
    evaluate_loss,
    finetune,
    load_dense_model,
    peak_memory_bytes,
    saved_tokenizer,
    token_blocks,
)
from modeling_fiftynet.compression import LowRankLinear, SpectralLinear, polar_quantize

RATIOS = (0.5, 0.25, 0.1)
POLAR_SPLITS = ((4, 4), (3, 5), (2, 6), (6, 6), (5, 7), (4, 8), (8, 8), (7, 9), (6, 10))


def relative_error(approximations: list[torch.Tensor], weights: list[torch.Tensor]) -> float:
    """`||W_hat - W|| / ||W||` over all the weights together (Frobenius)."""
    error = sum((approx - weight).square().sum() for approx, weight in zip(approximations, weights))
    return math.sqrt(error / sum(weight.square().sum() for weight in weights))


def keep_largest(coefficients: torch.Tensor, count: int) -> torch.Tensor:
    """`coefficients` with all but the `count` largest in magnitude set to zero."""
    kept = torch.zeros_like(coefficients).flatten()
    positions = coefficients.abs().flatten().topk(count).indices
    kept[positions] = coefficients.flatten()[positions]
    return kept.view_as(coefficients)


def fft_top_k(weight: torch.Tensor, ratio: float) -> torch.Tensor:
    """The weight rebuilt from its largest orthonormal 2D FFT coefficients that fit in `ratio` of its bytes. A real
    matrix's spectrum is Hermitian, so coefficients come in conjugate pairs of equal magnitude, stored once each:
    a complex64 value and an int32 index (12 bytes), plus the same row offsets as the DCT's sparse rows."""
    out_features, in_features = weight.shape
    pairs = max(1, int((ratio * 4 * weight.numel() - 4 * (out_features + 1)) // 12))
    spectrum = torch.fft.fft2(weight, norm="ortho")
    return torch.fft.ifft2(keep_largest(spectrum, min(2 * pairs, weight.numel())), norm="ortho").real


@torch.no_grad()
def transform_table(model: nn.Module) -> list[dict]:
    weights = [layer.weight.detach() for name, layer in model.model.named_modules() if isinstance(layer, nn.Linear)]
    rows = []
    for ratio in RATIOS:
        pruned_counts = [SpectralLinear.coefficients_for_ratio(w.shape[1], w.shape[0], False, ratio) for w in weights]
        rows.append({
            "ratio": ratio,
            "dct": relative_error([SpectralLinear.from_dense(w, None, ratio).dense_weight() for w in weights], weights),
            "fft": relative_error([fft_top_k(w, ratio) for w in weights], weights),
            "magnitude pruning": relative_error([keep_largest(w, n) for w, n in zip(weights, pruned_counts)], weights),
            "svd": relative_error([LowRankLinear.from_dense(w, None, ratio).dense_weight() for w in weights], weights),
        })
    return rows


def measure(model: nn.Module, name: str, args, validation: torch.Tensor, train_ids: torch.Tensor) -> dict:
    """Bits per byte, bytes on disk, peak forward memory and latency of one (compressed) model."""
    probe = validation[: args.latency_batch]
    with torch.no_grad():
        peak = peak_memory_bytes(lambda: model(validation[:1]))
        model(probe)  # warm-up
        seconds = []
        for _ in range(args.latency_repeats):
            start = time.perf_counter()
            model(probe)
            seconds.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        disk_bytes = (Path(folder) / "model.safetensors").stat().st_size
    stored, replaced = compressed_bytes(model)
    row = {
        "method": name,
        "layer_ratio": stored / replaced if replaced else 1.0,
        "bits_per_byte": evaluate_loss(model, validation) / math.log(2),
        "disk_bytes": disk_bytes,
        "peak_forward_bytes": peak,
        "latency_ms": 1000 * statistics.median(seconds),
    }
    if args.finetune_steps:
        tuned = copy.deepcopy(model)
        finetune(tuned, train_ids, args.finetune_steps, args.batch_size, validation.shape[1], args.learning_rate)
        row["finetuned_bits_per_byte"] = evaluate_loss(tuned, validation) / math.log(2)
    print(row, flush=True)
    return row


def polar_table(model: nn.Module) -> list[dict]:
    """Polar quantization of every filter's residues, against uniform quantization of real and imaginary parts."""
    residues = torch.cat([p.detach().reshape(-1, 2) for n, p in model.named_parameters() if n.endswith("residues")])
    norm = residues.norm()
    rows = []
    for magnitude_bits, phase_bits in POLAR_SPLITS:
        quantized = polar_quantize(residues, magnitude_bits, phase_bits)
        total = magnitude_bits + phase_bits
        # Cartesian baseline at the same bits: torch's per-tensor affine quantizer on each part, total / 2 bits.
        levels = 2 ** (total // 2 - 1) - 1
        cartesian = torch.fake_quantize_per_tensor_affine(residues, residues.abs().max().item() / levels, 0, -levels, levels)
        rows.append({
            "bits": total,
            "magnitude_bits": magnitude_bits,
            "phase_bits": phase_bits,
            "relative_error": ((quantized.dequantize() - residues).norm() / norm).item(),
            "cartesian_relative_error": ((cartesian - residues).norm() / norm).item(),
            "compression": quantized.compression(),
            "phase_step_radians": quantized.phase_step,
        })
    return rows


def markdown(transforms: list[dict], models: list[dict], polar: list[dict]) -> str:
    lines = ["| kept bytes | DCT top-k | FFT top-k | magnitude pruning | SVD |", "|---|---|---|---|---|"]
    lines += [f"| {r['ratio']:.0%} | {r['dct']:.3f} | {r['fft']:.3f} | {r['magnitude pruning']:.3f} | {r['svd']:.3f} |"
              for r in transforms]
    tuned = "finetuned_bits_per_byte" in models[0]
    lines += ["", "| method | layer bytes ratio | val bits/byte | " + ("after fine-tuning | " if tuned else "")
              + "model.safetensors (bytes) | peak forward memory (MB) | forward latency (ms) |",
              "|---|---|---|" + ("---|" if tuned else "") + "---|---|---|"]
    for r in models:
        after = f" {r['finetuned_bits_per_byte']:.3f} |" if tuned else ""
        lines.append(f"| {r['method']} | {r['layer_ratio']:.3f} | {r['bits_per_byte']:.3f} |{after} "
                     f"{r['disk_bytes']:,} | {r['peak_forward_bytes'] / 1e6:.2f} | {r['latency_ms']:.1f} |")
    lines += ["", "| bits | magnitude / phase | relative error | cartesian error (same bits) | compression | "
              "phase step (rad) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['bits']} | {r['magnitude_bits']} / {r['phase_bits']} | {r['relative_error']:.4f} | "
              f"{r['cartesian_relative_error']:.4f} | {r['compression']:.1f}x | {r['phase_step_radians']:.4f} |"
              for r in polar]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a saved FiftyNet (fiftynet quickstart's folder)")
    parser.add_argument("--eval-blocks", type=int, default=32, help="validation blocks scored")
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--finetune-steps", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--latency-batch", type=int, default=8, help="blocks per timed forward pass")
    parser.add_argument("--latency-repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    dense = load_dense_model(args.model)
    tokenizer = saved_tokenizer(args.model)
    validation = token_blocks(corpus_token_ids(tokenizer, "validation"), args.sequence_length, args.eval_blocks)
    train_ids = corpus_token_ids(tokenizer, "train") if args.finetune_steps else None

    transforms = transform_table(dense)
    models = [measure(dense, "dense float32", args, validation, train_ids)]
    models.append(measure(compressed_copy(dense, "int8", None), "int8", args, validation, train_ids))
    for ratio in RATIOS:
        for method in ("dct", "svd"):
            models.append(measure(compressed_copy(dense, method, ratio), f"{method} {ratio:.0%}", args, validation,
                                  train_ids))
    polar = polar_table(dense)
    print(markdown(transforms, models, polar))
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"transforms": transforms, "models": models, "polar": polar}, indent=2))


if __name__ == "__main__":
    main()
