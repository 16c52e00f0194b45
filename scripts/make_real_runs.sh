#!/usr/bin/env bash
# The real runs behind the measurements in the issue notes (slow on 2 CPU cores: hours, not minutes).
# Resumable: lm-eval's --use_cache keeps every finished request in runs/cache/.
#
#   scripts/make_real_runs.sh                      ARC-Easy test[:LIMIT] for each of MODELS (cloze)
#   MMLU=1 ARC=0 scripts/make_real_runs.sh         MMLU-Redux questions of REDUX_SUBJECTS, 0-shot
#
# Measured on 2 cores (OMP_NUM_THREADS=2), Qwen2.5-Coder-1.5B (`make large-model`): 32 min for the 1,091
# MMLU-Redux questions (one forward pass per question), 14 min for ARC-Easy test[:300] (1,200 requests);
# SmolLM2-135M is about 8x faster.  Run one model at a time: two share the cores badly.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] && export PATH="$PWD/.venv/bin:$PATH"  # the project's venv (make install), if there is one
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} TOKENIZERS_PARALLELISM=false
DATA=${CALIB_HARNESS_SHARED_DATA:-../shared/data}
LIMIT=${LIMIT:-1000}
MODELS=${MODELS:-"smollm2-135m qwen2.5-coder-0.5b"}
mkdir -p runs/cache
if [ "${ARC:-1}" = 1 ]; then
  for m in $MODELS; do
    calib-lm-eval --model hf --model_args pretrained=$m,dtype=float32 --tasks calib_arc_easy \
      --data_dir "$DATA" --limit "$LIMIT" --batch_size 8 --use_cache runs/cache/arc_easy_$m \
      --output_path runs/arc_easy/$m --log_samples
  done
fi

# MMLU test questions annotated by MMLU-Redux, 0-shot: the cleaning (issue 7) and cascade (issue 6)
# measurements.  Subjects: the six short-prompt subjects of an earlier seeded draw of eight
# (professional_medicine and security_studies dropped: 2-3x longer prompts) plus the five
# short-prompt subjects with the most Redux errors (virology, the most, is already in).
REDUX_SUBJECTS=${REDUX_SUBJECTS:-"college_biology conceptual_physics high_school_psychology jurisprudence moral_disputes virology logical_fallacies human_sexuality global_facts human_aging public_relations"}
if [ "${MMLU:-0}" = 1 ]; then
  SAMPLES=runs/mmlu_redux_samples_v2.json
  python - "$DATA" "$SAMPLES" $REDUX_SUBJECTS <<'PY'
# the questions the cleaning reference covers, as lm-eval --samples {task: [doc ids]}
import json, sys
from calib_harness.cleaning.reference import mmlu_redux_reference
data, out_path, subjects = sys.argv[1], sys.argv[2], sys.argv[3:]
out = {}
for task, doc_id in mmlu_redux_reference(data, subjects).entries:
    out.setdefault(task, []).append(int(doc_id))
json.dump({k: sorted(v) for k, v in sorted(out.items())}, open(out_path, "w"))
print(f"{out_path}: {sum(map(len, out.values()))} questions in {len(out)} subjects")
PY
  for m in $MODELS; do
    calib-lm-eval --model hf --model_args pretrained=$m,dtype=float32 \
      --tasks "$(python -c "import json;print(','.join(json.load(open('$SAMPLES'))))")" \
      --samples "$SAMPLES" --num_fewshot 0 \
      --data_dir "$DATA" --batch_size 8 --use_cache runs/cache/mmlu_redux_$m \
      --output_path runs/mmlu_redux_v2/$m --log_samples
  done
fi

# vLLM (`make vllm`; issue 14): every MMLU-Redux question (all 57 subjects, 5,700 questions less the
# ones Redux cannot map to an MMLU test index), 0-shot, with each model of VLLM_MODELS; then GSM8K test
# (1,319) and MBPP test (500) with GEN_MODELS (GEN_LIMIT=N: the first N docs of each).  Outputs under
# runs/vllm/; resumable (--use_cache per run, requests are cached batch by batch: rerun the same command,
# or a larger GEN_LIMIT, to continue).  MMLU letters cost one forward pass per question (calib-vllm scores
# one-token options from one request).  Generation runs use capture_mode=raw_logits (mean raw logit
# exact, log-likelihood requests refused; there are none) with the top-20 per token (log-prob / entropy
# marked approximate; CAPTURE_TOPK=-1 for exact, slower).  enforce_eager: on the CPU build torch.compile
# only adds start time (bench/bench_vllm_compile.py).  CPU build: VLLM_CPU_KVCACHE_SPACE GiB of KV cache.
# Measured throughput on 2 cores: docs/RESULTS.md, "vLLM runs".
#   VLLM=1 ARC=0 scripts/make_real_runs.sh
#   VLLM=1 ARC=0 VLLM_MODELS=smollm2-135m GEN_MODELS= scripts/make_real_runs.sh     one model, MMLU only
#   VLLM=1 ARC=0 VLLM_MODELS= GEN_MODELS=qwen2.5-coder-0.5b GEN_TASKS=calib_gsm8k GEN_LIMIT=128 scripts/make_real_runs.sh
if [ "${VLLM:-0}" = 1 ]; then
  export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-4}
  # CPU build, one worker, one NUMA node: bind the worker to every core this process may use.  vLLM's
  # default reserves one core per worker for its scheduler, which on 2 cores halves the model's share;
  # binding both ran the 1.5B 1.7-1.8x faster (bench/bench_vllm_threads.py).  Set it to "auto" for vLLM's own.
  if [ -z "${VLLM_CPU_OMP_THREADS_BIND:-}" ] && [ "$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | wc -l)" -le 1 ]; then
    VLLM_CPU_OMP_THREADS_BIND=$(python -c "import sys; sys.path.insert(0, 'bench'); from bench_vllm import every_core; print(every_core())")
    export VLLM_CPU_OMP_THREADS_BIND
  fi
  VLLM_MODELS=${VLLM_MODELS-"smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b"}
  GEN_MODELS=${GEN_MODELS-"qwen2.5-coder-0.5b qwen2.5-coder-1.5b"}
  GEN_TASKS=${GEN_TASKS:-"calib_gsm8k calib_mbpp"}
  ENGINE="dtype=float32,max_model_len=4096,enforce_eager=True"
  SAMPLES=runs/vllm/mmlu_redux_samples_all.json
  mkdir -p runs/vllm/cache
  python - "$DATA" "$SAMPLES" <<'PY'
import json, sys
from calib_harness.cleaning.reference import mmlu_redux_reference
data, out_path = sys.argv[1], sys.argv[2]
out = {}
for task, doc_id in mmlu_redux_reference(data).entries:
    out.setdefault(task, []).append(int(doc_id))
json.dump({k: sorted(v) for k, v in sorted(out.items())}, open(out_path, "w"))
print(f"{out_path}: {sum(map(len, out.values()))} questions in {len(out)} subjects")
PY
  for m in $VLLM_MODELS; do
    calib-lm-eval --model calib-vllm --model_args pretrained=$m,$ENGINE \
      --tasks "$(python -c "import json;print(','.join(json.load(open('$SAMPLES'))))")" \
      --samples "$SAMPLES" --num_fewshot 0 --data_dir "$DATA" --batch_size 256 \
      --use_cache runs/vllm/cache/mmlu_redux_$m --output_path runs/vllm/mmlu_redux/$m --log_samples
  done
  for m in $GEN_MODELS; do
    for t in $GEN_TASKS; do
      calib-lm-eval --model calib-vllm \
        --model_args pretrained=$m,$ENGINE,capture_mode=raw_logits,capture_topk=${CAPTURE_TOPK:-20} \
        --tasks $t --data_dir "$DATA" --batch_size 64 ${GEN_LIMIT:+--limit $GEN_LIMIT} \
        --use_cache runs/vllm/cache/${t}_$m --output_path runs/vllm/${t#calib_}/$m --log_samples
    done
  done
fi
