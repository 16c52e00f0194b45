"""Run the GATEKEEPER sweep without the full CLI: same arguments as ``calib-harness gatekeeper``.

    python scripts/gatekeeper_sweep.py sweep --pair mnist -o runs/gatekeeper
    python scripts/gatekeeper_sweep.py table -o runs/gatekeeper
"""

import argparse
import sys

from calib_harness.commands import gatekeeper


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gatekeeper_sweep")
    sub = parser.add_subparsers(dest="command")
    gatekeeper.add_parser(sub)
    args = parser.parse_args(["gatekeeper", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
