"""What the vLLM test modules share: engine settings, running lm-eval on a model object, shutting an
engine down, and transformers' own figures to check captured ones against."""

from __future__ import annotations

import gc
import os

ENGINE = dict(dtype="float32", max_model_len=2048, seed=1234, enforce_eager=True,
              gpu_memory_utilization=float(os.environ.get("CALIB_TEST_GPU_MEM", "0.3")))


def device() -> str:
    from vllm.platforms import current_platform

    return "cuda" if current_platform.is_cuda() else "cpu"


def evaluate(lm, tasks, limit, **kw):
    from lm_eval import simple_evaluate

    return simple_evaluate(model=lm, tasks=tasks, limit=limit, log_samples=True, bootstrap_iters=0, **kw)


def hf_evaluate(path, tasks, limit, **kw):
    """The same documents through ``calib-hf`` (float32, batch 8): the reference each vLLM run is held to."""
    from calib_harness.lm_models import CalibHFLM

    lm = CalibHFLM(pretrained=path, dtype="float32", batch_size=8, device=device())
    out = evaluate(lm, tasks, limit, **kw)
    del lm
    gc.collect()
    return out


def shutdown(lm) -> None:
    engine = getattr(getattr(lm, "model", None), "llm_engine", None)
    core = getattr(engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    del lm
    gc.collect()


def by_doc(out, task):
    return {s["doc_id"]: s for s in out["samples"][task]}


def option_scores(sample):
    return [float(r[0]) for r in sample["filtered_resps"]]


def captures(out, task):
    """(sample, token figures) per document, in doc order."""
    from calib_harness.capture.generation import get_capture

    caps = []
    for s in sorted(out["samples"][task], key=lambda s: s["doc_id"]):
        cap = get_capture(s["resps"][0][0])
        assert cap is not None, "the response lost its token figures"
        caps.append((s, cap))
    return caps


def load_hf_model(path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device()).eval()


def hf_teacher_forced(hf_model, ctx: list[int], tokens: list[int]):
    """Raw logit, log-probability and entropy (whole vocabulary) of each token, from transformers."""
    import torch

    with torch.no_grad():
        logits = hf_model(torch.tensor([ctx + tokens], device=hf_model.device)).logits[0, len(ctx) - 1 : -1].float().cpu()
    logp = torch.log_softmax(logits, -1)
    idx = torch.tensor(tokens).view(-1, 1)
    ent = -(logp.exp() * logp).sum(-1)
    return logits.gather(1, idx).squeeze(1), logp.gather(1, idx).squeeze(1), ent
