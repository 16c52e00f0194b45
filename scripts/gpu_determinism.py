"""Is greedy generation run-to-run deterministic on this device and dtype, and does the capture change it?

Two views on calib_gsm8k prompts (SmolLM2): plain ``transformers.generate`` twice against
``output_logits=True, return_dict_in_generate=True`` (what calib-hf asks for) twice, on one batch; then
lm-eval's stock ``hf`` and ``calib-hf`` twice each on the same docs.  Prints which rows / docs differ and
writes them as JSON.  On an H200 in bf16 the two plain calls already differed (docs/RESULTS.md, "On a GPU").

    python scripts/gpu_determinism.py --data-dir ../shared/data --dtype bfloat16 -o gpu_determinism.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--docs", type=int, default=16)
    ap.add_argument("--max-gen-toks", type=int, default=128)
    ap.add_argument("-o", "--output", default="gpu_determinism.json")
    a = ap.parse_args(argv)

    import torch
    import transformers
    from lm_eval.api.registry import get_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import calib_harness.lm_models  # noqa: F401  (registers calib-hf)
    from bench.bench_generation import build_requests, differing
    from calib_harness.data_sources import set_data_dir
    from calib_harness.models import resolve_model
    from calib_harness.outputs import write_json

    set_data_dir(a.data_dir)
    path = resolve_model(a.model)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, a.dtype)).to(a.device).eval()
    reqs = build_requests("calib_gsm8k", a.docs, a.max_gen_toks)

    # 1. transformers alone, one left-padded batch of (at most) 8 prompts
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    enc = tok([r.arguments[0] for r in reqs[:8]], return_tensors="pt", padding=True).to(a.device)
    kw = dict(max_new_tokens=a.max_gen_toks, do_sample=False)
    rows = {}
    for name in ("plain_1", "logits_1", "plain_2", "logits_2"):
        if name.startswith("logits"):
            out = model.generate(**enc, **kw, output_logits=True, return_dict_in_generate=True).sequences
        else:
            out = model.generate(**enc, **kw)
        rows[name] = [r.tolist() for r in out.cpu()]

    # 2. lm-eval's generate_until, both model types on the one model object, alternating
    arms = {n: get_model(n)(pretrained=model, tokenizer=tok, batch_size=8, device=a.device) for n in ("hf", "calib-hf")}
    texts = {}
    for name in ("hf_1", "calib-hf_1", "calib-hf_2", "hf_2"):
        texts[name] = [str(o) for o in arms[name.rsplit("_", 1)[0]].generate_until(reqs, disable_tqdm=True)]

    res = {
        "device": a.device, "dtype": a.dtype, "model": a.model, "docs": a.docs, "max_gen_toks": a.max_gen_toks,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "generate_rows_differing": {f"{x} vs {y}": differing(rows[x], rows[y]) for x in rows for y in rows if x < y},
        "generate_until_docs_differing": {f"{x} vs {y}": differing(texts[x], texts[y]) for x in texts for y in texts if x < y},
    }
    print(json.dumps(res, indent=1))
    write_json(a.output, res)
    return res


if __name__ == "__main__":
    main()
