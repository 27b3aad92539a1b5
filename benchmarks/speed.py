"""Speed of FiftyNet against a GPT-2 of the same width and depth (PyTorch SDPA attention), in one run on one device.

    python -m benchmarks.speed --output-dir benchmarks/results/speed                 # GPU: the full sweep
    python -m benchmarks.speed --output-dir benchmarks/results/speed --device cpu    # CPU: 1k and 4k only (--quick)

1. Mixer level, batch 1: forward and forward+backward time of the raw long convolution (`fft_causal_conv`) against
   raw `F.scaled_dot_product_attention(is_causal=True)`, and of one FiftyNet mixer layer against one GPT-2 attention
   layer, each taken from a model built from its config (so whatever kernels the models run are what is timed).
   The forward is also compared with its memory floor: the bytes it must move (read its inputs and parameters,
   write its output) over the copy bandwidth measured in the same run.
2. Training: tokens/s and peak memory of a full step (forward, backward, AdamW) of both language models.
3. Generation: prefill time and greedy decode tokens/s after long prompts, each model through its own cache
   (transformers' `DynamicCache(config)`, holding FiftyNet's constant-size states and GPT-2's keys and values), one
   new token per call; with `--compile`, FiftyNet's decoding through
   `torch.compile` as well.
4. Chunk head: `generate_with_chunk_head` against greedy `generate()` on the same FiftyNet with a new (untrained)
   chunk head. Random weights accept whatever drafts they accept, so the number that carries over to a trained model
   is the cost of one drafting pass in greedy steps: the tokens per pass it must accept to break even.

GPU: bfloat16 autocast over float32 weights for 1-2, bfloat16 weights for 3, CUDA-event timing. CPU: float32,
`time.perf_counter`. Every number is the median of `--repeats` runs after `--warmup` runs. A measurement that runs
out of GPU memory is recorded as "oom". Writes `speed.json`, `speed.md` (the tables) and `speed_*.png`.
"""

import argparse
import gc
import hashlib
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from xml.etree import ElementTree

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
import transformers
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel, PreTrainedModel

import modeling_fiftynet
from fiftynet.conversion.compress import peak_memory_bytes
from fiftynet.training.chunk_head import add_chunk_head, measure_decoding
from modeling_fiftynet import FiftyNetConfig, FiftyNetForCausalLM
from modeling_fiftynet.configuration_fiftynet import MIXERS
from modeling_fiftynet.modeling_fiftynet import CACHE_NAME
from modeling_fiftynet.spectral_ops import fft_causal_conv

# `--quick`, and the default on CPU: two lengths, fewer repeats, short prompts, so 2 cores finish in minutes.
PRESETS = {
    "full": dict(lengths=[1024 * 2**i for i in range(7)], prompts=[1024, 8192, 32768], train_tokens=16384,
                 warmup=2, repeats=5),
    "quick": dict(lengths=[1024, 4096], prompts=[1024, 4096], train_tokens=4096, warmup=1, repeats=3),
}
MODELS = ("fiftynet", "gpt2")
COMPILED = "fiftynet, torch.compile"  # the generation rows of FiftyNet's decoding through torch.compile (--compile)
RAW_OPS = ("fft_causal_conv", "sdpa")
LAYERS = ("fiftynet mixer layer", "gpt2 attention layer")
OOM = "oom"
CONSTANT_STATE_MIXERS = [name for name, spec in MIXERS.items() if spec.constant_state]


def autocast(device: torch.device):
    """bfloat16 autocast on GPU (as mixed-precision training runs); plain float32 on CPU."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def timed(fn: Callable, device: torch.device) -> tuple[float, object]:
    """Seconds `fn()` takes on `device` (CUDA events between synchronizations on GPU), and its result."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        result = fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1e3, result
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def median_seconds(fn: Callable, device: torch.device, warmup: int, repeats: int) -> float:
    """Median of `repeats` timed calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn, device)[0] for _ in range(repeats))


def release_memory() -> None:
    """Returns the memory of the measurement that just ended (its tensors are unreferenced) before the next one."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def or_oom(measure: Callable):
    """`measure()`, or "oom" if the GPU runs out of memory; the memory is released before the next measurement."""
    try:
        return measure()
    except torch.OutOfMemoryError:
        pass
    release_memory()  # outside the `except`: the traceback, and the tensors its frames hold, are gone by now
    return OOM


def build_model(
    name: str, args: argparse.Namespace, hidden: int, heads: int, layers: int, vocab: int, positions: int
) -> PreTrainedModel:
    """FiftyNet or GPT-2 (`name` in MODELS) language model with random weights (seed 0) on the device; the two have
    the same width, depth and vocabulary. `positions` sizes GPT-2's position table (FiftyNet has none).

    GPT-2's dropout is off: FiftyNet has none, and it would only add work to GPT-2's side.
    """
    torch.manual_seed(0)
    if name == "fiftynet":
        config = FiftyNetConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                num_attention_heads=heads, mixer_type=args.mixer_type)
        return FiftyNetForCausalLM(config).to(args.device)
    config = GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=hidden, n_layer=layers, n_head=heads,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=vocab - 1, eos_token_id=vocab - 1)  # <|endoftext|> is GPT-2's last id
    return GPT2LMHeadModel._from_config(config, attn_implementation="sdpa").to(args.device)


def copy_bandwidth(args: argparse.Namespace) -> float:
    """Bytes per second of a large device-to-device copy (read + write), the attainable memory bandwidth."""
    size = 2**30 if args.device.type == "cuda" else 2**28
    source = torch.empty(size, dtype=torch.uint8, device=args.device)
    target = torch.empty_like(source)
    seconds = median_seconds(lambda: target.copy_(source), args.device, args.warmup + 1, max(args.repeats, 5))
    return 2 * size / seconds


def mixer_cases(args: argparse.Namespace, length: int) -> dict[str, tuple[Callable, list[torch.Tensor]]]:
    """For each op at sequence length `length`: a forward function and the tensors it reads (inputs, then
    parameters), the inputs needing gradients."""
    device, hidden, heads = args.device, args.mixer_hidden_size, args.mixer_heads
    activations = torch.bfloat16 if device.type == "cuda" else torch.float32
    # The spectral mixer feeds the convolution gated activations in the autocast dtype and a float32 filter.
    conv_inputs = torch.randn(1, hidden, length, device=device, dtype=activations, requires_grad=True)
    kernel = torch.randn(hidden, length, device=device, requires_grad=True)
    qkv = [torch.randn(1, heads, length, hidden // heads, device=device, dtype=activations, requires_grad=True)
           for _ in range(3)]
    # One-layer models, of which only the layer is used; a small vocabulary (above FiftyNet's special token ids).
    mixer = build_model("fiftynet", args, hidden, heads, layers=1, vocab=512, positions=length).model.layers[0].mixer
    attention = build_model("gpt2", args, hidden, heads, layers=1, vocab=512, positions=length).transformer.h[0].attn
    hidden_states = torch.randn(1, length, hidden, device=device, requires_grad=True)
    return {
        "fft_causal_conv": (lambda: fft_causal_conv(conv_inputs, kernel), [conv_inputs, kernel]),
        "sdpa": (lambda: F.scaled_dot_product_attention(*qkv, is_causal=True), qkv),
        LAYERS[0]: (lambda: mixer(hidden_states), [hidden_states, *mixer.parameters()]),
        LAYERS[1]: (lambda: attention(hidden_states)[0], [hidden_states, *attention.parameters()]),
    }


def measure_mixers(args: argparse.Namespace, length: int, bandwidth: float) -> list[dict]:
    """One row per op at sequence length `length`: forward and forward+backward milliseconds, and the forward's
    memory floor."""
    cases = or_oom(lambda: mixer_cases(args, length))
    rows = []
    for op in (*RAW_OPS, *LAYERS):
        row = {"op": op, "length": length}
        rows.append(row)
        if cases == OOM:
            row.update(fwd_ms=OOM, fwd_bwd_ms=OOM)
            continue
        forward, tensors = cases[op]

        def inference() -> torch.Tensor:
            with torch.no_grad(), autocast(args.device):
                return forward()

        def training() -> None:
            with autocast(args.device):
                output = forward()
            # Gradients of the inputs and parameters, returned rather than accumulated into `.grad`.
            torch.autograd.grad(output, tensors, torch.ones_like(output))

        fwd = or_oom(lambda: median_seconds(inference, args.device, args.warmup, args.repeats))
        row["fwd_ms"] = fwd if fwd == OOM else 1e3 * fwd
        if fwd != OOM:
            floor_bytes = sum(tensor.nbytes for tensor in tensors) + inference().nbytes
            row.update(floor_bytes=floor_bytes, floor_ms=1e3 * floor_bytes / bandwidth,
                       floor_fraction=floor_bytes / bandwidth / fwd)
        fwd_bwd = or_oom(lambda: median_seconds(training, args.device, args.warmup, args.repeats))
        row["fwd_bwd_ms"] = fwd_bwd if fwd_bwd == OOM else 1e3 * fwd_bwd
        print(row, flush=True)
    return rows


def measure_training(args: argparse.Namespace, length: int) -> list[dict]:
    """One row per model: a training step on `train_tokens // length` sequences of `length` tokens."""
    batch = max(1, args.train_tokens // length)
    rows = []
    for name in MODELS:
        row = {"model": name, "length": length, "batch": batch, "tokens_per_step": batch * length}
        rows.append(row)
        speed = or_oom(lambda: train_step_speed(args, name, batch, length))
        if speed == OOM:
            row.update(step_ms=OOM, tokens_per_second=OOM, peak_memory_bytes=OOM)
        else:
            row.update(speed)
        print(row, flush=True)
        release_memory()
    return rows


def train_step_speed(args: argparse.Namespace, name: str, batch: int, length: int) -> dict:
    """Median time, throughput and peak memory of one training step (forward with the LM loss, backward, AdamW) of
    a fresh model, the only one on the device."""
    # GPT-2's position table is sized to the length, as it would be for training at that length.
    model = build_model(name, args, args.hidden_size, args.heads, args.layers, args.vocab_size, positions=length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(args.vocab_size, (batch, length), device=args.device)

    def step() -> None:
        with autocast(args.device):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # One step before timing at least: AdamW allocates its state on the first.
    for _ in range(max(args.warmup, 1)):
        step()
    if args.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        seconds = median_seconds(step, args.device, 0, args.repeats)
        peak = torch.cuda.max_memory_allocated()
    else:
        seconds = median_seconds(step, args.device, 0, args.repeats)
        peak = peak_memory_bytes(step)
    return {"parameters": model.num_parameters(), "step_ms": 1e3 * seconds,
            "tokens_per_second": batch * length / seconds, "peak_memory_bytes": peak}


def inference_copy(model: PreTrainedModel, device: torch.device) -> PreTrainedModel:
    """The model as one runs it for inference: on GPU reloaded in bfloat16 through `from_pretrained` (which keeps
    FiftyNet's filters in float32), on CPU as it is (float32)."""
    if device.type != "cuda":
        return model.eval()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        kwargs = {"attn_implementation": "sdpa"} if isinstance(model, GPT2LMHeadModel) else {}
        return type(model).from_pretrained(folder, dtype=torch.bfloat16, **kwargs).to(device).eval()


@torch.inference_mode()
def greedy_decode(model: PreTrainedModel, cache: DynamicCache, prompt: torch.Tensor, new_tokens: int,
                  device: torch.device, step: Callable | None = None) -> dict:
    """Prefill `prompt` into the empty `cache`, then `new_tokens` greedy steps of one token each through `step` (the
    model itself by default, or a compiled copy); each phase timed."""
    step = model if step is None else step

    def prefill() -> torch.Tensor:
        logits = model(input_ids=prompt, **{CACHE_NAME: cache}, use_cache=True, logits_to_keep=1).logits
        return logits[:, -1].argmax(-1, keepdim=True)

    def decode(token: torch.Tensor) -> torch.Tensor:
        generated = []
        for _ in range(new_tokens):
            logits = step(input_ids=token, **{CACHE_NAME: cache}, use_cache=True).logits
            token = logits[:, -1].argmax(-1, keepdim=True)
            generated.append(token)
        return torch.cat(generated, dim=1)

    prefill_seconds, token = timed(prefill, device)
    decode_seconds, generated = timed(lambda: decode(token), device)
    return {"prefill": prefill_seconds, "decode": decode_seconds, "tokens": generated}


def measure_generation(args: argparse.Namespace) -> list[dict]:
    """One row per prompt length, batch size and model: median prefill time and greedy decode throughput."""
    rows = []
    positions = max(args.prompts) + args.new_tokens + 1
    models = {name: inference_copy(build_model(name, args, args.hidden_size, args.heads, args.layers,
                                               args.vocab_size, positions), args.device) for name in MODELS}
    runners = dict(models)
    if args.compile:
        # The decoding steps only: a compiled prefill would unroll the chunked scan's loop over a long prompt.
        runners[COMPILED] = torch.compile(models["fiftynet"])
    for prompt_length in args.prompts:
        for batch in args.gen_batches:
            prompt = torch.randint(args.vocab_size, (batch, prompt_length), device=args.device)
            for name, runner in runners.items():
                row = {"model": name, "prompt": prompt_length, "batch": batch, "new_tokens": args.new_tokens}
                rows.append(row)
                model = models["fiftynet" if name == COMPILED else name]

                def run() -> list[dict]:
                    # A warm-up needs the prefill's shapes and a few decode steps, not the whole decode.
                    for _ in range(args.warmup):
                        greedy_decode(model, DynamicCache(config=model.config), prompt, min(args.new_tokens, 2),
                                      args.device, runner)
                    return [greedy_decode(model, DynamicCache(config=model.config), prompt, args.new_tokens,
                                          args.device, runner)
                            for _ in range(args.repeats)]

                runs = or_oom(run)
                if runs == OOM:
                    row.update(prefill_ms=OOM, decode_ms=OOM, decode_tokens_per_second=OOM)
                    continue
                decode_seconds = statistics.median(run["decode"] for run in runs)
                row.update(prefill_ms=1e3 * statistics.median(run["prefill"] for run in runs),
                           decode_ms=1e3 * decode_seconds,
                           decode_tokens_per_second=batch * args.new_tokens / decode_seconds)
                print(row, flush=True)
    return rows


def measure_chunk_head(args: argparse.Namespace) -> dict:
    """`generate_with_chunk_head` against greedy `generate()` (batch 1,
    `fiftynet.training.chunk_head.measure_decoding`) on the benchmark's FiftyNet with a new `--chunk-head-size` head,
    whose drafts start as the next-token prediction.

    `pass_cost` is the time of one drafting pass in greedy steps (tokens per pass / speed-up): a trained head pays
    when its passes keep more than `pass_cost` tokens on average, and reaches 1.3x at `1.3 * pass_cost`.
    """
    model = build_model("fiftynet", args, args.hidden_size, args.heads, args.layers, args.vocab_size, positions=0)
    add_chunk_head(model, args.chunk_head_size)
    model = inference_copy(model, args.device)
    generator = torch.Generator().manual_seed(0)
    prompts = torch.randint(args.vocab_size, (args.chunk_prompts, args.chunk_prompt_length), generator=generator)
    measure_decoding(model, prompts[:1, :8].to(args.device), 2)  # warm-up
    result = measure_decoding(model, prompts.to(args.device), args.new_tokens)
    result["pass_cost"] = result["tokens_per_forward_pass"] / result["speedup"]
    result.update(chunk_head_size=args.chunk_head_size, prompt_length=args.chunk_prompt_length)
    print(result, flush=True)
    return result


def code_version() -> dict:
    """The git commit, whether the tree differs from it, and a hash of the modeling files as imported: the numbers
    belong to that code, which may be uncommitted."""
    package = Path(modeling_fiftynet.__file__).parent
    sources = b"".join(path.read_bytes() for path in sorted(package.glob("*.py")))
    version = {"modeling_fiftynet_sha256": hashlib.sha256(sources).hexdigest()[:16], "git_commit": None,
               "uncommitted_changes": None}
    try:
        git = ["git", "-C", str(package.parent)]
        version["git_commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                                               check=True).stdout.strip()
        status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True, check=True).stdout
        version["uncommitted_changes"] = bool(status.strip())
    except (OSError, subprocess.CalledProcessError):
        pass  # not a git checkout (an installed copy): the hash still identifies the code
    return version


def environment(args: argparse.Namespace, argv: list[str]) -> dict:
    device = args.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        cpuinfo = Path("/proc/cpuinfo")
        cpu_names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                     if line.startswith("model name")] if cpuinfo.exists() else []
        name = f"{cpu_names[0] if cpu_names else platform.processor()}, {os.cpu_count()} cores"
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = None
    return {
        "device": f"{device.type}: {name}",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "triton": triton,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "dtype": ("mixer and training: bfloat16 autocast over float32 weights; generation: bfloat16 weights "
                  "(FiftyNet's filters float32)") if device.type == "cuda" else "float32",
        "peak_memory": ("torch.cuda.max_memory_allocated over the timed steps: weights, gradients, AdamW state and "
                        "activations") if device.type == "cuda" else (
                        "PyTorch profiler's tensor allocations during one step, above what was allocated when it "
                        "started: gradients, activations and temporaries, not the weights or AdamW state"),
        "command": shlex.join(["python", "-m", "benchmarks.speed", *argv]),
        "code": code_version(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def ratio(numerator, denominator) -> str:
    if OOM in (numerator, denominator):
        return "–"
    return f"{numerator / denominator:.2f}x"


def cell(value, digits: int = 1) -> str:
    return value if isinstance(value, str) else f"{value:,.{digits}f}"


def markdown(results: dict) -> str:
    """The results as markdown tables: mixer forward and forward+backward, training, generation."""
    mixer = {(row["op"], row["length"]): row for row in results["mixer"]}
    lengths = sorted({row["length"] for row in results["mixer"]})
    conv, sdpa, layer, attention = (*RAW_OPS, *LAYERS)
    lines = [
        "Mixer forward, batch 1 (ms; floor: the bytes the op must move at the measured copy bandwidth)", "",
        "| L | fft_causal_conv | SDPA | SDPA / conv | conv of floor | mixer layer | attention layer | "
        "attention / mixer | mixer of floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for length in lengths:
        row = {op: mixer[op, length] for op in (conv, sdpa, layer, attention)}
        fractions = [f"{row[op]['floor_fraction']:.1%}" if "floor_fraction" in row[op] else "–" for op in (conv, layer)]
        lines.append(f"| {length:,} | {cell(row[conv]['fwd_ms'], 2)} | {cell(row[sdpa]['fwd_ms'], 2)} | "
                     f"{ratio(row[sdpa]['fwd_ms'], row[conv]['fwd_ms'])} | {fractions[0]} | "
                     f"{cell(row[layer]['fwd_ms'], 2)} | {cell(row[attention]['fwd_ms'], 2)} | "
                     f"{ratio(row[attention]['fwd_ms'], row[layer]['fwd_ms'])} | {fractions[1]} |")
    lines += ["", "Mixer forward + backward, batch 1 (ms)", "",
              "| L | fft_causal_conv | SDPA | SDPA / conv | mixer layer | attention layer | attention / mixer |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for length in lengths:
        values = [mixer[op, length]["fwd_bwd_ms"] for op in (conv, sdpa, layer, attention)]
        lines.append(f"| {length:,} | {cell(values[0], 2)} | {cell(values[1], 2)} | {ratio(values[1], values[0])} | "
                     f"{cell(values[2], 2)} | {cell(values[3], 2)} | {ratio(values[3], values[2])} |")

    training = {(row["model"], row["length"]): row for row in results["training"]}
    lines += ["", "Training step (forward, backward, AdamW)", "",
              "| L | batch | FiftyNet tokens/s | GPT-2 tokens/s | FiftyNet / GPT-2 | FiftyNet peak MiB | "
              "GPT-2 peak MiB |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for length in sorted({row["length"] for row in results["training"]}):
        ours, theirs = training["fiftynet", length], training["gpt2", length]
        memory = [cell(row["peak_memory_bytes"] / 2**20, 0) if row["peak_memory_bytes"] != OOM else OOM
                  for row in (ours, theirs)]
        lines.append(f"| {length:,} | {ours['batch']} | {cell(ours['tokens_per_second'], 0)} | "
                     f"{cell(theirs['tokens_per_second'], 0)} | "
                     f"{ratio(ours['tokens_per_second'], theirs['tokens_per_second'])} | {memory[0]} | {memory[1]} |")

    generation = {(row["model"], row["prompt"], row["batch"]): row for row in results["generation"]}
    new_tokens = results["generation"][0]["new_tokens"]
    lines += ["", f"Generation: prefill, then {new_tokens} greedy decode steps of one token", "",
              "| prompt | batch | FiftyNet prefill ms | GPT-2 prefill ms | FiftyNet decode tokens/s | "
              "GPT-2 decode tokens/s | FiftyNet / GPT-2 |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for prompt, batch in sorted({(row["prompt"], row["batch"]) for row in results["generation"]}):
        ours, theirs = generation["fiftynet", prompt, batch], generation["gpt2", prompt, batch]
        lines.append(f"| {prompt:,} | {batch} | {cell(ours['prefill_ms'])} | {cell(theirs['prefill_ms'])} | "
                     f"{cell(ours['decode_tokens_per_second'])} | {cell(theirs['decode_tokens_per_second'])} | "
                     f"{ratio(ours['decode_tokens_per_second'], theirs['decode_tokens_per_second'])} |")
    if COMPILED in {model for model, _, _ in generation}:
        lines += ["", "FiftyNet's decoding through `torch.compile` (compiled before the timed runs)", "",
                  "| prompt | batch | eager tokens/s | compiled tokens/s | compiled / eager |",
                  "|---:|---:|---:|---:|---:|"]
        for prompt, batch in sorted({(row["prompt"], row["batch"]) for row in results["generation"]}):
            eager = generation["fiftynet", prompt, batch]["decode_tokens_per_second"]
            compiled = generation[COMPILED, prompt, batch]["decode_tokens_per_second"]
            lines.append(f"| {prompt:,} | {batch} | {cell(eager)} | {cell(compiled)} | {ratio(compiled, eager)} |")

    chunk = results["chunk_head"]
    lines += ["", f"Chunk head ({chunk['chunk_head_size']} drafts, untrained, random weights): "
              f"`generate_with_chunk_head` against greedy `generate()`, batch 1, {chunk['prompts']} prompts of "
              f"{chunk['prompt_length']} tokens, {chunk['new_tokens_per_prompt']} new tokens each", "",
              "| identical output | tokens per pass | speed-up | pass cost (greedy steps) | tokens per pass for 1.3x |",
              "|---|---:|---:|---:|---:|",
              f"| {'yes' if chunk['identical_to_greedy'] else 'NO'} | {chunk['tokens_per_forward_pass']:.2f} | "
              f"{chunk['speedup']:.2f}x | {chunk['pass_cost']:.2f} | {1.3 * chunk['pass_cost']:.2f} |"]
    if "kernel_tests" in results:
        lines += ["", "Triton kernel tests", "", "| test | outcome |", "|---|---|"]
        lines += [f"| `{name}` | {outcome} |" for name, outcome in results["kernel_tests"].items()]
    return "\n".join(lines) + "\n"


def kernel_test_results(junit_xml: Path) -> dict:
    """Each test case of a pytest JUnit XML report with its outcome ("passed", "failed", "error" or "skipped")."""
    outcomes = {}
    for case in ElementTree.parse(junit_xml).getroot().iter("testcase"):
        failed = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes[f"{case.get('classname')}::{case.get('name')}"] = {"failure": "failed"}.get(failed, failed)
    return outcomes


def measured(rows: list[dict], x: str, y: str, **match) -> tuple[list, list]:
    """The (x, y) points of the rows that match, leaving out what ran out of memory."""
    points = [(row[x], row[y]) for row in rows
              if all(row[key] == value for key, value in match.items()) and row.get(y, OOM) != OOM]
    return tuple(zip(*points)) if points else ([], [])


def plot(results: dict, output_dir: Path) -> None:
    environment, settings = results["environment"], results["settings"]
    title = f"{environment['device']}, torch threads: {environment['torch_threads']}"
    models = f"{settings['hidden_size']} wide, {settings['layers']} layers, vocabulary {settings['vocab_size']:,}"
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, key, label in zip(axes, ("fwd_ms", "fwd_bwd_ms"), ("forward", "forward + backward")):
        for op in (*RAW_OPS, *LAYERS):
            axis.loglog(*measured(results["mixer"], "length", key, op=op), marker="o", label=op)
        axis.set(xlabel="sequence length L", ylabel="ms",
                 title=f"mixer {label}, batch 1, {settings['mixer_hidden_size']} wide")
        axis.grid(alpha=0.3, which="both")
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(output_dir / "speed_mixer.png", dpi=120)

    figure, axis = plt.subplots(figsize=(7, 4.8))
    for name in MODELS:
        axis.semilogx(*measured(results["training"], "length", "tokens_per_second", model=name), marker="o",
                      label=name)
    axis.set(xlabel="sequence length L", ylabel="training tokens/s", title=f"training step, {models}\n{title}")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    figure.tight_layout()
    figure.savefig(output_dir / "speed_training.png", dpi=120)

    figure, axis = plt.subplots(figsize=(7, 4.8))
    for name in dict.fromkeys(row["model"] for row in results["generation"]):
        for batch in sorted({row["batch"] for row in results["generation"]}):
            axis.loglog(*measured(results["generation"], "prompt", "decode_tokens_per_second", model=name,
                                  batch=batch), marker="o", label=f"{name}, batch {batch}")
    axis.set(xlabel="context (prompt) length", ylabel="decode tokens/s", title=f"greedy decoding, {models}\n{title}")
    axis.grid(alpha=0.3, which="both")
    axis.legend()
    figure.tight_layout()
    figure.savefig(output_dir / "speed_decode.png", dpi=120)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true", help="the short CPU sweep (the default with --device cpu)")
    parser.add_argument("--lengths", type=int, nargs="+", help="sequence lengths of the mixer and training parts")
    parser.add_argument("--prompts", type=int, nargs="+", help="prompt lengths of the generation part")
    parser.add_argument("--gen-batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--new-tokens", type=int, default=64, help="greedy decode steps after each prompt")
    parser.add_argument("--train-tokens", type=int, help="tokens per training step (batch = this // L, at least 1)")
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--mixer-hidden-size", type=int, default=768)
    parser.add_argument("--mixer-heads", type=int, default=12)
    parser.add_argument("--hidden-size", type=int, default=768, help="width of the language models")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab-size", type=int, default=50257)
    parser.add_argument("--mixer-type", default="spectral_conv", choices=CONSTANT_STATE_MIXERS)
    parser.add_argument("--train-lengths", type=int, nargs="+",
                        help="lengths of the training part (default: --lengths)")
    parser.add_argument("--compile", action="store_true", help="also time FiftyNet's decoding through torch.compile")
    parser.add_argument("--chunk-head-size", type=int, default=3, help="drafts of the chunk head (part 4)")
    parser.add_argument("--chunk-prompts", type=int, default=4, help="prompts decoded with and without the chunk head")
    parser.add_argument("--chunk-prompt-length", type=int, default=64)
    parser.add_argument("--kernel-tests", type=Path,
                        help="JUnit XML of the Triton kernel tests (pytest --junitxml), added to the report")
    parser.add_argument("--threads", type=int,
                        help="CPU threads (default: PyTorch's); 1 on cores shared with other jobs, where a thread "
                             "that waits for a busy core stalls every parallel op")
    args = parser.parse_args(argv)
    args.device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = PRESETS["quick" if args.quick or args.device.type == "cpu" else "full"]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    bandwidth = copy_bandwidth(args)
    print(f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s", flush=True)
    results = {
        "environment": environment(args, argv),
        "settings": {key: str(value) if isinstance(value, (Path, torch.device)) else value
                     for key, value in vars(args).items()},
        "copy_bandwidth_bytes_per_second": bandwidth,
        "mixer": [],
        "training": [],
    }
    # Each length in its own call, so its tensors and models are freed before the next (longer, bigger) one.
    for length in args.lengths:
        results["mixer"] += measure_mixers(args, length, bandwidth)
        release_memory()
    for length in args.train_lengths or args.lengths:
        results["training"] += measure_training(args, length)
        release_memory()
    results["generation"] = measure_generation(args)
    release_memory()
    results["chunk_head"] = measure_chunk_head(args)
    if args.kernel_tests:
        results["kernel_tests"] = kernel_test_results(args.kernel_tests)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "speed.json").write_text(json.dumps(results, indent=2))
    tables = markdown(results)
    (args.output_dir / "speed.md").write_text(tables)
    plot(results, args.output_dir)
    print(tables)
    return results


if __name__ == "__main__":
    main()
