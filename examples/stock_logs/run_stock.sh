#!/usr/bin/env bash
# Two stock lm-eval runs of arc_easy, offline, as a user makes them (see README.md in this folder).
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
LIMIT=${LIMIT:-40}
OUT=${OUT:-runs}
[ -f arc_local/data/test.parquet ] || python make_arc_parquet.py "${ARC_EASY_DIR:-${CALIB_HARNESS_SHARED_DATA:-/work/shared/data}/arc/ARC-Easy}"
for m in smollm2-135m qwen2.5-coder-0.5b; do
  nice -n 10 lm_eval --model hf \
    --model_args "pretrained=$(calib-harness info --resolve "$m"),dtype=float32" \
    --tasks arc_easy --include_path arc_local \
    --limit "$LIMIT" --batch_size 8 \
    --log_samples --output_path "$OUT"
done
