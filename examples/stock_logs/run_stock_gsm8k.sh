#!/usr/bin/env bash
# A stock lm-eval gsm8k run (generate_until, two filters: strict-match and flexible-extract), offline.
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
GSM8K_DIR=${GSM8K_DIR:-${CALIB_HARNESS_SHARED_DATA:-/work/shared/data}/gsm8k}
sed "s|GSM8K_DIR|$GSM8K_DIR|g" gsm8k_local/gsm8k.yaml.in > gsm8k_local/gsm8k.yaml
nice -n 10 lm_eval --model hf \
  --model_args "pretrained=$(calib-harness info --resolve smollm2-135m),dtype=float32" \
  --tasks gsm8k --include_path gsm8k_local --num_fewshot 1 --gen_kwargs max_gen_toks=48 \
  --limit "${LIMIT:-4}" --batch_size 4 --log_samples --output_path "${OUT:-runs_gsm8k}"
