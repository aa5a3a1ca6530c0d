"""What a detector learned from its support set, as plain arrays + JSON (never pickle).

:meth:`Detector.fit <core.detectors.base.Detector.fit>` returns a :class:`FitState`; the instance
that fuses holds it (:meth:`Detector.load_state`), whichever process computed it.  A state saves to
two files beside each other, ``<stem>.npz`` (the arrays, written with ``allow_pickle=False``) and
``<stem>.json`` (detector id, state version, fit-stage parameters, part class, a content hash of
the support set, the arrays' own hash and the detector's JSON-able metadata), so a saved fit is
reused when the same detector, parameters and support set come back (:class:`FitStore`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

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
        with atomic_open(base.with_suffix(".npz")) as f:
            np.savez(f, **arrays)
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
        try:
            with np.load(npath, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as e:
            raise FitStateError(npath, f"cannot read the saved fit arrays ({type(e).__name__}: {e})") from None
        if arrays_hash(arrays) != header.get("arrays_sha256"):
            raise FitStateError(npath, "the saved fit arrays do not match their checksum (changed or corrupt)")
        return cls(detector=str(header["detector"]), version=str(header["version"]),
                   class_name=str(header.get("class_name", "")), params=dict(header.get("params") or {}),
                   support_hash=str(header.get("support_hash", "")), n_support=int(header.get("n_support", 0)),
                   arrays=arrays, meta=dict(header.get("meta") or {}))


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
            log.warning("ignoring saved fit: %s", e)
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
