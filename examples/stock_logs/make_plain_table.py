"""Write the two stock arc_easy runs as one plain per-sample table (docs/PLAIN_TABLE.md).

This is what per-sample results from another tool look like to calib-harness: one row per
(model, question), option probabilities as ``p_<label>`` columns, the gold label, correctness.

    python make_plain_table.py runs plain_table.csv           # option probabilities
    python make_plain_table.py runs plain_table_conf.jsonl     # confidence + prediction only
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def rows(folder: Path):
    for samples in sorted(folder.glob("*/samples_arc_easy_*.jsonl")):
        results = json.loads(next(samples.parent.glob("results_*.json")).read_text())
        model = Path(results["config"]["model_args"]["pretrained"]).name
        for line in samples.read_text().splitlines():
            s = json.loads(line)
            lls = np.array([float(r[0]) for r in s["filtered_resps"]])
            p = np.exp(lls - lls.max())
            p /= p.sum()
            labels = s["doc"]["choices"]["label"]
            gold = labels[int(s["target"])]
            pred = labels[int(np.argmax(lls))]
            yield model, s, labels, p, gold, pred


def main(src: Path, dst: Path) -> None:
    out = []
    for model, s, labels, p, gold, pred in rows(src):
        row = {"model": model, "task": "arc_easy", "id": s["doc"]["id"], "prompt": s["doc"]["question"]}
        if dst.suffix == ".csv":
            row.update({f"p_{lab}": round(float(x), 6) for lab, x in zip(labels, p)})
            row.update({"label": gold, "correct": int(s["acc"])})
        else:
            row.update({"prediction": pred, "confidence": round(float(p.max()), 6), "label": gold, "correct": bool(s["acc"])})
        out.append(row)
    df = pd.DataFrame(out)
    if dst.suffix == ".csv":
        df.to_csv(dst, index=False)
    else:
        df.to_json(dst, orient="records", lines=True, force_ascii=False)
    print(f"{dst}: {len(df)} rows, columns {list(df.columns)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
