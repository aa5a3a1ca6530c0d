"""Checkpoints of trained detectors: ``<name>.safetensors`` (the tensors) + ``<name>.json`` (metadata).

Loading never unpickles: safetensors holds raw tensors only, and the JSON sidecar is plain data.
The JSON records the detector, its model and feature configuration, the classes trained on, the
library versions, a hash of the training data and the SHA-256 of the tensor file; a checkpoint
whose tensor file does not match that hash (changed, truncated, tampered) is refused, and so is
one made for another detector, other features or other classes, and one whose tensors hold NaN or
infinite values (:class:`CheckpointError`, an :class:`~core.errors.InputError` naming the file).
The tensors' shapes are checked against the model by the detector that builds it
(:meth:`core.detectors.trained.TrainedDetector.net_from_tensors`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import InputError
from .io.atomic import atomic_write
from .io.json_files import read_json_header, to_jsonable, write_json

FORMAT = "mmad-checkpoint/1"
SUFFIX = ".safetensors"


class CheckpointError(InputError):
    """A checkpoint cannot be used (missing, corrupt, tampered, foreign)."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def paths_for(path: str | Path) -> tuple[Path, Path]:
    """(tensor file, JSON file) of a checkpoint given either of them or their common stem."""
    p = Path(path)
    if p.suffix in (SUFFIX, ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + SUFFIX), p.with_name(p.name + ".json")


@dataclass
class Checkpoint:
    tensors: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None
    sha256: str = ""

    @property
    def detector(self) -> str:
        return str(self.meta.get("detector", ""))

    @property
    def classes(self) -> list[str]:
        return [str(c) for c in self.meta.get("classes", [])]

    def save(self, path: str | Path) -> Path:
        """Write both files atomically (tensors first, JSON last); returns the tensor file."""
        from safetensors.numpy import save
        tpath, jpath = paths_for(path)
        data = save({k: np.ascontiguousarray(v) for k, v in self.tensors.items()})
        sha = hashlib.sha256(data).hexdigest()
        atomic_write(tpath, data)
        meta = to_jsonable(dict(self.meta, format=FORMAT, tensors_sha256=sha, tensor_file=tpath.name))
        write_json(jpath, meta, sort_keys=True)
        self.meta, self.path, self.sha256 = meta, tpath, sha
        return tpath


def load_checkpoint(path: str | Path, detector: Optional[str] = None, features: Optional[dict] = None,
                    class_name: Optional[str] = None) -> Checkpoint:
    """Read and verify a checkpoint.  ``detector``: refuse another detector's; ``features``: refuse
    one trained on other features (their ``version`` and dimensions); ``class_name``: refuse one
    not trained on that class."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    if not str(path).strip():
        raise CheckpointError(None, f"detector '{detector or '?'}' needs a trained checkpoint: train one with "
                                    f"'python main.py train --data DIR --detector {detector or 'ID'} --out CKPT' "
                                    f"and pass it with --checkpoint CKPT")
    tpath, jpath = paths_for(path)
    if not jpath.is_file() or not tpath.is_file():
        raise CheckpointError(Path(path), f"no checkpoint here (expected {tpath.name} and {jpath.name})")
    meta = read_json_header(jpath, FORMAT, "checkpoint", CheckpointError, detector)
    if features is not None:
        theirs = meta.get("features") or {}
        for k in ("version", "d_rgb", "d_geo"):
            if theirs.get(k) != features.get(k):
                raise CheckpointError(jpath, f"was trained on other features ({k} = {theirs.get(k)!r}; "
                                             f"this installation computes {features.get(k)!r}): retrain it")
    classes = [str(c) for c in meta.get("classes", [])]
    if class_name is not None and class_name not in classes:
        raise CheckpointError(jpath, f"was trained on classes {', '.join(classes) or '(none)'}, not on "
                                     f"'{class_name}': train a model that includes it")
    try:
        sha = file_sha256(tpath)
    except OSError as e:
        raise CheckpointError(tpath, f"cannot read the checkpoint ({e})") from None
    if sha != meta.get("tensors_sha256"):
        raise CheckpointError(tpath, "does not match the SHA-256 in its metadata (changed, truncated or tampered)")
    try:
        tensors = load_file(str(tpath))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(tpath, f"cannot read the checkpoint tensors ({type(e).__name__}: {e})") from None
    check_finite(tensors, tpath)
    return Checkpoint(tensors=tensors, meta=meta, path=tpath, sha256=sha)


def check_finite(tensors: dict[str, np.ndarray], source: Any, error: type[InputError] = CheckpointError,
                 prefix: str = "") -> None:
    """Refuse (``error(source, ...)``, naming the tensor) tensors that hold NaN or infinite values:
    a model with such weights scores every sample NaN."""
    for k, v in tensors.items():
        v = np.asarray(v)
        if v.dtype.kind in "fc" and not np.isfinite(v).all():
            n = int(v.size - np.isfinite(v).sum())
            raise error(source, f"its tensor '{prefix}{k}' holds {n:,} NaN or infinite value(s): the model is "
                                f"corrupt (retrain it, or restore the file)")
