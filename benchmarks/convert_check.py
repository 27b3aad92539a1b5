"""The conversion's part of the GPU check (`benchmarks/gpu_check.sh`): `fiftynet convert` of a teacher of
SmolLM2-135M's shape (Llama: 30 layers of width 576, 9 query heads and 3 key/value heads, a SwiGLU MLP 1,536 wide, a
49,152-token vocabulary, a tied head) on one GPU, with a bfloat16 teacher, bf16 autocast, gradient checkpointing, the
layer-wise stage a group of layers at a time and the training text streamed.

    python -m benchmarks.convert_check --output-dir DIR                # a GPU: SmolLM2-135M's shape
    python -m benchmarks.convert_check --output-dir DIR --device cpu   # every step at a tiny size

The teacher has random weights (the GPU machine reaches no Hub) and a byte-level BPE trained on part of the bundled
corpus, so the numbers say what a conversion of that shape costs, not how good it gets. Writes DIR/convert_check.json:
the memory `fiftynet convert` estimates per process (`conversion.convert.memory_estimate`) beside the peak measured
(`torch.cuda.max_memory_allocated` on a GPU; the process's peak resident memory on a CPU, which counts everything
the process holds), the stages' tokens, seconds and tokens per second, and whether the saved student loads with
`trust_remote_code`.
"""

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from fiftynet.conversion import convert
from fiftynet.training import train
from fiftynet.training.corpus import load_corpus
from fiftynet.training.tokenizer import train_bpe

# SmolLM2-135M's config, as published (the teacher's shape on a GPU), and a tiny one of the same kind for the CPU.
SHAPES = {
    "cuda": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                 num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192, rms_norm_eps=1e-5,
                 rope_theta=100000.0, tie_word_embeddings=True),
    "cpu": dict(vocab_size=1024, hidden_size=64, intermediate_size=160, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True),
}
# Per device: the BPE's size, the characters of corpus it is trained on, the block size, the conversion's options.
RUNS = {
    "cuda": (8192, 2_000_000, 1024, ["--per_device_train_batch_size", "8", "--layerwise_steps", "20",
                                     "--layerwise_group_size", "9", "--max_steps", "20", "--keep_attention", "7", "15",
                                     "23", "--bf16"]),
    "cpu": (512, 200_000, 64, ["--per_device_train_batch_size", "2", "--layerwise_steps", "2",
                               "--layerwise_group_size", "1", "--max_steps", "2", "--keep_attention", "1",
                               "--calibration_blocks", "2"]),
}


def peak_memory(device: str) -> int:
    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmarks/results/gpu_check"))
    parser.add_argument("--device", choices=SHAPES, default="cuda")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no GPU is visible (pass --device cpu for the tiny run)")
    vocab_size, characters, block_size, options = RUNS[args.device]
    with tempfile.TemporaryDirectory() as work:  # the teacher and the student: GB on a GPU, not part of the report
        teacher_dir, out = Path(work) / "teacher", Path(work) / "converted"
        tokenizer = train_bpe([load_corpus("train")[:characters]], vocab_size)
        torch.manual_seed(0)
        config = LlamaConfig(**SHAPES[args.device], bos_token_id=tokenizer.eos_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        teacher = AutoModelForCausalLM.from_config(config)
        parameters = teacher.num_parameters()
        teacher.save_pretrained(teacher_dir)
        tokenizer.save_pretrained(teacher_dir)
        del teacher

        texts = {split: Path(work) / f"{split}.txt" for split in ("train", "validation")}
        for split, path in texts.items():
            path.write_text(load_corpus(split))
        folders = ["--teacher", str(teacher_dir), "--out", str(out), "--data", str(texts["train"]),
                   "--validation_data", str(texts["validation"])]
        options = ["--streaming", "--block_size", str(block_size), "--teacher_dtype", "bfloat16",
                   train.CHECKPOINTING_FLAG, "--save_strategy", "no", "--report_to", "none", *options]
        convert_argv = folders + options
        estimate = convert.memory_estimate(config, *convert.parse_arguments(convert_argv), block_size=block_size)
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        report = convert.main(convert_argv)
        wall_seconds = time.perf_counter() - started
        student = AutoModelForCausalLM.from_pretrained(out / "model", trust_remote_code=True)

    results = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "command": "python -m benchmarks.convert_check " + " ".join(sys.argv[1:] if argv is None else argv),
        "teacher": {"parameters": parameters, **SHAPES[args.device]},
        "convert_arguments": options,  # and the (temporary) teacher, output and text files
        "estimated_bytes": estimate,
        "estimated_total_bytes": sum(estimate.values()),
        "peak_bytes": peak_memory(args.device),
        "peak_measured_by": "torch.cuda.max_memory_allocated" if args.device == "cuda" else "peak resident memory",
        "stages": [{key: stage[key] for key in ("stage", "perplexity", "greedy_agreement", "tokens", "wall_seconds")
                    if key in stage} for stage in report["stages"]],
        "tokens_per_second": {stage["stage"]: stage["tokens"] / stage["wall_seconds"] for stage in report["stages"]
                              if stage.get("tokens")},
        "wall_seconds": wall_seconds,
        "student_loads": student.config.mixer_types == report["mixer_types"],
    }
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "convert_check.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({key: results[key] for key in ("estimated_total_bytes", "peak_bytes", "tokens_per_second")},
                     indent=2))
    return results


if __name__ == "__main__":
    main()
