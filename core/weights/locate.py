"""Finding a weights file offline first, :func:`status` without downloading or hashing, and
:func:`resolve`, which downloads only when allowed."""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Iterator, Optional, Union

from .. import paths
from . import fetch
from .checksum import cached_hash, usable, verify_sha256
from .spec import (CancelFn, PathLike, ProgressFn, WeightSpec, get_spec, is_random, missing_error,
                   part_path)

# status() values
PRESENT = "present"        # a file was found (and its checksum is known good or unknown)
PARTIAL = "partial"        # not found, but an interrupted download can be resumed
MISSING = "missing"        # found nowhere
CORRUPT = "corrupt"        # the file found has a checksum known to be wrong


def hf_cache_dirs() -> list[Path]:
    """The Hugging Face hub caches to look in, most specific first (env vars as huggingface_hub reads them)."""
    out: list[Path] = []
    for env in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(env):
            out.append(Path(os.environ[env]).expanduser())
    if os.environ.get("HF_HOME"):
        out.append(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    if os.environ.get("XDG_CACHE_HOME"):
        out.append(Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "huggingface" / "hub")
    out.append(Path.home() / ".cache" / "huggingface" / "hub")
    seen, uniq = set(), []
    for p in out:
        if str(p) not in seen:
            seen.add(str(p))
            uniq.append(p)
    return uniq


def _hub_candidates(spec: WeightSpec) -> Iterator[Path]:
    """Files of the spec's hub repository in every hub cache: the snapshot ``refs/<revision>`` points at
    first, then any other snapshot (newest first)."""
    if not (spec.hf_repo and spec.hf_filename):
        return
    folder = "models--" + spec.hf_repo.replace("/", "--")
    for cache in hf_cache_dirs():
        repo = cache / folder
        snaps = repo / "snapshots"
        if not snaps.is_dir():
            continue
        ordered: list[Path] = []
        try:
            ref = (repo / "refs" / spec.hf_revision).read_text(encoding="utf-8").strip()
            if ref:
                ordered.append(snaps / ref)
        except OSError:
            pass
        try:
            others = sorted((d for d in snaps.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime,
                            reverse=True)
        except OSError:
            others = []
        ordered += [d for d in others if d not in ordered]
        for d in ordered:
            yield d / spec.hf_filename


def _legacy_open_clip_candidates(spec: WeightSpec) -> Iterator[Path]:
    """open_clip's ``download_pretrained_from_url`` cache: ``~/.cache/clip/<basename of the URL>``."""
    if spec.url:
        name = os.path.basename(urllib.parse.urlparse(spec.url).path)
        if name:
            yield Path.home() / ".cache" / "clip" / name


def _legacy_sha_prefix(url: Optional[str]) -> Optional[str]:
    """The SHA-256 (prefix) open_clip checks for a URL download: the folder name for openaipublic URLs,
    the last ``-`` part of the file name for mlfoundations releases (open_clip's own rule)."""
    if not url:
        return None
    parts = urllib.parse.urlparse(url).path.split("/")
    if "openaipublic" in url and len(parts) >= 2:
        return parts[-2].lower() or None
    if "mlfoundations" in url:
        tail = os.path.splitext(parts[-1])[0].rsplit("-", 1)[-1].lower()
        return tail if len(tail) >= 8 and all(c in "0123456789abcdef" for c in tail) else None
    return None


def _explicit_file(spec: WeightSpec, explicit: PathLike) -> Path:
    p = Path(explicit).expanduser()
    if p.is_dir():
        for name in dict.fromkeys(n for n in (spec.filename, spec.hf_filename) if n):
            if (p / name).is_file():
                return p / name
        return p / spec.filename
    return p


def _tried_list(spec: WeightSpec, explicit: Optional[PathLike]) -> list[tuple[str, Path]]:
    """``(source, path)`` in resolution order."""
    out: list[tuple[str, Path]] = []
    if explicit is not None and str(explicit).strip():
        out.append(("explicit", _explicit_file(spec, explicit)))
    if spec.env_var and os.environ.get(spec.env_var, "").strip():
        out.append(("env", _explicit_file(spec, os.environ[spec.env_var].strip())))
    out.append(("ours", paths.weights_dir(create=False) / spec.filename))
    out += [("hub-cache", p) for p in _hub_candidates(spec)]
    out += [("open_clip-cache", p) for p in _legacy_open_clip_candidates(spec)]
    return out


def _find(spec: WeightSpec, explicit: Optional[PathLike]
          ) -> tuple[Optional[Path], str, list[tuple[Path, str]], bool]:
    """``(file or None, its source, places tried, whether the user's own choice (explicit / env) was
    missing)``."""
    tried: list[tuple[Path, str]] = []
    for source, p in _tried_list(spec, explicit):
        why = usable(p)
        if why is None:
            return p, source, tried, False
        if source == "explicit":
            tried.append((p, f"{why} (the file given as --weights / in the settings)"))
            return None, source, tried, True
        if source == "env":
            tried.append((p, f"{why} (set by ${spec.env_var})"))
            return None, source, tried, True
        if source == "ours" or p.parent.exists():
            tried.append((p, why))
    return None, "", tried, False


def find(spec: Union[WeightSpec, str], explicit: Optional[PathLike] = None
         ) -> tuple[Optional[Path], list[tuple[Path, str]]]:
    """The first usable file in resolution order (no download, no hashing) and the places tried.

    An explicit file or an environment variable that points at nothing is not skipped: the user asked
    for that file, so the search stops there (``None``) and :func:`resolve` says so."""
    found, _, tried, _ = _find(get_spec(spec), explicit)
    return found, tried


def _expected_sha(spec: WeightSpec, source: str) -> Optional[str]:
    """The digest a file found at ``source`` must have: open_clip's legacy URL cache holds the URL's file
    (another format than the hub file), checked against the prefix its URL carries."""
    if source == "open_clip-cache":
        return _legacy_sha_prefix(spec.url)
    return spec.sha256.lower() if spec.sha256 else None


def status(spec: Union[WeightSpec, str], explicit: Optional[PathLike] = None) -> str:
    """``"present"``, ``"corrupt"`` (found, and its remembered checksum is wrong), ``"partial"`` (an
    interrupted download can be resumed) or ``"missing"``.  Never downloads or hashes a file."""
    spec = get_spec(spec)
    if is_random(explicit):
        return PRESENT
    found, source, _, _ = _find(spec, explicit)
    if found is not None:
        expected = _expected_sha(spec, source)
        digest = cached_hash(found) if expected else None
        return CORRUPT if digest is not None and not digest.startswith(expected) else PRESENT
    if explicit is None and part_path(spec).is_file():
        return PARTIAL
    return MISSING


def resolve(spec: Union[WeightSpec, str], explicit: Optional[PathLike] = None, allow_download: bool = False,
            progress: Optional[ProgressFn] = None, cancel: Optional[CancelFn] = None,
            verify: bool = True) -> Path:
    """The spec's file, found offline first (see the module doc), downloaded only if ``allow_download``.

    Raises :class:`~core.errors.MissingWeightsError` (nothing found / download impossible) or
    :class:`~core.errors.ChecksumError` (the file found is not the published one; ``verify=False``
    skips the check, e.g. for one's own fine-tuned checkpoint)."""
    spec = get_spec(spec)
    if is_random(explicit):
        raise ValueError('explicit="random" means random weights: test weights.is_random() before resolve()')
    found, source, tried, users_choice_missing = _find(spec, explicit)
    if found is not None:
        if verify:
            verify_sha256(found, _expected_sha(spec, source), cancel)
        return found
    if users_choice_missing:
        raise missing_error(spec, tried, "the file you gave cannot be used")
    if not allow_download:
        reason = "not found on this machine and downloads are off"
        if part_path(spec).is_file():
            reason += f" (a partial download is in {part_path(spec)}; allow the download to resume it)"
        raise missing_error(spec, tried, reason)
    return fetch.download(spec, progress, cancel)
