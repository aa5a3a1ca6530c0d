"""Downloading a weights file: plain ``urllib`` streaming into ``<file>.part``, resumed with an HTTP
``Range`` request, progress reported, ``cancel()`` polled, SHA-256 checked, renamed into place
atomically; one process at a time per file (an advisory lock)."""
from __future__ import annotations

import contextlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Union

from .. import __version__, paths
from ..errors import Cancelled, ChecksumError
from .checksum import remember_hash, usable, verify_sha256
from .spec import CancelFn, ProgressFn, WeightSpec, download_url, get_spec, missing_error, part_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20            # bytes read per step of a download
TIMEOUT_S = 30.0           # socket timeout of a download


def _report(progress: Optional[ProgressFn], fraction: float, message: str) -> None:
    if progress is not None:
        progress(float(min(max(fraction, 0.0), 1.0)), message)


def _total_from(resp, offset: int) -> Optional[int]:
    cr = resp.headers.get("Content-Range")  # "bytes 100-999/1000"
    if cr and "/" in cr:
        tail = cr.rsplit("/", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    cl = resp.headers.get("Content-Length")
    return offset + int(cl) if cl and cl.isdigit() else None


def _transfer(spec: WeightSpec, url: str, part: Path, progress: Optional[ProgressFn],
              cancel: Optional[CancelFn]) -> None:
    """One HTTP request appending to ``part`` (resumed where it ends). Raises on any failure."""
    offset = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": f"mmad-inspector/{__version__}"})
    token = os.environ.get("HF_TOKEN", "").strip()
    if token and spec.hf_repo:
        req.add_unredirected_header("Authorization", f"Bearer {token}")  # not sent on to a CDN redirect
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:   # nothing left to send: the part may already be complete
            e.close()
            return
        raise
    with contextlib.closing(resp):
        if offset and resp.status != 206:          # the server ignored the Range: start over
            offset = 0
        total = _total_from(resp, offset) or spec.size or None
        done = offset
        label = f"downloading {spec.title}"
        with open(part, "ab" if offset else "wb") as out:
            _report(progress, done / total if total else 0.0, f"{label}: {done / 1e6:.0f} MB")
            while True:
                if cancel is not None and cancel():
                    raise Cancelled("download cancelled by the user (run again to resume)")
                block = resp.read(CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                msg = f"{label}: {done / 1e6:.0f} / {total / 1e6:.0f} MB" if total else f"{label}: {done / 1e6:.0f} MB"
                _report(progress, min(done / total, 0.999) if total else 0.0, msg)
        expected = _total_from(resp, offset) if resp.headers.get("Content-Length") else None
        if expected is not None and done < expected:
            raise http.client.IncompleteRead(b"", expected - done)


def download(spec: Union[WeightSpec, str], progress: Optional[ProgressFn] = None,
             cancel: Optional[CancelFn] = None, retries: int = 2) -> Path:
    """Download the spec's file into :func:`core.paths.weights_dir` and return its path.

    Streams into ``<file>.part``; an interrupted transfer is resumed (``Range``) up to ``retries``
    times here and again at the next call.  The SHA-256 is checked when known (a bad file is deleted
    and raises :class:`~core.errors.ChecksumError`); the finished file is renamed into place
    atomically.  A server that cannot be reached or answers with an error raises
    :class:`~core.errors.MissingWeightsError` with the reason; :class:`~core.errors.Cancelled` keeps
    the ``.part`` for a later resume."""
    spec = get_spec(spec)
    url = download_url(spec)
    target = paths.weights_dir(create=False) / spec.filename
    if not url:
        raise missing_error(spec, [], "no download address is known for it")
    try:
        paths.weights_dir(create=True)
    except Exception as e:  # InputError: unwritable cache
        raise missing_error(spec, [], str(e)) from e
    from ..io.locks import file_lock      # here: core.io imports OpenCV, a download is rare
    part = part_path(spec)
    with file_lock(part.parent / f".{spec.filename}.lock"):
        if usable(target) is None:            # another process finished it while we waited
            verify_sha256(target, spec.sha256, cancel)
            return target
        return _download_locked(spec, url, target, part, progress, cancel, retries)


def _download_locked(spec: WeightSpec, url: str, target: Path, part: Path, progress: Optional[ProgressFn],
                     cancel: Optional[CancelFn], retries: int) -> Path:
    attempt = 0
    while True:
        try:
            _transfer(spec, url, part, progress, cancel)
            break
        except urllib.error.HTTPError as e:
            e.close()
            hint = " (the file may need a Hugging Face token: set HF_TOKEN)" if e.code in (401, 403) else ""
            raise missing_error(spec, [], f"download failed: HTTP {e.code} {e.reason} from {url}{hint}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", None) or e
            have = part.stat().st_size if part.is_file() else 0
            if have and attempt < retries:
                attempt += 1
                log.info("download of %s interrupted at %d bytes (%s); resuming", spec.id, have, reason)
                time.sleep(0.2 * attempt)
                continue
            kept = f"; {have / 1e6:.1f} MB kept in {part}, run again to resume" if have else ""
            raise missing_error(spec, [], f"download from {url} failed ({type(e).__name__}: {reason}){kept}") from None
    try:
        verify_sha256(part, spec.sha256, cancel, use_cache=False)
    except ChecksumError as e:
        with contextlib.suppress(OSError):
            part.unlink()
        raise ChecksumError(target, f"download from {url} is not the published file, so it was deleted: "
                                    f"{e.problem.split(':')[0]}") from None
    os.replace(part, target)
    if spec.sha256:
        remember_hash(target, spec.sha256.lower())
    _report(progress, 1.0, f"downloaded {spec.title} ({target.stat().st_size / 1e6:.0f} MB)")
    return target
