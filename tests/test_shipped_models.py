"""Shipped models materialise with upstream's end tokens: the Qwen2.5-Coder Instruct GGUFs name only
<|im_end|>, and without <|endoftext|> a plain-text answer generates on to the token limit (seen on GSM8K:
126 of 128 1.5B answers ran on into an invented "Human:" turn)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calib_harness.models import SHIPPED_MODELS, _is_ready, _ready_text, resolve_model


@pytest.mark.slow
def test_qwen_stops_at_either_upstream_end_token():
    from transformers import AutoTokenizer

    path = resolve_model("qwen2.5-coder-0.5b")
    eos = json.loads((Path(path) / "generation_config.json").read_text())["eos_token_id"]
    tok = AutoTokenizer.from_pretrained(path)
    assert sorted(eos) == sorted(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])) == [151643, 151645]


def test_a_folder_written_before_end_tokens_is_written_again(tmp_path):
    qwen, smol = SHIPPED_MODELS["qwen2.5-coder-0.5b"], SHIPPED_MODELS["smollm2-135m"]
    (tmp_path / "READY").write_text("ok\n")  # what every folder held before end_tokens
    assert not _is_ready(qwen, tmp_path)
    assert _is_ready(smol, tmp_path)  # models without extra end tokens keep their folders
    (tmp_path / "READY").write_text(_ready_text(qwen))
    assert _is_ready(qwen, tmp_path)
    assert not _is_ready(qwen, tmp_path / "missing")
