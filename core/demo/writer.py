"""Writing the demo dataset: file layout, manifest, atomic install, cache (:func:`ensure_demo`)."""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np
import tifffile

from ..errors import InputError
from ..io.json_files import write_json
from ..io.locks import file_lock
from ._common import (DEFECT_KINDS, DEMO_CLASSES, DEMO_FORMAT, DEMO_VERSION, GEOMETRY_DEFECTS, GOOD, LABELS, MANIFEST,
                      MIXED_DEFECTS, SPLITS, TEXTURE_DEFECTS, ProgressFn, make_rng)
from .defects import sample_defect
from .parts import PART_MODELS, part_model, sample_part
from .render import render_part

# =============================================================================== dataset writer
def _normalize_args(classes: Optional[Sequence[str]] = None, n_train: int = 20, n_val: int = 4,
                    n_test_good: int = 8, n_per_defect: int = 4, size: int = 256, seed: int = 0) -> dict:
    if classes is None:
        classes = list(DEMO_CLASSES)
    elif isinstance(classes, str):
        classes = [classes]
    classes = list(dict.fromkeys(str(c) for c in classes))
    for c in classes:
        part_model(c)
    if not classes:
        raise ValueError("at least one demo class is needed")
    counts = dict(n_train=n_train, n_val=n_val, n_test_good=n_test_good, n_per_defect=n_per_defect)
    for k, val in counts.items():
        if int(val) != val or val < 0:
            raise ValueError(f"{k} must be a non-negative integer, got {val!r}")
        if val > 999:
            raise ValueError(f"{k} must be at most 999 (ids have 3 digits), got {val!r}")
    if int(size) != size or not 32 <= size <= 4096:
        raise ValueError(f"size must be an integer between 32 and 4096, got {size!r}")
    return dict(classes=classes, **{k: int(v) for k, v in counts.items()}, size=int(size), seed=int(seed))


def _plan(args: dict) -> Iterator[tuple[str, str, str, int]]:
    """(class, split, label, index) of every sample, in generation order."""
    for cname in args["classes"]:
        for split, label, n in (("train", GOOD, args["n_train"]), ("validation", GOOD, args["n_val"]),
                                ("test", GOOD, args["n_test_good"])):
            for i in range(n):
                yield cname, split, label, i
        for kind in DEFECT_KINDS:
            for i in range(args["n_per_defect"]):
                yield cname, "test", kind, i


def sample_rng(seed: int, cname: str, split: str, label: str, i: int) -> np.random.Generator:
    # keys by *name* position in the fixed tuples, so a subset of classes gives the same files
    return make_rng(seed, DEMO_CLASSES.index(cname), SPLITS.index(split), LABELS.index(label), i)


def _write_png(path: Path, img: np.ndarray) -> None:
    if not cv2.imwrite(str(path), img):
        raise InputError(path, "could not write the image (is the folder writable?)")


def _render_and_write(root: Path, args: dict, cname: str, split: str, label: str, i: int) -> dict:
    rng = sample_rng(args["seed"], cname, split, label, i)
    part = sample_part(cname, rng)
    defect = sample_defect(part, label, rng) if label != GOOD else None
    r = render_part(part, defect, args["size"])
    sid = f"{i:03d}"
    folder = root / cname / split / label
    files = {"rgb": f"{cname}/{split}/{label}/rgb/{sid}.png", "xyz": f"{cname}/{split}/{label}/xyz/{sid}.tiff"}
    if split == "test":
        files["gt"] = f"{cname}/{split}/{label}/gt/{sid}.png"
    for role in files:
        (folder / role).mkdir(parents=True, exist_ok=True)
    _write_png(root / files["rgb"], np.ascontiguousarray(r.rgb[..., ::-1]))
    tifffile.imwrite(root / files["xyz"], r.xyz, photometric="rgb")
    if "gt" in files:
        _write_png(root / files["gt"], r.gt.astype(np.uint8) * 255)
    obj = int(r.object_mask.sum())
    entry = {"class": cname, "split": split, "label": label, "id": sid, "files": files,
             "part": part.to_dict(), "object_pixels": obj}
    if defect is not None:
        entry["defect"] = defect.to_dict()
        entry["defect_pixels"] = int(r.gt.sum())
        entry["defect_area_fraction"] = round(int(r.gt.sum()) / max(obj, 1), 5)
    return entry


def read_manifest(root: Path) -> Optional[dict]:
    try:
        with open(Path(root) / MANIFEST, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == DEMO_FORMAT else None


def is_complete(root: Path, args: Optional[dict] = None) -> bool:
    """True if ``root`` holds a finished demo of this version (with ``args`` if given)."""
    man = read_manifest(root)
    if man is None or man.get("version") != DEMO_VERSION:
        return False
    if args is not None and man.get("args") != args:
        return False
    try:
        return all((Path(root) / p).is_file() for s in man["samples"] for p in s["files"].values())
    except (KeyError, TypeError, AttributeError):
        return False


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def generate_demo(out_dir: str | Path, classes: Optional[Sequence[str]] = None, n_train: int = 20,
                  n_val: int = 4, n_test_good: int = 8, n_per_defect: int = 4, size: int = 256,
                  seed: int = 0, progress: Optional[ProgressFn] = None) -> Path:
    """Write the demo dataset to ``out_dir`` (MVTec 3D-AD layout) and return its path.

    ``<out_dir>/<class>/{train,validation,test}/<label>/{rgb,xyz,gt}/NNN.{png,tiff,png}`` plus
    ``demo.json`` (version, arguments, classes, defect kinds and every sample's parameters).
    Folders with a count of 0 are not created.  The tree is built in a hidden sibling folder and
    renamed into place, so ``out_dir`` is either absent, the previous demo, or complete.  An existing
    ``out_dir`` is replaced only if it is empty or a demo dataset.

    ``progress(fraction, message)`` is called after each sample.
    """
    args = _normalize_args(classes, n_train, n_val, n_test_good, n_per_defect, size, seed)
    out = Path(out_dir).expanduser().absolute()
    if out.exists():
        if not out.is_dir():
            raise InputError(out, "exists and is not a folder; not overwriting it with the demo dataset")
        if any(out.iterdir()) and read_manifest(out) is None:
            raise InputError(out, "exists, is not empty and is not a demo dataset; not overwriting it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(out.parent, f"cannot create the folder ({e.strerror or e})") from None
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    plan = list(_plan(args))
    try:
        tmp.mkdir()
        samples = []
        for k, (cname, split, label, i) in enumerate(plan):
            samples.append(_render_and_write(tmp, args, cname, split, label, i))
            if progress is not None:
                progress((k + 1) / len(plan), f"demo: {cname}/{split}/{label}/{i:03d}")
        manifest = {
            "format": DEMO_FORMAT, "version": DEMO_VERSION, "args": args, "classes": args["classes"],
            "defect_kinds": list(DEFECT_KINDS),
            "defect_groups": {"geometry": list(GEOMETRY_DEFECTS), "texture": list(TEXTURE_DEFECTS),
                              "both": list(MIXED_DEFECTS)},
            "class_descriptions": {c: PART_MODELS[c].description for c in args["classes"]},
            "units": "mm; xyz missing points are stored as (0, 0, 0)",
            "samples": samples,
        }
        write_json(tmp / MANIFEST, manifest, sort_keys=True)
        _install(tmp, out, args)
    except OSError as e:
        _remove(tmp)
        raise InputError(getattr(e, "filename", None) or out, f"could not write the demo dataset ({e.strerror or e})") from None
    except BaseException:
        _remove(tmp)
        raise
    return out


def _install(tmp: Path, out: Path, args: dict) -> None:
    """Rename the finished ``tmp`` tree to ``out``, tolerating a concurrent writer."""
    for _ in range(3):
        try:
            os.rename(tmp, out)
            return
        except OSError:
            if not out.exists():
                raise
        if is_complete(out, args):       # another process finished the same demo first
            _remove(tmp)
            return
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            if out.is_dir() and not any(out.iterdir()):
                out.rmdir()
            else:
                os.rename(out, old)
        except OSError:
            continue                      # raced with another process: look again
        try:
            os.rename(tmp, out)
            return
        except OSError:
            continue
        finally:
            _remove(old)
    raise OSError(f"could not move the generated demo into place at {out}")


# =============================================================================== cache
def default_cache_dir() -> Path:
    """The application cache (:func:`core.paths.cache_dir`)."""
    from ..paths import cache_dir
    return cache_dir(create=False)


def ensure_demo(root: str | Path | None = None, progress: Optional[ProgressFn] = None, **kw) -> Path:
    """Return ``<root>/demo-v<DEMO_VERSION>``, generating it only if missing, incomplete or made
    with other arguments (``kw`` are :func:`generate_demo`'s).  ``root`` defaults to
    :func:`default_cache_dir`.  Safe when several processes call it at once (a lock file serialises
    generation; a finished tree is never rewritten)."""
    base = Path(root).expanduser() if root is not None else default_cache_dir()
    target = base / f"demo-v{DEMO_VERSION}"
    args = _normalize_args(**kw)
    if is_complete(target, args):
        return target
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(base, f"cannot create the cache folder ({e.strerror or e})") from None
    with file_lock(base / f".demo-v{DEMO_VERSION}.lock"):
        if is_complete(target, args):    # generated by another process while we waited
            return target
        return generate_demo(target, progress=progress, **kw)


