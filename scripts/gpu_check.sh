#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: install vLLM's CUDA build (`make vllm` picks it), run the calib-vllm
# exactness tests there, then time calib-vllm against stock vllm (bench/bench_vllm.py). Never needed by
# the test suite.  Writes gpu_check/ (pytest log, bench JSON).  Usage: bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null && nvidia-smi -L | grep -q '^GPU' || { echo "gpu_check: no NVIDIA GPU here" >&2; exit 1; }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CALIB_HARNESS_SHARED_DATA="${CALIB_HARNESS_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
mkdir -p gpu_check
make vllm
nvidia-smi -L | tee gpu_check/gpus.txt
# the same module CI runs on the CPU build: stock vllm / calib-hf / teacher forcing, on the GPU
CALIB_TEST_GPU_MEM=0.3 .venv/bin/python -m pytest tests/test_vllm.py -x -q -ra 2>&1 | tee gpu_check/pytest.log
.venv/bin/python bench/bench_vllm.py --device gpu --limit "${LIMIT:-100}" --out gpu_check/bench_vllm.json
echo "gpu_check: done; see gpu_check/"
