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
