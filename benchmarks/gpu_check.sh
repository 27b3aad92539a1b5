#!/usr/bin/env bash
# The GPU check: what FiftyNet needs measured on one H100/H200, in one run of under 8 minutes (steps 1 and 2; step 3
# has not run on a GPU yet), written to speed.json, speed.md and convert_check.json:
#   1. the Triton kernel tests (tests/test_modal_conv.py -k triton) on CUDA;
#   2. benchmarks/speed.py: the mixer and layer sweep against SDPA at L = 1k to 32k in bfloat16, training tokens/s at
#      1k and 8k, decode tokens/s after 1k, 8k and 32k prompts (batch 1 and 16), and the chunk head's pass cost;
#   3. benchmarks/convert_check.py: `fiftynet convert` of a random teacher of SmolLM2-135M's shape (bfloat16 teacher,
#      bf16, activation checkpointing, layer-wise groups of 9 layers, streamed text), its memory estimate against the
#      measured peak, into convert_check.json.
#
#   bash benchmarks/gpu_check.sh                                  # on the GPU, GPT-2 small's size
#   bash benchmarks/gpu_check.sh --device cpu --output-dir DIR    # every step at tiny sizes (tests/test_gpu_check.py)
#
# With --device cpu the kernel tests run through Triton's interpreter. It runs $PYTHON (default python3), which needs
# the package and its dependencies (pip install -e ".[kernels,test]"). The report goes to --output-dir (default
# benchmarks/results/gpu_check). The exit status is the kernel tests' (after the benchmark has run), or the
# benchmark's if it fails.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
output_dir=benchmarks/results/gpu_check
while (($#)); do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --output-dir) output_dir=$2; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (takes --device cuda|cpu and --output-dir DIR)" >&2; exit 2 ;;
  esac
done

case "$device" in
  cuda) sizes=(--lengths 1024 2048 4096 8192 16384 32768 --train-lengths 1024 8192 --prompts 1024 8192 32768
               --hidden-size 768 --layers 12 --heads 12 --warmup 2 --repeats 5) ;;
  cpu) sizes=(--mixer-hidden-size 64 --mixer-heads 2 --hidden-size 64 --layers 2 --heads 2 --vocab-size 512
              --lengths 64 128 --train-lengths 64 --prompts 32 --gen-batches 1 2 --new-tokens 4 --train-tokens 128
              --chunk-prompts 1 --chunk-prompt-length 8 --warmup 0 --repeats 1 --threads 1) ;;
  *) echo "gpu_check.sh: --device must be cuda or cpu, not '$device'" >&2; exit 2 ;;
esac

mkdir -p "$output_dir"
kernels=0
"${PYTHON:-python3}" -m pytest tests/test_modal_conv.py -k triton -q -rA -p no:cacheprovider \
  --junitxml "$output_dir/kernel_tests.xml" || kernels=$?
"${PYTHON:-python3}" -m benchmarks.speed --output-dir "$output_dir" --device "$device" "${sizes[@]}" \
  --kernel-tests "$output_dir/kernel_tests.xml"
"${PYTHON:-python3}" -m benchmarks.convert_check --output-dir "$output_dir" --device "$device"
exit "$kernels"
