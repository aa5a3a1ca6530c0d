"""``python -m core.weights``: which known weights are on this machine, and where."""
from __future__ import annotations

import sys

from . import CATALOG, find, status


def main() -> int:
    for s in CATALOG.values():
        found, _ = find(s)
        print(f"{s.id:40s} {status(s):8s} {s.size_mb:6.0f} MB  {found or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
