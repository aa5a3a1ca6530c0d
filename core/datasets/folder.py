"""Plain folders of images and/or point clouds (the user's own parts).

Any folder (searched recursively) of images (``.png .jpg .jpeg .bmp``) and point clouds
(``.ply .pcd .tif .tiff .npy .txt .xyz``) is a dataset.  These conventions are understood::

    my_parts/                      "good/ + parts": one class (my_parts)
        good/  a.png a.ply ...       good parts (the few-shot support comes from here)
        p1.png p1.ply p2.png ...     parts to inspect (split test, label unknown)
        unknown/ q1.png ...          any other sub-folder: more parts to inspect, same class
        bad/ r1.png ...              ... labelled with its name when it is a bad word (bad, ng, defect...)
        mask/ r1.png                 masks by stem, for the parts in the sibling folders

    my_parts/                      "train/good + test": one class (my_parts)
        train/good/ a.png a.ply      good parts
        test/ p1.png p1.ply          parts to inspect (label unknown)
        test/crack/ p2.png           parts with a known defect kind (label crack)
        ground_truth/crack/p2_mask.png

    my_parts/ p1.png p1.ply p2.png    "flat": every file is a part to inspect (no split, no label)

    parts/cookie/good/ ... parts/tire/good/ ...   one class per folder holding good/

An image and a cloud of one stem in one folder are ONE sample (RGB + cloud), never two; files in
*role* sub-folders are paired with their siblings, so ``part/rgb/001.png``, ``part/xyz/001.tiff``
and ``part/gt/001.png`` form one sample.  Image-only and cloud-only stems are samples too.

Ground truth: ``<stem>_mask.png`` next to the sample, or ``<stem>.png`` (``<stem>_mask.png``) in a
``gt``/``mask(s)``/``ground_truth`` folder beside the sample or beside its label folder
(``mask/r1.png`` for ``bad/r1.png``; ``ground_truth/crack/p2_mask.png`` for ``test/crack/p2.png``);
per-point labels ``<stem>.txt`` in such a folder.  A mask must have the image's size.

Names are inferred from the folder path relative to the root:

* a ``train``/``validation``/``test`` folder sets the split; the folder below it is the label
  (``good`` -> good, anything else is the defect kind) and the folders above it the class
  (files directly in ``train/`` are good by convention, files directly in ``test/`` unknown);
* else a folder holding a ``good``/``ok``/``normal`` sub-folder is the class: that sub-folder
  holds its good parts, its loose files and other sub-folders are its test parts, unlabelled
  unless the sub-folder's name is a bad word (``bad``/``ng``/``defect``...).  Defect kinds are named
  with ``test/<kind>/`` only, so an arbitrary folder name (``batch2``) never becomes a ground truth;
* otherwise a last folder named ``good``/``bad``/``ng``... sets that label and the folders above it
  form the class; the class is the relative folder path, or the root folder's name for files at
  the top.

Without any of these the label is ``""`` (unknown); a sample with a mask gets ``"defect"`` or
``"good"`` from it when loaded.

A folder named like a sample file (``002.png/``) is not walked into: it stays in its sample, whose
loading then reports "is a folder, not a file", and :attr:`Dataset.warnings` notes it.

A ``.tif``/``.tiff`` is an organized xyz cloud when it holds float ``H x W x 3`` data, else an
image; this is decided when the sample is loaded (listing never opens a file).
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Optional

import numpy as np

from .. import io
from ..errors import InputError, SampleLoadError
from ..sample import GOOD, Sample
from .base import Dataset, SampleRef, read_gt_mask

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_EXTS = (".tif", ".tiff")
POINT_EXTS = (".ply", ".pcd", ".npy", ".txt", ".xyz")
LABEL_EXTS = (".txt", ".npy")
SUPPORTED_EXTS = IMAGE_EXTS + TIFF_EXTS + POINT_EXTS

RGB_DIRS = {"rgb", "image", "images", "img", "imgs", "color", "colour", "photo", "photos"}
CLOUD_DIRS = {"xyz", "pc", "pcd", "pcds", "cloud", "clouds", "points", "pointcloud", "pointclouds",
              "point_cloud", "point_clouds", "ply", "3d"}
GT_DIRS = {"gt", "mask", "masks", "ground_truth", "groundtruth", "annotations"}
MASK_SUFFIXES = ("_mask", "_gt")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
               "validation": "validation", "test": "test", "testing": "test"}
GOOD_NAMES = {"good", "ok", "normal", "pass"}
BAD_NAMES = {"bad", "ng", "defect", "defects", "defective", "anomaly", "anomalous", "abnormal", "fail", "reject"}
#: text files that are never point clouds
IGNORED_STEMS = {"readme", "license", "licence", "notes", "changelog", "requirements", "classes", "labels", "license_mit"}
DEFECT = "defect"
#: listing stops with a clear error beyond this many directory entries (e.g. a home folder
#: chosen by mistake), instead of walking the whole disk
MAX_LISTED_FILES = 500_000


def _strip_mask_suffix(stem: str) -> Optional[str]:
    low = stem.lower()
    for s in MASK_SUFFIXES:
        if low.endswith(s) and len(stem) > len(s):
            return stem[: -len(s)]
    return None


def infer_names(parts: tuple[str, ...], root_name: str,
                good_parents: frozenset = frozenset()) -> tuple[str, str, str]:
    """(class_name, split, label) from the folder parts of a sample relative to the root.

    ``good_parents`` holds the relative folders (tuples of parts) that have a ``good`` sub-folder."""
    low = [p.lower() for p in parts]
    for i, name in enumerate(low):
        if name in SPLIT_NAMES:
            cls = "/".join(parts[:i]) or root_name
            label = ""
            if i + 1 < len(parts):
                label = GOOD if low[i + 1] in GOOD_NAMES else parts[i + 1]
            elif SPLIT_NAMES[name] == "train":
                label = GOOD  # a bare train folder holds good parts by convention
            return cls, SPLIT_NAMES[name], label
    for i in range(len(parts), -1, -1):  # the deepest folder that has a good/ sub-folder is the class
        if tuple(parts[:i]) in good_parents:
            cls = "/".join(parts[:i]) or root_name
            if i < len(parts) and low[i] in GOOD_NAMES:
                return cls, "", GOOD
            if i < len(parts) and low[i] in BAD_NAMES:
                return cls, "test", parts[i]
            return cls, "test", ""
    if low and (low[-1] in GOOD_NAMES or low[-1] in BAD_NAMES):
        return "/".join(parts[:-1]) or root_name, "", GOOD if low[-1] in GOOD_NAMES else parts[-1]
    return "/".join(parts) or root_name, "", ""


def _gt_candidates(parts: tuple[str, ...], is_good: bool) -> list[tuple[str, ...]]:
    """Folder keys whose ground truth may belong to a sample in ``parts``: its own folder, then (for
    a sample not known to be good) its label folder without the split (``ground_truth/crack`` for
    ``test/crack``) and its parent (``mask/`` beside ``bad/``)."""
    out = [parts]
    if not is_good and parts:
        no_split = tuple(p for p in parts if p.lower() not in SPLIT_NAMES)
        for cand in (no_split, parts[:-1]):
            if cand not in out:
                out.append(cand)
    return out


class _Group:
    __slots__ = ("parts", "stem", "files", "order")

    def __init__(self, parts: tuple[str, ...], stem: str, order: int):
        self.parts, self.stem, self.order = parts, stem, order
        self.files: dict[str, Path] = {}


class FolderDataset(Dataset):
    """A lazily listed folder of images and/or clouds."""

    layout = "folder"
    layout_label = "Plain folder"

    @staticmethod
    def detect(root: Path) -> bool:
        return Path(root).is_dir()

    @classmethod
    def from_root(cls, root) -> "FolderDataset":
        root = Path(root)
        groups: dict[tuple, _Group] = {}
        gts: dict[tuple, dict[str, Path]] = {}
        extras: list[_Group] = []
        good_parents: set[tuple] = set()
        warnings: list[str] = []
        seen = 0

        def group(parts, stem) -> _Group:
            key = (parts, stem)
            if key not in groups:
                groups[key] = _Group(parts, stem, len(groups) + len(extras))
            return groups[key]

        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted((d for d in dirnames if not d.startswith(".") and d != "__pycache__"),
                                 key=io.natural_key)
            rel = Path(dirpath).relative_to(root).parts
            parent = rel[-1].lower() if rel else ""
            seen += len(filenames) + len(dirnames)
            if seen > MAX_LISTED_FILES:
                raise InputError(root, f"too many files to list (more than {MAX_LISTED_FILES:,}); "
                                       "choose the dataset folder itself")
            # a folder named like a sample file (002.png/) is kept as that file so that loading
            # its sample says "is a folder", instead of the sample silently losing a modality
            fakes = [d for d in dirnames if os.path.splitext(d)[1].lower() in SUPPORTED_EXTS]
            if fakes:
                dirnames[:] = [d for d in dirnames if d not in fakes]
                warnings.extend(f"{Path(dirpath) / d}: is a folder, not a file (its sample will fail to load)"
                                for d in fakes)
            if any(d.lower() in GOOD_NAMES for d in dirnames):
                good_parents.add(rel)
            gi = next((i for i, q in enumerate(rel) if q.lower() in GT_DIRS), None)
            for name in sorted(filenames + fakes, key=io.natural_key):
                if name.startswith("."):
                    continue
                stem, ext = os.path.splitext(name)
                ext = ext.lower()
                if ext not in SUPPORTED_EXTS:
                    continue
                path = Path(dirpath) / name
                if gi is not None:  # ground truth folder: <stem>.png / <stem>_mask.png / <stem>.txt
                    role = "gt" if ext in IMAGE_EXTS + TIFF_EXTS else ("labels" if ext in LABEL_EXTS else None)
                    if role:
                        key = (rel[:gi] + rel[gi + 1:], _strip_mask_suffix(stem) or stem)
                        gts.setdefault(key, {}).setdefault(role, path)
                    continue
                parts = rel[:-1] if parent in RGB_DIRS or parent in CLOUD_DIRS else rel
                base = _strip_mask_suffix(stem)
                if base is not None and ext in IMAGE_EXTS + TIFF_EXTS:
                    gts.setdefault((parts, base), {}).setdefault("gt", path)
                    continue
                if ext in (".txt", ".xyz") and stem.lower() in IGNORED_STEMS:
                    continue
                role = "rgb" if ext in IMAGE_EXTS else ("tiff" if ext in TIFF_EXTS else "points")
                g = group(parts, stem)
                if role in g.files:  # e.g. 001.png and 001.jpg side by side: keep both as samples
                    extra = _Group(parts, name, len(groups) + len(extras))
                    extra.files[role] = path
                    extras.append(extra)
                else:
                    g.files[role] = path

        refs = []
        frozen = frozenset(good_parents)
        for g in sorted(list(groups.values()) + extras, key=lambda g: g.order):
            files = dict(g.files)
            _assign_tiff(files)
            cls_name, split, label = infer_names(g.parts, root.name, frozen)
            for cand in _gt_candidates(g.parts, label == GOOD):
                found = gts.get((cand, g.stem))
                if found:
                    for role, p in found.items():
                        files.setdefault(role, p)
                    break
            refs.append(SampleRef(id=g.stem, class_name=cls_name, split=split, label=label, paths=files))
        return cls(root, _unique_ids(refs, root), warnings)

    @classmethod
    def from_files(cls, rgb: Optional[os.PathLike] = None, cloud: Optional[os.PathLike] = None,
                   gt: Optional[os.PathLike] = None) -> "FolderDataset":
        """A one-sample dataset from an image and/or a cloud (and optionally a mask or per-point
        label file).  Missing files are reported when the sample is loaded."""
        if rgb is None and cloud is None:
            raise InputError(None, "give an image, a point cloud or both")
        first = Path(rgb if rgb is not None else cloud)
        files: dict[str, Path] = {}
        if rgb is not None:
            files["rgb"] = Path(rgb)
        if cloud is not None:
            files["points"] = Path(cloud)
        if gt is not None:
            gt = Path(gt)
            files["labels" if gt.suffix.lower() in LABEL_EXTS else "gt"] = gt
        cls_name, split, label = _names_for_file(first)
        ref = SampleRef(id=first.stem, class_name=cls_name, split=split, label=label, paths=files)
        return cls(first.parent, [ref])

    @classmethod
    def from_file(cls, path: os.PathLike) -> "FolderDataset":
        """A one-sample dataset for a single image or cloud file (a ``<stem>_mask.png`` beside it or
        ``gt/<stem>.png`` is used as its mask)."""
        p = Path(path)
        ext = p.suffix.lower()
        if ext not in SUPPORTED_EXTS + io.CLOUD_EXTS:
            raise InputError(p, f"unsupported file type '{ext or p.name}' (expected an image "
                                f"{', '.join(IMAGE_EXTS)} or a point cloud {', '.join(io.CLOUD_EXTS)})")
        files = {("rgb" if ext in IMAGE_EXTS else "tiff" if ext in TIFF_EXTS else "points"): p}
        _assign_tiff(files)
        for cand in (p.with_name(p.stem + "_mask.png"), p.parent / "gt" / (p.stem + ".png"),
                     p.parent.parent / "gt" / (p.stem + ".png")):
            if cand != p and cand.is_file():
                files["gt"] = cand
                break
        cls_name, split, label = _names_for_file(p)
        return cls(p.parent, [SampleRef(id=p.stem, class_name=cls_name, split=split, label=label, paths=files)])

    def load(self, ref: SampleRef) -> Sample:
        return load_files(ref)


def _names_for_file(p: Path) -> tuple[str, str, str]:
    """(class, split, label) of a lone file from its last folders, role folders (``rgb``, ``xyz``...)
    skipped: ``cookie/test/crack/rgb/001.png`` -> ("cookie", "test", "crack")."""
    parts = list(Path(p).absolute().parent.parts[1:])
    if parts and parts[-1].lower() in RGB_DIRS | CLOUD_DIRS:
        parts.pop()
    low = [q.lower() for q in parts]
    tail = parts[-3:]
    for i in range(len(low) - 1, max(len(low) - 4, -1), -1):
        if low[i] in SPLIT_NAMES:  # keep the class folder above the split folder
            tail = parts[max(i - 1, 0):]
            break
    else:
        tail = parts[-2:] if low and (low[-1] in GOOD_NAMES or low[-1] in BAD_NAMES) else parts[-1:]
    return infer_names(tuple(tail), parts[-1] if parts else "")


def _assign_tiff(files: dict[str, Path]) -> None:
    """A TIFF next to an image is the cloud; next to another cloud it is the image; alone it is
    taken as the cloud (and re-checked when loaded)."""
    t = files.pop("tiff", None)
    if t is None:
        return
    if "points" in files and "rgb" not in files:
        files["rgb"] = t
    elif "points" not in files:
        files["points"] = t
    # else: image and cloud already present: the extra TIFF is ignored


def _unique_ids(refs: list[SampleRef], root: Path) -> list[SampleRef]:
    """Make ``ref.key`` unique when different sub-folders map to the same class/split/label/id."""
    counts = Counter(r.key for r in refs)
    if all(c == 1 for c in counts.values()):
        return refs
    out = []
    for r in refs:
        if counts[r.key] > 1:
            main = next(iter(r.paths.values()))
            rel = main.relative_to(root).with_suffix("")
            r = SampleRef(id=rel.as_posix(), class_name=r.class_name, split=r.split, label=r.label, paths=r.paths)
        out.append(r)
    return out


def load_files(ref: SampleRef) -> Sample:
    """Load a sample from its ``rgb`` / ``points`` / ``gt`` / ``labels`` files and check that they
    agree (an organized cloud must have the image's size)."""
    paths = {k: Path(v) for k, v in ref.paths.items()}
    rgb = io.read_rgb(paths["rgb"]) if "rgb" in paths else None
    points = colors = None
    organized = False
    if "points" in paths:
        p = paths["points"]
        if p.suffix.lower() in TIFF_EXTS and not io.tiff_is_xyz(p):
            if rgb is not None:
                raise SampleLoadError(p, f"is an image, not an xyz point cloud (a float H x W x 3 TIFF); "
                                         f"the sample already has the image {paths['rgb'].name}")
            rgb = io.read_rgb(p)
            paths["rgb"] = paths.pop("points")
        else:
            points, colors, organized = io.read_cloud(p)
    if organized:
        if rgb is not None and rgb.shape[:2] != points.shape[:2]:
            raise SampleLoadError(paths["points"], f"point cloud grid {points.shape[1]}x{points.shape[0]} (W x H) does "
                                                   f"not match the image size {rgb.shape[1]}x{rgb.shape[0]} of "
                                                   f"{paths['rgb'].name}")
        if rgb is None and colors is not None:
            rgb = colors
        colors = None
    grid = rgb.shape[:2] if rgb is not None else (points.shape[:2] if organized else None)
    main = paths.get("rgb", paths.get("points"))
    gt = read_gt_mask(paths["gt"], grid, main) if "gt" in paths and grid is not None else None
    labels = None
    if "labels" in paths and points is not None:
        xyz, lab = io.read_point_labels(paths["labels"])
        pts = points.reshape(-1, 3)[np.isfinite(points.reshape(-1, 3)).all(axis=1)] if organized else points
        labels = io.align_point_labels(paths["labels"], pts, xyz, lab)
    label = ref.label
    if not label:
        if gt is not None:
            label = DEFECT if gt.any() else GOOD
        elif labels is not None:
            label = DEFECT if labels.any() else GOOD
    if rgb is None and points is None:
        raise SampleLoadError(None, f"sample {ref.key} has neither an image nor a point cloud")
    return Sample(id=ref.id, class_name=ref.class_name, label=label, split=ref.split, rgb=rgb, points=points,
                  point_colors=colors, gt_mask=gt, point_labels=labels, paths=paths)
