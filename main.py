#!/usr/bin/env python
"""MMAD Inspector entry point.

    python main.py                      open the workbench on the built-in demo data
    python main.py --data DIR           open the workbench on a dataset folder
    python main.py --demo               demo mode: full screen, cycles through the demo data (Esc leaves)
    python main.py eval --data DIR ...  evaluate a detector (see `python main.py eval -h`)
    python main.py detectors            list detector ids
    python main.py score PATH ...       score single samples, write heatmap PNGs
"""
import sys

from core.cli import main as cli_main


def run_gui(data=None, demo=False) -> int:
    from app.main import run  # imported only here: the CLI commands never need Qt or a display
    return run(["--demo"] if demo else None, data=data)


def main(argv=None) -> int:
    return cli_main(argv, gui=run_gui)


if __name__ == "__main__":
    import multiprocessing
    multiprocessing.freeze_support()  # a frozen build (packaging/) re-runs this executable for worker processes
    sys.exit(main())
