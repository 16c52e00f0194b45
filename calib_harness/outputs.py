"""Writing results: strict JSON, atomic files, output folders that never lose earlier work.

Every file calib-harness writes goes through this module:

* :func:`dumps_strict` / :func:`write_json` -- strict JSON (RFC 8259): ``NaN`` and ``inf``
  become ``null``, and a dict that held one gains a ``"null_reasons"`` entry saying why
  (``"not a number: undefined for these inputs"`` unless the producer gave a reason with
  :class:`Null`).  Python's ``json`` would write bare ``NaN``, which strict parsers reject.
* :func:`write_text` / :func:`write_bytes` -- atomic: a temporary file in the same folder,
  then ``os.replace``.  A reader never sees half a file, and a crash leaves the old one.
* :func:`prepare_output_dir` -- the output folder of one command run.  A folder that holds
  earlier results is refused unless ``force``; with ``force`` the earlier results are removed
  first, so nothing stale sits beside the new files.  The folder gets a small manifest
  (:data:`MANIFEST`) naming the command that wrote it.
* :class:`CliError` -- a one-line, user-facing error (what is wrong, how to fix it).  The
  ``calib-harness`` CLI prints ``error: ...`` and exits with status 2; the traceback is shown
  only with the global ``--debug``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

logger = logging.getLogger(__name__)

#: Manifest written into every output folder; marks the folder as calib-harness results.
MANIFEST = ".calib_harness_output.json"

#: Key added to a JSON object whose values were NaN / inf / :class:`Null`.
NULL_REASONS_KEY = "null_reasons"

_DEFAULT_NAN_REASON = "not a number: undefined for these inputs"


class CliError(ValueError):
    """A user-facing error: one line saying what is wrong and how to fix it.

    The CLI prints ``calib-harness <command>: error: <message>`` and exits with status 2.  A
    ``ValueError``, so library callers that catch bad input catch it too.
    """

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


@dataclasses.dataclass(frozen=True)
class Null:
    """A value that is undefined, with the reason; serialised as ``null`` plus the reason.

    >>> dumps_strict({"auroc": Null("one class only")}, indent=None)
    '{"auroc": null, "null_reasons": {"auroc": "one class only"}}'
    """

    reason: str


def _float_reason(x: float) -> str | None:
    if math.isnan(x):
        return _DEFAULT_NAN_REASON
    if math.isinf(x):
        return f"{'+' if x > 0 else '-'}infinite: undefined for these inputs"
    return None


def to_strict(obj: Any, reasons: bool = True) -> Any:
    """``obj`` as plain JSON values, with NaN / inf / :class:`Null` turned into ``None``.

    numpy scalars and arrays, tuples, sets, paths and dataclasses are converted.  With
    ``reasons`` a dict holding such a value gains ``"null_reasons": {key: reason}``; lists
    cannot carry a reason and just hold ``null``.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return obj
    if isinstance(obj, float):
        return None if _float_reason(obj) else obj
    if isinstance(obj, Null):
        return None
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        why: dict[str, str] = {}
        for k, v in obj.items():
            key = k if isinstance(k, str) else str(k)
            reason = _reason_of(v)
            if reason is not None:
                why[key] = reason
            out[key] = to_strict(v, reasons)
        if reasons and why:
            prev = out.get(NULL_REASONS_KEY)
            out[NULL_REASONS_KEY] = {**(prev if isinstance(prev, dict) else {}), **why}
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_strict(v, reasons) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_strict(dataclasses.asdict(obj), reasons)
    try:  # numpy without importing it here
        import numpy as np

        if isinstance(obj, np.generic):
            return to_strict(obj.item(), reasons)
        if isinstance(obj, np.ndarray):
            return to_strict(obj.tolist(), reasons)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if hasattr(obj, "to_dict"):
        return to_strict(obj.to_dict(), reasons)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _reason_of(v: Any) -> str | None:
    if isinstance(v, Null):
        return v.reason
    if isinstance(v, float):
        return _float_reason(v)
    try:
        import numpy as np

        if isinstance(v, np.floating):
            return _float_reason(float(v))
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            return "holds null entries: " + _DEFAULT_NAN_REASON
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, (list, tuple)) and any(isinstance(x, float) and not math.isfinite(x) for x in v):
        return "holds null entries: " + _DEFAULT_NAN_REASON
    return None


def dumps_strict(obj: Any, indent: int | None = 1, reasons: bool = True, **kwargs: Any) -> str:
    """Strict JSON text of ``obj`` (never ``NaN`` / ``Infinity``); see :func:`to_strict`."""
    return json.dumps(to_strict(obj, reasons), indent=indent, allow_nan=False, ensure_ascii=False, **kwargs)


def _umask_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_FILE_MODE = _umask_file_mode()


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` atomically: a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)  # mkstemp creates 0600; give the file the mode open() would
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` atomically (see :func:`write_bytes`)."""
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | Path, obj: Any, indent: int | None = 1, reasons: bool = True) -> Path:
    """Write ``obj`` as strict JSON, atomically."""
    return write_text(path, dumps_strict(obj, indent=indent, reasons=reasons) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any], reasons: bool = False) -> Path:
    """Write one strict JSON object per line, atomically."""
    lines = [dumps_strict(r, indent=None, reasons=reasons) for r in rows]
    return write_text(path, "".join(line + "\n" for line in lines))


# -- output folders -----------------------------------------------------------------------


@dataclasses.dataclass
class OutputDir:
    """The output folder of one command run (returned by :func:`prepare_output_dir`)."""

    path: Path
    what: str
    removed: list[Path] = dataclasses.field(default_factory=list)

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def finish(self, **info: Any) -> Path:
        """Mark the results complete: the manifest lists every file now in the folder."""
        files = sorted(
            str(f.relative_to(self.path)) for f in self.path.rglob("*") if f.is_file() and f.name != MANIFEST
        )
        return write_json(self.path / MANIFEST, _manifest(self.what, complete=True, files=files, **info))


def _manifest(what: str, complete: bool, **info: Any) -> dict[str, Any]:
    from calib_harness import __version__

    return {
        "written_by": f"calib-harness {what}",
        "version": __version__,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "complete": complete,
        **info,
    }


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _resolved(paths: Iterable[str | Path]) -> set[Path]:
    out: set[Path] = set()
    for p in paths:
        p = Path(p).resolve()
        if p.is_dir():
            out |= {f.resolve() for f in p.rglob("*") if f.is_file()}
        else:
            out.add(p)
    return out


def prepare_output_dir(
    path: str | Path,
    force: bool,
    what: str,
    *,
    protect: Iterable[str | Path] = (),
    keep: Sequence[str] = (),
) -> OutputDir:
    """Create (or clear, with ``force``) the output folder of one ``what`` run.

    Args:
        path: the output folder (``-o/--output``).
        force: the user passed ``--force``: earlier results in the folder are removed.
        what: the command, e.g. ``"calibrate"`` (named in messages and the manifest).
        protect: input files / folders of the run; never removed (a folder that would
            lose one is refused even with ``force``).
        keep: file names (relative to ``path``) left in place with ``force``, for a command
            that reads them before rewriting them (``clean`` carries the human verdicts of
            ``flagged.csv`` over).

    Raises:
        CliError: the folder holds earlier results and ``force`` is false, ``path`` is a
            file, or clearing it would remove an input.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CliError(f"output {out} is a file, not a folder; pass another -o/--output")
    existing = sorted(f for f in out.rglob("*") if f.is_file()) if out.exists() else []
    if [f.name for f in existing] == [MANIFEST] and not _read_manifest(out).get("complete", True):
        existing = []  # only the marker of a run that stopped before writing anything
    removed: list[Path] = []
    if existing:
        named = [f for f in existing if f.name != MANIFEST] or existing
        shown = ", ".join(str(f.relative_to(out)) for f in named[:4]) + (
            f" and {len(named) - 4} more" if len(named) > 4 else ""
        )
        if not force:
            raise CliError(
                f"output folder {out} already holds results ({shown}); pass --force to replace them "
                "or -o/--output to write elsewhere"
            )
        inputs = _resolved(protect)
        keep_set = {(out / k).resolve() for k in keep}
        clash = [f for f in existing if f.resolve() in inputs and f.resolve() not in keep_set]
        if clash:
            raise CliError(
                f"output folder {out} holds input files of this run ({clash[0]}); --force would delete them, "
                "pass another -o/--output"
            )
        for f in existing:
            if f.resolve() in keep_set:
                continue
            f.unlink()
            removed.append(f)
        for d in sorted((d for d in out.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
            if not any(d.iterdir()):
                d.rmdir()
        if removed:
            logger.info("--force: removed %d earlier file(s) from %s", len(removed), out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / MANIFEST, _manifest(what, complete=False))
    return OutputDir(out, what, removed)


def remove_tree(path: str | Path) -> None:
    """Remove a folder this tool wrote (used by ``--force`` paths that replace a whole tree)."""
    shutil.rmtree(path, ignore_errors=False)
