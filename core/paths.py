"""The one place that knows where MMAD Inspector keeps its files.

* :func:`cache_dir` - re-creatable files (generated demo data, review stores, fitted states, weights):
  ``$MMAD_CACHE`` if set, else ``~/.cache/mmad-inspector`` (the same on every platform, so the
  README can name one folder).
* :func:`data_dir` - the user's own data that must not live inside a read-only dataset (projects,
  notes): ``$MMAD_DATA`` if set, else the platform's user-data folder
  (``$XDG_DATA_HOME`` or ``~/.local/share`` on Linux, ``~/Library/Application Support`` on macOS,
  ``%APPDATA%`` on Windows) + ``/mmad-inspector``.
* :func:`weights_dir`, :func:`fits_dir`, :func:`reviews_dir`, :func:`demo_dir` - sub-folders of the cache.

Every function returns an absolute path and, unless ``create=False``, creates the folder on first use.
A folder that cannot be created raises :class:`~core.errors.InputError` naming it and the environment
variable that moves it.  Environment variables are read on every call (tests and users may change them).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

from .errors import InputError

APP_NAME = "mmad-inspector"
CACHE_ENV = "MMAD_CACHE"
DATA_ENV = "MMAD_DATA"

__all__ = ["APP_NAME", "CACHE_ENV", "DATA_ENV", "cache_dir", "data_dir", "weights_dir", "fits_dir",
           "reviews_dir", "demo_dir"]


def _ensure(path: Path, create: bool, env: str) -> Path:
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(path, f"cannot create this folder ({e.strerror or e}); "
                                   f"set {env} to a writable folder") from e
    return path


def _from_env(name: str) -> Optional[Path]:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().absolute() if value else None


def cache_dir(create: bool = True) -> Path:
    """``$MMAD_CACHE`` if set, else ``~/.cache/mmad-inspector``."""
    path = _from_env(CACHE_ENV) or Path.home() / ".cache" / APP_NAME
    return _ensure(path, create, CACHE_ENV)


def _platform_data_home() -> Path:
    if sys.platform.startswith("win"):
        base = os.environ.get("APPDATA") or os.environ.get("LOCALAPPDATA")
        return Path(base) if base else Path.home() / "AppData" / "Roaming"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support"
    xdg = os.environ.get("XDG_DATA_HOME", "").strip()
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"


def data_dir(create: bool = True) -> Path:
    """``$MMAD_DATA`` if set, else the platform's user-data folder + ``/mmad-inspector``."""
    path = _from_env(DATA_ENV) or _platform_data_home() / APP_NAME
    return _ensure(path, create, DATA_ENV)


def _cache_sub(name: str, create: bool) -> Path:
    return _ensure(cache_dir(create=create) / name, create, CACHE_ENV)


def weights_dir(create: bool = True) -> Path:
    """Model weights this program downloaded or the user dropped in: ``<cache>/weights``."""
    return _cache_sub("weights", create)


def fits_dir(create: bool = True) -> Path:
    """Saved fit states (a detector fitted on a support set): ``<cache>/fits``."""
    return _cache_sub("fits", create)


def reviews_dir(create: bool = True) -> Path:
    """Review verdict stores, one file per dataset folder: ``<cache>/reviews``."""
    return _cache_sub("reviews", create)


def demo_dir(version: Optional[int | str] = None, create: bool = True) -> Path:
    """The generated demo dataset ``<cache>/demo-v<version>``; without ``version`` the cache folder
    that holds the demo versions (so old versions can be found and removed).

    The demo tree itself is created by :func:`core.demo.ensure_demo`; only its parent is created here."""
    base = cache_dir(create=create)
    return base if version is None else base / f"demo-v{version}"
