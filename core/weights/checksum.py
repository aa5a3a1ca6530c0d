"""SHA-256 checks of weights files, with computed hashes remembered by path, size and modification
time in ``<weights_dir>/verified.json`` (a 600 MB file is hashed once, not at every start)."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Optional

from .. import paths
from ..errors import Cancelled, ChecksumError
from .spec import CancelFn, PathLike

log = logging.getLogger(__name__)

CHUNK = 1 << 20            # bytes read per step
VERIFIED_FILE = "verified.json"


def sha256_of(path: PathLike, cancel: Optional[CancelFn] = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            if cancel is not None and cancel():
                raise Cancelled("cancelled by the user")
            block = fh.read(CHUNK)
            if not block:
                return h.hexdigest()
            h.update(block)


def _verified_path() -> Path:
    return paths.weights_dir(create=False) / VERIFIED_FILE


def _stat_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def _read_verified() -> dict:
    try:
        with open(_verified_path(), encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def cached_hash(path: Path) -> Optional[str]:
    try:
        key, size, mtime = _stat_key(path)
    except OSError:
        return None
    entry = _read_verified().get(key)
    if isinstance(entry, dict) and entry.get("size") == size and entry.get("mtime_ns") == mtime:
        value = entry.get("sha256")
        return value if isinstance(value, str) else None
    return None


def remember_hash(path: Path, digest: str) -> None:
    try:
        key, size, mtime = _stat_key(path)
        data = _read_verified()
        data[key] = {"size": size, "mtime_ns": mtime, "sha256": digest}
        from ..io.json_files import write_json
        write_json(_verified_path(), data, sort_keys=True)
    except OSError as e:  # a read-only cache only costs a re-hash next time
        log.debug("could not remember the hash of %s: %s", path, e)


def verify_sha256(path: PathLike, expected: Optional[str], cancel: Optional[CancelFn] = None,
                  use_cache: bool = True) -> Path:
    """Check ``path``'s SHA-256 against ``expected`` (no check when ``expected`` is ``None``; a prefix of
    at least 8 hex digits, as open_clip's release file names carry, is accepted).

    Returns the path; raises :class:`~core.errors.ChecksumError` naming the file and both digests.
    A hash computed before for the same path, size and modification time is reused."""
    p = Path(path)
    if not expected:
        return p
    expected = expected.strip().lower()
    digest = cached_hash(p) if use_cache else None
    if digest is None:
        digest = sha256_of(p, cancel)
        if use_cache:
            remember_hash(p, digest)
    if not digest.startswith(expected) or len(expected) < 8:
        raise ChecksumError(p, f"SHA-256 is {digest}, expected {expected}: the file is truncated, corrupt "
                               f"or a different file; delete it and provide the right one")
    return p


def usable(p: Path) -> Optional[str]:
    """None if ``p`` is a non-empty regular file (links followed), else what is wrong with it."""
    try:
        if not p.exists():
            return "not there"
        if not p.is_file():
            return "not a regular file"
        if p.stat().st_size == 0:
            return "empty file"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    return None
