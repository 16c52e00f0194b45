"""Convert the AI2 ARC-Easy JSONL files into the Hugging Face ``allenai/ai2_arc`` schema, as Parquet.

Stock lm-eval's ``arc_easy`` reads ``allenai/ai2_arc`` from the hub.  Offline, a user points the
same task at local files instead: this script writes ``arc_local/data/{train,validation,test}.parquet``
with the hub's columns (``id``, ``question``, ``choices {text, label}``, ``answerKey``), and
``arc_local/arc_easy.yaml`` is the stock YAML with ``dataset_path: parquet``.

    python make_arc_parquet.py /work/shared/data/arc/ARC-Easy
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

SPLITS = {"train": "Train", "validation": "Dev", "test": "Test"}


def convert(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for split, name in SPLITS.items():
        rows = []
        for line in (src / f"ARC-Easy-{name}.jsonl").read_text().splitlines():
            d = json.loads(line)
            rows.append(
                {
                    "id": d["id"],
                    "question": d["question"]["stem"],
                    "choices": {
                        "text": [c["text"] for c in d["question"]["choices"]],
                        "label": [c["label"] for c in d["question"]["choices"]],
                    },
                    "answerKey": d["answerKey"],
                }
            )
        pd.DataFrame(rows).to_parquet(dst / f"{split}.parquet", index=False)
        print(f"{dst / (split + '.parquet')}: {len(rows)} questions")


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/arc/ARC-Easy")
    convert(src, Path(__file__).resolve().parent / "arc_local" / "data")
