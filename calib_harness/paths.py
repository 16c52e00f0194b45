"""Folders that ship inside the package."""

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
#: Real benchmark slices in the local data layout (see data/demo/ATTRIBUTION.md).
DEMO_DATA_DIR = DATA_DIR / "demo"


def shared_data_dir(explicit: str | os.PathLike | None = None, fallback: bool = True) -> Path | None:
    """The full benchmark data (the ``shared/data`` layout: MMLU, MMLU-Redux, ARC, ...).

    ``explicit`` wins; then ``$CALIB_HARNESS_SHARED_DATA`` / ``$CALIB_HARNESS_DATA_DIR``; then, with
    ``fallback``, ``../shared/data`` beside a source checkout (returned even when absent, so that the
    error names it); else None.
    """
    if explicit:
        return Path(explicit).expanduser()
    for env in ("CALIB_HARNESS_SHARED_DATA", "CALIB_HARNESS_DATA_DIR"):
        if os.environ.get(env):
            return Path(os.environ[env]).expanduser()
    return PACKAGE_DIR.parents[1] / "shared" / "data" if fallback else None
