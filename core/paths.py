"""The one place that knows the application's folders (cache, fits, weights, user data)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$MMAD_CACHE``, else ``~/.cache/mmad-inspector``."""
    env = os.environ.get("MMAD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmad-inspector"


def fits_dir() -> Path:
    """Saved detector fit states."""
    return cache_dir() / "fits"
