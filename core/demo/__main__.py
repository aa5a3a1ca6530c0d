"""``python -m core.demo``: see :mod:`core.demo.cli`."""
import sys

from .cli import main

if __name__ == "__main__":  # importing this module (e.g. pkgutil.walk_packages) must not run the CLI
    sys.exit(main())
