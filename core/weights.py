"""Model weights: what a detector needs, where it is found, and (only when allowed) its download.

A detector declares the files it needs as :class:`WeightSpec` objects.  :func:`resolve` finds a
spec's file **offline first**, in this order:

1. an explicit file: a setting or ``--weights FILE`` (a folder holding the file also works);
2. the environment variable ``spec.env_var``;
3. our own folder, :func:`core.paths.weights_dir` (``<cache>/weights/<spec.filename>``);
4. the library's own cache, where open_clip / Hugging Face put the file when they downloaded it:
   the Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``:
   ``models--org--name/snapshots/*/file``) and open_clip's legacy URL cache ``~/.cache/clip``;
5. a download, only with ``allow_download=True``: plain ``urllib`` streaming into
   ``<weights_dir>/<filename>.part`` (resumed with an HTTP ``Range`` request), progress reported,
   ``cancel()`` polled, the SHA-256 checked, then renamed into place atomically.  Hub files come
   from ``$HF_ENDPOINT`` (default ``https://huggingface.co``), so a mirror or a local test server
   can stand in for the hub.

When nothing is found, :class:`~core.errors.MissingWeightsError` says what is missing, how big it is,
where it looked and every way to provide it.  :func:`status` answers the same question without
downloading or hashing, so the CLI and the GUI can tell the user *before* a run.

The SHA-256 of a file is checked whenever the spec knows it; hashes already computed are remembered
in ``<weights_dir>/verified.json`` keyed by path, size and modification time, so a 600 MB file is
hashed once, not at every start.

This module only finds files: it never loads them (no pickle here).  Owners read ``.safetensors`` with
safetensors; a legacy ``.pt``/``.bin`` may only be read with ``torch.load(..., weights_only=True)``.
The special explicit value ``"random"`` (:data:`RANDOM`) means "no file, random weights"; callers test
it with :func:`is_random` before calling :func:`resolve`.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

from . import __version__, paths
from .errors import Cancelled, ChecksumError, MissingWeightsError

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
PathLike = Union[str, os.PathLike]

RANDOM = "random"
HF_DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK = 1 << 20            # bytes read per step of a download / hash
TIMEOUT_S = 30.0           # socket timeout of a download
VERIFIED_FILE = "verified.json"

# status() values
PRESENT = "present"        # a file was found (and its checksum is known good or unknown)
PARTIAL = "partial"        # not found, but an interrupted download can be resumed
MISSING = "missing"        # found nowhere
CORRUPT = "corrupt"        # the file found has a checksum known to be wrong

__all__ = ["WeightSpec", "resolve", "find", "status", "verify_sha256", "sha256_of", "download",
           "missing_message", "is_random", "hf_cache_dirs", "download_url", "spec_from_open_clip",
           "CATALOG", "get_spec", "RANDOM", "PRESENT", "PARTIAL", "MISSING", "CORRUPT"]


@dataclass(frozen=True)
class WeightSpec:
    """One weights file a detector needs.

    ``filename`` is the name under :func:`core.paths.weights_dir` (and the default name in the hub
    repository); ``size`` is in bytes (approximate is fine: it is for messages and progress);
    ``sha256`` the full hex digest when known.  The file comes from ``hf_repo``/``hf_filename`` on the
    Hugging Face hub (at ``hf_revision``) or from ``url``.  ``open_clip`` is the ``(model name,
    pretrained tag)`` pair this file is for, used to look in open_clip's caches and in messages.
    """

    id: str
    filename: str
    size: int
    sha256: Optional[str] = None
    url: Optional[str] = None
    hf_repo: Optional[str] = None
    hf_filename: Optional[str] = None
    hf_revision: str = "main"
    env_var: Optional[str] = None
    open_clip: Optional[tuple[str, str]] = None
    description: str = ""
    license: str = ""

    @property
    def size_mb(self) -> float:
        return self.size / 1e6

    @property
    def title(self) -> str:
        return self.description or self.id


def is_random(explicit: Optional[PathLike]) -> bool:
    """True for the explicit choice ``"random"`` (random weights, no file)."""
    return isinstance(explicit, str) and explicit.strip().lower() == RANDOM


# ------------------------------------------------------------------------------------ catalogue
# Hub locations as open_clip 3.3 declares them (open_clip.pretrained._PRETRAINED; a test checks them
# against open_clip when it is installed).  Kept here so the GUI process can say what is missing
# without importing open_clip (which imports torch).  Sizes are the fp32 safetensors files.
CATALOG: dict[str, WeightSpec] = {s.id: s for s in (
    WeightSpec(
        id="clip-vit-b-16-openai", filename="vit_b_16_openai.safetensors", size=598_600_000,
        sha256="4b8699299b1e8997753c64b052ba32031449d5d853f55a039148560ee02b820f",
        hf_repo="timm/vit_base_patch16_clip_224.openai", hf_filename="open_clip_model.safetensors",
        env_var="MMAD_CLIP_WEIGHTS", open_clip=("ViT-B-16", "openai"),
        description="OpenAI CLIP ViT-B/16 (224 px)", license="MIT (OpenAI CLIP)"),
    WeightSpec(
        id="clip-vit-l-14-336-openai", filename="vit_l_14_336_openai.safetensors", size=1_712_000_000,
        hf_repo="timm/vit_large_patch14_clip_336.openai", hf_filename="open_clip_model.safetensors",
        env_var="MMAD_CLIP_WEIGHTS", open_clip=("ViT-L-14-336", "openai"),
        description="OpenAI CLIP ViT-L/14 (336 px)", license="MIT (OpenAI CLIP)"),
    WeightSpec(
        id="clip-vit-b-16-plus-240-laion400m-e31", filename="vit_b_16_plus_240_laion400m_e31.safetensors",
        size=834_000_000,
        hf_repo="timm/vit_base_patch16_plus_clip_240.laion400m_e31", hf_filename="open_clip_model.safetensors",
        url="https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/"
            "vit_b_16_plus_240-laion400m_e31-8fb26589.pt",
        env_var="MMAD_CLIP_WEIGHTS", open_clip=("ViT-B-16-plus-240", "laion400m_e31"),
        description="OpenCLIP ViT-B/16+ (240 px, LAION-400M epoch 31; WinCLIP's backbone)",
        license="MIT (OpenCLIP)"),
)}


def get_spec(spec_or_id: Union[WeightSpec, str]) -> WeightSpec:
    """A spec from the catalogue by id (or ``(model, tag)`` as ``"ViT-B-16:openai"``), or the spec itself."""
    if isinstance(spec_or_id, WeightSpec):
        return spec_or_id
    if spec_or_id in CATALOG:
        return CATALOG[spec_or_id]
    for s in CATALOG.values():
        if s.open_clip and ":".join(s.open_clip).lower() == spec_or_id.lower():
            return s
    raise KeyError(f"unknown weights {spec_or_id!r} (known: {', '.join(sorted(CATALOG))})")


def spec_from_open_clip(model: str, tag: str, env_var: Optional[str] = "MMAD_CLIP_WEIGHTS") -> WeightSpec:
    """A spec for any open_clip ``(model, pretrained tag)``: the catalogue's when it has one, else built
    from ``open_clip.pretrained.get_pretrained_cfg`` (imports open_clip, hence torch: call it in the
    worker process, not the GUI)."""
    for s in CATALOG.values():
        if s.open_clip == (model, tag):
            return s
    from open_clip import pretrained as ocp  # lazy: imports torch
    cfg = ocp.get_pretrained_cfg(model, tag)
    if not cfg:
        raise KeyError(f"open_clip has no pretrained weights {model!r} / {tag!r}")
    hub = cfg.get("hf_hub") or ""
    repo, hub_file = os.path.split(hub.rstrip("/")) if hub.count("/") >= 2 else (hub.rstrip("/"), "")
    url = cfg.get("url") or None
    safe = lambda s: "".join(c if c.isalnum() else "_" for c in s.lower())  # noqa: E731
    ext = os.path.splitext(hub_file or (url or ""))[1] or ".safetensors"
    return WeightSpec(
        id=f"open_clip-{safe(model)}-{safe(tag)}", filename=f"{safe(model)}_{safe(tag)}{ext}", size=0,
        hf_repo=repo or None, hf_filename=(hub_file or "open_clip_model.safetensors") if repo else None,
        url=url, env_var=env_var, open_clip=(model, tag),
        description=f"open_clip {model} / {tag}", license="see the model card")


# ------------------------------------------------------------------------------------ checksums
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


def _cached_hash(path: Path) -> Optional[str]:
    try:
        key, size, mtime = _stat_key(path)
    except OSError:
        return None
    entry = _read_verified().get(key)
    if isinstance(entry, dict) and entry.get("size") == size and entry.get("mtime_ns") == mtime:
        value = entry.get("sha256")
        return value if isinstance(value, str) else None
    return None


def _remember_hash(path: Path, digest: str) -> None:
    try:
        key, size, mtime = _stat_key(path)
        data = _read_verified()
        data[key] = {"size": size, "mtime_ns": mtime, "sha256": digest}
        target = _verified_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".verified-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, target)
    except OSError as e:  # a read-only cache only costs a re-hash next time
        log.debug("could not remember the hash of %s: %s", path, e)


def verify_sha256(path: PathLike, expected: Optional[str], cancel: Optional[CancelFn] = None,
                  use_cache: bool = True) -> Path:
    """Check ``path``'s SHA-256 against ``expected`` (no check when ``expected`` is ``None``).

    Returns the path; raises :class:`~core.errors.ChecksumError` naming the file and both digests.
    A hash computed before for the same path, size and modification time is reused."""
    p = Path(path)
    if not expected:
        return p
    expected = expected.strip().lower()
    digest = _cached_hash(p) if use_cache else None
    if digest is None:
        digest = sha256_of(p, cancel)
        if use_cache:
            _remember_hash(p, digest)
    if digest != expected:
        raise ChecksumError(p, f"SHA-256 is {digest}, expected {expected}: the file is truncated, corrupt "
                               f"or a different file; delete it and provide the right one")
    return p


# ------------------------------------------------------------------------------------ locations
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


def _usable(p: Path) -> Optional[str]:
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
          ) -> tuple[Optional[Path], list[tuple[Path, str]], bool]:
    """``(file or None, places tried, whether the user's own choice (explicit / env) was missing)``."""
    tried: list[tuple[Path, str]] = []
    for source, p in _tried_list(spec, explicit):
        why = _usable(p)
        if why is None:
            return p, tried, False
        if source == "explicit":
            tried.append((p, f"{why} (the file given as --weights / in the settings)"))
            return None, tried, True
        if source == "env":
            tried.append((p, f"{why} (set by ${spec.env_var})"))
            return None, tried, True
        if source == "ours" or p.parent.exists():
            tried.append((p, why))
    return None, tried, False


def find(spec: Union[WeightSpec, str], explicit: Optional[PathLike] = None
         ) -> tuple[Optional[Path], list[tuple[Path, str]]]:
    """The first usable file in resolution order (no download, no hashing) and the places tried.

    An explicit file or an environment variable that points at nothing is not skipped: the user asked
    for that file, so the search stops there (``None``) and :func:`resolve` says so."""
    found, tried, _ = _find(get_spec(spec), explicit)
    return found, tried


def status(spec: Union[WeightSpec, str], explicit: Optional[PathLike] = None) -> str:
    """``"present"``, ``"corrupt"`` (found, and its remembered checksum is wrong), ``"partial"`` (an
    interrupted download can be resumed) or ``"missing"``.  Never downloads or hashes a file."""
    spec = get_spec(spec)
    if is_random(explicit):
        return PRESENT
    found, _ = find(spec, explicit)
    if found is not None:
        digest = _cached_hash(found) if spec.sha256 else None
        return CORRUPT if digest is not None and digest != spec.sha256.lower() else PRESENT
    if explicit is None and _part_path(spec).is_file():
        return PARTIAL
    return MISSING


# ------------------------------------------------------------------------------------ messages
def missing_message(spec: WeightSpec, tried: Sequence[tuple[Path, str]] = (), reason: str = "") -> str:
    """What is missing, its size, where we looked and every way to provide it."""
    target = paths.weights_dir(create=False) / spec.filename
    what = f"{spec.title} weights ({spec.id}, {spec.size_mb:.0f} MB)" if spec.size else f"{spec.title} weights ({spec.id})"
    lines = [f"missing {what}" + (f": {reason}" if reason else "")]
    origin = f" ({spec.hf_filename} of {spec.hf_repo})" if spec.hf_repo and spec.hf_filename else ""
    ways = [f"put the file{origin} at {target}"]
    if spec.env_var:
        ways.append(f"or set {spec.env_var}=/path/to/file")
    ways += ["or pass --weights FILE", "or choose the file in the GUI (Detector panel > Weights...)",
             "or run with network access once"]
    lines.append("To provide it: " + ", ".join(ways) + ".")
    src = download_url(spec)
    if src:
        lines.append(f"It is downloaded from {src}" + (f" (SHA-256 {spec.sha256})." if spec.sha256 else "."))
    if spec.open_clip:
        lines.append(f"A copy in open_clip's cache for {spec.open_clip[0]} / {spec.open_clip[1]} "
                     f"(Hugging Face hub cache or ~/.cache/clip) is used as is.")
    if tried:
        lines.append("Looked in: " + "; ".join(f"{p} ({why})" for p, why in tried) + ".")
    if spec.license:
        lines.append(f"License: {spec.license}.")
    return "\n".join(lines)


def _missing(spec: WeightSpec, tried: Sequence[tuple[Path, str]], reason: str = "") -> MissingWeightsError:
    return MissingWeightsError(missing_message(spec, tried, reason), spec=spec, tried=tuple(tried))


# ------------------------------------------------------------------------------------ download
def download_url(spec: WeightSpec) -> Optional[str]:
    """Where the file is downloaded from: the hub (``$HF_ENDPOINT``) when the spec names a hub file, else ``url``."""
    if spec.hf_repo and spec.hf_filename:
        base = (os.environ.get("HF_ENDPOINT", "").strip() or HF_DEFAULT_ENDPOINT).rstrip("/")
        rev = urllib.parse.quote(spec.hf_revision, safe="")
        return f"{base}/{spec.hf_repo}/resolve/{rev}/{urllib.parse.quote(spec.hf_filename)}"
    return spec.url


def _part_path(spec: WeightSpec) -> Path:
    return paths.weights_dir(create=False) / (spec.filename + ".part")


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
        req.add_header("Authorization", f"Bearer {token}")
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
        raise _missing(spec, [], "no download address is known for it")
    try:
        paths.weights_dir(create=True)
    except Exception as e:  # InputError: unwritable cache
        raise _missing(spec, [], str(e)) from e
    part = _part_path(spec)
    attempt = 0
    while True:
        try:
            _transfer(spec, url, part, progress, cancel)
            break
        except urllib.error.HTTPError as e:
            e.close()
            hint = " (the file may need a Hugging Face token: set HF_TOKEN)" if e.code in (401, 403) else ""
            raise _missing(spec, [], f"download failed: HTTP {e.code} {e.reason} from {url}{hint}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            reason = getattr(e, "reason", None) or e
            have = part.stat().st_size if part.is_file() else 0
            if have and attempt < retries:
                attempt += 1
                log.info("download of %s interrupted at %d bytes (%s); resuming", spec.id, have, reason)
                time.sleep(0.2 * attempt)
                continue
            kept = f"; {have / 1e6:.1f} MB kept in {part}, run again to resume" if have else ""
            raise _missing(spec, [], f"download from {url} failed ({type(e).__name__}: {reason}){kept}") from None
    try:
        verify_sha256(part, spec.sha256, cancel, use_cache=False)
    except ChecksumError as e:
        with contextlib.suppress(OSError):
            part.unlink()
        raise ChecksumError(target, f"download from {url} is not the published file, so it was deleted: "
                                    f"{e.problem.split(':')[0]}") from None
    os.replace(part, target)
    if spec.sha256:
        _remember_hash(target, spec.sha256.lower())
    _report(progress, 1.0, f"downloaded {spec.title} ({target.stat().st_size / 1e6:.0f} MB)")
    return target


# ------------------------------------------------------------------------------------ resolve
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
    found, tried, users_choice_missing = _find(spec, explicit)
    if found is not None:
        if verify:
            verify_sha256(found, spec.sha256, cancel)
        return found
    if users_choice_missing:
        raise _missing(spec, tried, "the file you gave cannot be used")
    if not allow_download:
        reason = "not found on this machine and downloads are off"
        if _part_path(spec).is_file():
            reason += f" (a partial download is in {_part_path(spec)}; allow the download to resume it)"
        raise _missing(spec, tried, reason)
    return download(spec, progress, cancel)


def _print_status(argv: Optional[Sequence[str]] = None) -> int:  # python -m core.weights
    for s in CATALOG.values():
        found, _ = find(s)
        print(f"{s.id:40s} {status(s):8s} {s.size_mb:6.0f} MB  {found or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(_print_status())
