#!/usr/bin/env bash
# On a machine with an NVIDIA GPU; never needed by the test suite.  Writes $GPU_CHECK_OUT (gpu_check/).
#  1. calib-hf on the GPU, with the model of MODEL (smollm2-135m), float32:
#     - the MMLU-Redux questions of `MMLU=1 scripts/make_real_runs.sh` (runs/mmlu_redux_samples_v2.json,
#       1,091 questions), 0-shot, batch 8: compared doc by doc with that CPU run (runs/mmlu_redux_v2/MODEL)
#       by scripts/compare_backends.py, when it is there;
#     - calib_gsm8k[:16], batch 8: compared with a CPU run of the same command (runs/gsm8k16_cpu/MODEL:
#       calib-lm-eval --model calib-hf --model_args pretrained=MODEL,dtype=float32 --tasks calib_gsm8k
#       --data_dir DATA --limit 16 --batch_size 8 --output_path runs/gsm8k16_cpu/MODEL --log_samples);
#     - calib_gsm8k[:GSM8K_DOCS] at batch 64, timed (throughput);
#     - the capture overhead, calib-hf vs stock hf (bench/bench_generation.py --device cuda, 16 docs, 128
#       tokens, 3 alternating rounds), float32 and bfloat16; whether bf16 generation repeats itself at all
#       (scripts/gpu_determinism.py).
#  2. vLLM's CUDA build (`make vllm` picks it): the calib-vllm exactness tests on the GPU (tests/test_vllm.py;
#     tests/test_vllm_parallel.py too with two GPUs or more) and calib-vllm vs stock vllm
#     (bench/bench_vllm.py).  SKIP_VLLM=1 skips it (a machine without PyPI).
# PYTHON names the interpreter (default: the project's .venv, from `make install`).  Usage: bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null && nvidia-smi -L | grep -q '^GPU' || { echo "gpu_check: no NVIDIA GPU here" >&2; exit 1; }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export CALIB_HARNESS_SHARED_DATA="${CALIB_HARNESS_SHARED_DATA:-$(cd .. && pwd)/shared/data}"
PY=${PYTHON:-.venv/bin/python}
O=${GPU_CHECK_OUT:-gpu_check}
M=${MODEL:-smollm2-135m}
DATA=$CALIB_HARNESS_SHARED_DATA
mkdir -p "$O"
nvidia-smi -L | tee "$O/gpus.txt"
"$PY" -c "import torch, transformers, lm_eval; print('torch', torch.__version__, 'transformers', transformers.__version__, 'lm_eval', lm_eval.__version__)" | tee -a "$O/gpus.txt"

timed() {  # timed NAME CMD...: run CMD, append "NAME<TAB>seconds" to $O/timings.tsv
  local name=$1 t0=$EPOCHREALTIME; shift
  "$@"
  awk -v n="$name" -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%s\t%.1f\n", n, b - a }' | tee -a "$O/timings.tsv"
}
lm() { "$PY" -m calib_harness.lm_eval_cli --model calib-hf --model_args "pretrained=$M,dtype=float32" --device cuda \
         --data_dir "$DATA" --log_samples "$@"; }

timed materialise "$PY" -c "from calib_harness.models import resolve_model; print(resolve_model('$M'))"
SAMPLES=runs/mmlu_redux_samples_v2.json
if [ -f "$SAMPLES" ]; then
  timed mmlu_redux_cuda lm --tasks "$("$PY" -c "import json;print(','.join(json.load(open('$SAMPLES'))))")" \
    --samples "$SAMPLES" --num_fewshot 0 --batch_size 8 --output_path "$O/mmlu_redux/$M"
  [ -d "runs/mmlu_redux_v2/$M" ] && "$PY" scripts/compare_backends.py "runs/mmlu_redux_v2/$M" "$O/mmlu_redux/$M" \
    -o "$O/compare_mmlu_redux.json"
else
  echo "gpu_check: $SAMPLES missing (MMLU=1 scripts/make_real_runs.sh writes it): MMLU-Redux part skipped"
fi
timed gsm8k16_cuda lm --tasks calib_gsm8k --limit 16 --batch_size 8 --output_path "$O/gsm8k16/$M"
[ -d "runs/gsm8k16_cpu/$M" ] && "$PY" scripts/compare_backends.py "runs/gsm8k16_cpu/$M" "$O/gsm8k16/$M" \
  -o "$O/compare_gsm8k16.json"
timed "gsm8k${GSM8K_DOCS:-256}_cuda_batch64" lm --tasks calib_gsm8k --limit "${GSM8K_DOCS:-256}" --batch_size 64 \
  --output_path "$O/gsm8k_throughput/$M"
for dt in float32 bfloat16; do
  "$PY" bench/bench_generation.py --model "$M" --data-dir "$DATA" --device cuda --dtype $dt --docs 16 \
    --max-gen-toks 128 --batch-size 8 --rounds 3 --out "$O/bench_generation_cuda_$dt.json"
done
"$PY" scripts/gpu_determinism.py --data-dir "$DATA" --model "$M" --dtype bfloat16 -o "$O/determinism_bf16.json"

if [ "${SKIP_VLLM:-0}" != 1 ]; then
  make vllm
  # the same module CI runs on the CPU build: stock vllm / calib-hf / teacher forcing, on the GPU
  CALIB_TEST_GPU_MEM=0.3 "$PY" -m pytest tests/test_vllm.py -x -q -ra 2>&1 | tee "$O/pytest.log"
  # tensor / pipeline / data parallelism, two workers each, where there are two GPUs
  if [ "$(nvidia-smi -L | grep -c '^GPU')" -ge 2 ]; then
    CALIB_TEST_GPU_MEM=0.3 "$PY" -m pytest tests/test_vllm_parallel.py -x -q -ra 2>&1 | tee "$O/pytest_parallel.log"
  fi
  "$PY" bench/bench_vllm.py --device gpu --limit "${LIMIT:-100}" --out "$O/bench_vllm.json"
fi
echo "gpu_check: done; see $O/"
