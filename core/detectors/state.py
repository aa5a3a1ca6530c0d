"""What a detector learned from its support set, as plain arrays + JSON (never pickle).

:meth:`Detector.fit <core.detectors.base.Detector.fit>` returns a :class:`FitState`; the instance
that fuses holds it (:meth:`Detector.load_state`), whichever process computed it.  A state saves to
two files beside each other, ``<stem>.npz`` (the arrays, written with ``allow_pickle=False``) and
``<stem>.json`` (detector id, state version, fit-stage parameters, part class, a content hash of
the support set, the arrays' own hash and the detector's JSON-able metadata), so a saved fit is
reused when the same detector, parameters and support set come back (:class:`FitStore`).

**Loading is bounded by the file.**  The header also records the ``.npz`` file's own SHA-256, its
size and the total bytes of its arrays.  :meth:`FitState.load` checks the size, then the SHA-256
(streamed, 1 MiB at a time), then every member of the archive from the zip directory and its
``.npy`` header: members must be stored uncompressed (``np.savez`` never compresses) and each
exactly as large as its declared shape, their total at most the header's bytes.  Only then is an
array read.  So a zip bomb (a small file declaring gigabytes) is refused before anything is
decompressed, and loading a fit never holds more than the ``.npz`` file's own size in memory.  A
fit saved before these fields existed gets the same member checks (their total bounded by the
file's size), then the arrays' hash.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..checkpoint import file_sha256
from ..errors import InputError, MMADError
from ..io.atomic import atomic_open
from ..io.json_files import read_json_header, to_jsonable, write_json

log = logging.getLogger(__name__)

FORMAT = "mmad-fit-state/1"


class FitStateError(InputError):
    """A saved fit state cannot be used (corrupt, foreign detector, other version)."""


def params_key(params: dict[str, Any]) -> str:
    """A stable text of a parameter dict (sorted keys, tuples as lists)."""
    return json.dumps(to_jsonable(params), sort_keys=True, separators=(",", ":"))


def arrays_hash(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        a = np.ascontiguousarray(arrays[k])
        h.update(k.encode())
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _hash_file(h: "hashlib._Hash", path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return True
    except OSError:
        return False


def support_hash(support: Sequence[Any]) -> str:
    """Content hash of a support set, in order.

    Each item is a :class:`~core.sample.Sample` (its files' bytes when it has paths, else its
    arrays), a :class:`~core.datasets.base.SampleRef` (its files' bytes) or a path.  Reading files
    is cheap next to decoding them, so a saved fit is found before any support sample is loaded.
    """
    h = hashlib.sha256()
    h.update(str(len(support)).encode())
    for item in support:
        h.update(b"|item|")
        paths: dict = {}
        if isinstance(item, (str, os.PathLike)):
            paths = {"file": Path(item)}
        elif getattr(item, "paths", None):
            paths = {k: Path(v) for k, v in item.paths.items() if v is not None}
        done = False
        for k in sorted(paths):
            if k in ("gt", "mask", "labels"):
                continue           # ground truth never changes what a fit learns
            h.update(k.encode())
            if _hash_file(h, paths[k]):
                done = True
            else:   # not readable (yet): at least tell different files apart
                h.update(b"missing:" + str(paths[k]).encode())
        if not done:
            for name in ("rgb", "points"):
                a = getattr(item, name, None)
                if a is not None:
                    a = np.ascontiguousarray(a)
                    h.update(name.encode() + str(a.shape).encode() + str(a.dtype).encode())
                    h.update(a.tobytes())
    return h.hexdigest()


@dataclass
class FitState:
    """A detector's fitted state: arrays + JSON-able metadata, with what it was fitted on."""
    detector: str
    version: str
    class_name: str = ""
    params: dict[str, Any] = field(default_factory=dict)      # fit-stage parameter values
    support_hash: str = ""
    n_support: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: the ``.npz`` file it was loaded from (None: computed in this process); errors name it
    source: Optional[Path] = field(default=None, compare=False)

    # ------------------------------------------------------------------ identity
    @property
    def key(self) -> str:
        """What the state depends on: detector, version, fit parameters, class and support."""
        return fit_key(self.detector, self.version, self.params, self.class_name, self.support_hash)

    @property
    def nbytes(self) -> int:
        return int(sum(np.asarray(a).nbytes for a in self.arrays.values()))

    # ------------------------------------------------------------------ disk
    def save(self, path: str | Path) -> Path:
        """Write ``<path>.npz`` + ``<path>.json`` atomically; returns the JSON path."""
        base = Path(path)
        if base.suffix in (".json", ".npz"):
            base = base.with_suffix("")
        arrays = {k: np.ascontiguousarray(v) for k, v in self.arrays.items()}
        for k, v in arrays.items():
            if v.dtype == object:
                raise MMADError(f"fit state array '{k}' has dtype object; only numeric arrays are saved")
        header = {"format": FORMAT, "detector": self.detector, "version": self.version,
                  "class_name": self.class_name, "params": to_jsonable(self.params),
                  "support_hash": self.support_hash, "n_support": self.n_support,
                  "arrays_sha256": arrays_hash(arrays), "meta": to_jsonable(self.meta)}
        npz = base.with_suffix(".npz")
        with atomic_open(npz) as f:
            np.savez(f, **arrays)
        header.update(npz_sha256=file_sha256(npz), npz_size=npz.stat().st_size,
                      npz_bytes=int(sum(a.nbytes for a in arrays.values())))
        write_json(base.with_suffix(".json"), header)
        return base.with_suffix(".json")

    @classmethod
    def load(cls, path: str | Path, detector: Optional[str] = None, version: Optional[str] = None) -> "FitState":
        """Read a saved state (never unpickles).  ``detector``/``version``: refuse another's."""
        base = Path(path)
        if base.suffix in (".json", ".npz"):
            base = base.with_suffix("")
        jpath, npath = base.with_suffix(".json"), base.with_suffix(".npz")
        header = read_json_header(jpath, FORMAT, "saved fit", FitStateError, detector)
        if version is not None and str(header.get("version")) != str(version):
            raise FitStateError(jpath, f"was saved by version {header.get('version')} of the detector "
                                       f"(this is {version}); it is refitted")
        arrays = _read_npz(npath, header)
        if arrays_hash(arrays) != header.get("arrays_sha256"):
            raise FitStateError(npath, "the saved fit arrays do not match their checksum (changed or corrupt)")
        try:
            return cls(detector=str(header["detector"]), version=str(header["version"]),
                       class_name=str(header.get("class_name", "")), params=dict(header.get("params") or {}),
                       support_hash=str(header.get("support_hash", "")), n_support=int(header.get("n_support", 0)),
                       arrays=arrays, meta=dict(header.get("meta") or {}), source=npath)
        except (KeyError, TypeError, ValueError) as e:
            raise FitStateError(jpath, f"the saved fit header is incomplete or malformed ({type(e).__name__}: {e})") from None


def _read_npz(npath: Path, header: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a saved fit's ``.npz``, checked before any member is read (module docstring:
    size, SHA-256, uncompressed members of exactly their declared size)."""
    def refuse(problem: str) -> FitStateError:
        return FitStateError(npath, f"{problem}; no array of it was read")
    try:
        size = os.stat(npath).st_size
    except OSError as e:
        raise FitStateError(npath, f"cannot read the saved fit arrays ({e.strerror or e})") from None
    if "npz_sha256" in header:
        if size != header.get("npz_size"):
            raise refuse(f"the file has {size:,} bytes, its header says {header.get('npz_size')}")
        try:
            sha = file_sha256(npath)
        except OSError as e:
            raise FitStateError(npath, f"cannot read the saved fit arrays ({e})") from None
        if sha != header["npz_sha256"]:
            raise refuse("the file does not match the checksum (SHA-256) in its header (changed or corrupt)")
    bound = int(header["npz_bytes"]) if isinstance(header.get("npz_bytes"), int) else None
    try:
        with zipfile.ZipFile(npath) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise refuse("the archive holds two members of one name")
            for i in infos:
                if i.compress_type != zipfile.ZIP_STORED:
                    raise refuse(f"member '{i.filename}' is compressed (saved fits are written uncompressed)")
                if not i.filename.endswith(".npy") or i.file_size != i.compress_size:
                    raise refuse(f"member '{i.filename}' is not a stored .npy array")
            declared = sum(i.file_size for i in infos)
            if declared > size:
                raise refuse(f"its members declare {declared:,} bytes, more than the file's {size:,}")
            if bound is not None and declared > bound + _NPY_HEADER_MAX * len(infos):
                raise refuse(f"its members declare {declared:,} bytes, its header says the arrays hold {bound:,}")
            for i in infos:                 # every member's .npy header first: nothing read yet
                with zf.open(i) as f:
                    _check_member(f, i, refuse)
            arrays = {}
            for i in infos:
                with zf.open(i) as f:
                    arrays[i.filename[:-4]] = np.lib.format.read_array(f, allow_pickle=False)
            return arrays
    except FitStateError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise FitStateError(npath, f"cannot read the saved fit arrays ({type(e).__name__}: {e})") from None


#: the largest ``.npy`` header a member may have (numpy's own reading limit)
_NPY_HEADER_MAX = 10_000


def _check_member(f, info: zipfile.ZipInfo, refuse) -> None:
    """Refuse a ``.npy`` member whose header is not numeric or whose shape is not exactly the
    member's size (a small member declaring gigabytes)."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(f, max_header_size=_NPY_HEADER_MAX)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(f, max_header_size=_NPY_HEADER_MAX)
    else:
        raise refuse(f"member '{info.filename}' is a .npy of unsupported version {version}")
    if dtype.hasobject:
        raise refuse(f"member '{info.filename}' holds Python objects (only numeric arrays are saved)")
    need = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if need != info.file_size:
        raise refuse(f"member '{info.filename}' declares shape {tuple(shape)} ({need:,} bytes) but holds "
                     f"{info.file_size:,}")


def fit_key(detector: str, version: str, params: dict[str, Any], class_name: str, support_hash: str) -> str:
    text = "\n".join([detector, str(version), params_key(params), class_name, support_hash])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class FitStore:
    """Saved fit states in a folder, one pair of files per :attr:`FitState.key`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_for(self, detector: str, key: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in detector)
        return self.root / safe / key

    def get(self, detector: str, version: str, key: str) -> Optional[FitState]:
        p = self.path_for(detector, key)
        if not p.with_suffix(".json").exists():
            return None
        try:
            st = FitState.load(p, detector=detector, version=version)
        except FitStateError as e:
            log.warning("saved fit refused, the class is refitted: %s", e)
            return None
        return st if st.key == key else None

    def put(self, state: FitState) -> Optional[Path]:
        try:
            return state.save(self.path_for(state.detector, state.key))
        except (OSError, MMADError) as e:
            log.warning("could not save the fit of %s/%s: %s", state.detector, state.class_name, e)
            return None

    def keys(self, detector: str) -> Iterable[str]:
        d = self.path_for(detector, "x").parent
        return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []
