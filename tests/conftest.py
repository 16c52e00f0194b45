"""Shared fixtures: real data (the ONE way tests find it: the ``shared_data`` fixture, resolved by
:func:`calib_harness.paths.shared_data_dir`), shipped models, offline hub settings.

Every test that loads a real model -- through one of :data:`REAL_MODEL_FIXTURES` -- is marked ``slow``
here, so none can be left unmarked; tests that load one otherwise carry ``@pytest.mark.slow`` themselves
(``tests/test_repo_structure.py`` checks that).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


#: fixtures that load a real (shipped) model or its tokenizer: their tests are marked slow automatically
REAL_MODEL_FIXTURES = frozenset({"smollm2_path", "tiny_random_lm", "smollm", "hf_model", "lm"})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())) and "slow" not in item.keywords:
            item.add_marker(pytest.mark.slow)


def _shared_data() -> Path:
    from calib_harness.paths import shared_data_dir

    return shared_data_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data beside the checkout; a missing folder fails loudly (never skips)."""
    path = _shared_data()
    if not (path / "SOURCES.md").exists():
        pytest.fail(
            f"real benchmark data not found at {path}: set CALIB_HARNESS_SHARED_DATA or put shared/ beside the checkout"
        )
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def demo_data() -> Path:
    from calib_harness.paths import DEMO_DATA_DIR

    return DEMO_DATA_DIR


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """The shipped SmolLM2-135M as a local transformers folder (materialised once)."""
    from calib_harness.models import resolve_model

    return resolve_model("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_random_lm(tmp_path_factory, smollm2_path) -> str:
    """A 2-layer randomly initialised Llama with SmolLM2's real tokenizer: fast plumbing tests."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny_lm")
    tok = AutoTokenizer.from_pretrained(smollm2_path)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)
