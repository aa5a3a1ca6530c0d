"""Command line of the demo generator: ``python -m core.demo OUT [--size 256] [--seed 0] ...``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ..errors import InputError
from ._common import DEMO_CLASSES
from .writer import generate_demo, read_manifest

def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m core.demo", description="Generate the MMAD Inspector demo dataset.")
    p.add_argument("out", type=Path, help="output folder (the dataset root)")
    p.add_argument("--classes", nargs="+", default=None, choices=DEMO_CLASSES, help="part classes (default: all)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--n-train", type=int, default=20, help="good training parts per class (default 20)")
    p.add_argument("--n-val", type=int, default=4, help="good validation parts per class (default 4)")
    p.add_argument("--n-test-good", type=int, default=8, help="good test parts per class (default 8)")
    p.add_argument("--n-per-defect", type=int, default=4, help="test parts per defect kind and class (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    ns = p.parse_args(argv)

    def report(frac: float, msg: str) -> None:
        if not ns.quiet:
            print(f"\r[{frac * 100:5.1f}%] {msg:<48}", end="", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        out = generate_demo(ns.out, ns.classes, ns.n_train, ns.n_val, ns.n_test_good, ns.n_per_defect,
                            ns.size, ns.seed, progress=report)
    except (InputError, ValueError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    n = len(read_manifest(out)["samples"])
    if not ns.quiet:
        print(file=sys.stderr)
    print(f"wrote {n} samples to {out} in {time.perf_counter() - t0:.1f} s")
    return 0

