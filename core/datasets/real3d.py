"""Real3D-AD layout (point clouds only, Liu et al. 2023).

::

    <root>/<class>/train/*template*.pcd     good training templates (every cloud there is good)
    <root>/<class>/test/<n>_<kind>.pcd      e.g. 1_bulge.pcd, 12_sink_cut.pcd, 7_good.pcd
    <root>/<class>/gt/<stem>.txt            per-point ground truth "x y z label" (comma or space)

Detected only by its own signature, so that a user's ``train/good`` + ``test/`` folder of PNG and
PLY files is never taken for it: a class folder has ``train/*template*.pcd|ply`` clouds, or
``test/`` clouds together with ``gt/*.txt`` point labels.

The test label is the file stem after the first ``_`` (``1_bulge`` -> ``bulge``); a stem that
contains ``good`` is good; a stem without ``_`` has an unknown label (``""``) until its ground truth
is loaded.  ``.ply`` clouds are accepted as well as ``.pcd``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import io
from ..sample import GOOD, Sample
from .base import ClassFolderDataset, SampleRef, list_entries

CLOUD_EXTS = (".pcd", ".ply")
LABEL_EXTS = (".txt", ".npy")
DEFECT = "defect"
_GOOD_WORDS = ("good", "ok", "normal")


def _has_clouds(d: Path) -> bool:
    return d.is_dir() and bool(io.list_dir(d, CLOUD_EXTS))


def _is_class_dir(d: Path) -> bool:
    """Real3D-AD's signature: template clouds in ``train/``, or test clouds with ``gt/*.txt``."""
    if any("template" in p.stem.lower() for p in io.list_dir(d / "train", CLOUD_EXTS)):
        return True
    return _has_clouds(d / "test") and bool(io.list_dir(d / "gt", (".txt",)))


def class_dirs(root: Path) -> list[Path]:
    root = Path(root)
    if _is_class_dir(root):
        return [root]
    return [d for d in io.list_dir(root, dirs=True) if _is_class_dir(d)]


def label_from_stem(stem: str) -> str:
    """``"1_bulge"`` -> ``"bulge"``, ``"3_good"`` -> ``"good"``, ``"12"`` -> ``""`` (unknown)."""
    low = stem.lower()
    if any(w in low.split("_") for w in _GOOD_WORDS) or "good" in low:
        return GOOD
    _, sep, rest = stem.partition("_")
    return rest if sep and rest else ""


class Real3DDataset(ClassFolderDataset):
    """A lazily listed Real3D-AD dataset (or one class of it)."""

    layout = "real3d"
    layout_label = "Real3D-AD"
    class_folders = staticmethod(class_dirs)

    @classmethod
    def list_class(cls, class_dir: Path, warnings: list[str]) -> list[SampleRef]:
        refs = [SampleRef(id=p.stem, class_name=class_dir.name, split="train", label=GOOD, paths={"points": p})
                for p in list_entries(class_dir / "train", CLOUD_EXTS, warnings)]
        gts = {p.stem: p for p in io.list_dir(class_dir / "gt", LABEL_EXTS)}
        for p in list_entries(class_dir / "test", CLOUD_EXTS, warnings):
            if "template" in p.stem.lower():  # stray templates left in test/ by some releases
                continue
            paths = {"points": p}
            if p.stem in gts:
                paths["labels"] = gts[p.stem]
            refs.append(SampleRef(id=p.stem, class_name=class_dir.name, split="test",
                                  label=label_from_stem(p.stem), paths=paths))
        return refs

    def load(self, ref: SampleRef) -> Sample:
        paths = {k: Path(v) for k, v in ref.paths.items()}
        points, colors, organized = io.read_cloud(paths["points"])
        labels = None
        if "labels" in paths:
            xyz, lab = io.read_point_labels(paths["labels"])
            pts = points.reshape(-1, 3)[np.isfinite(points.reshape(-1, 3)).all(axis=1)] if organized else points
            labels = io.align_point_labels(paths["labels"], pts, xyz, lab)
        label = ref.label
        if not label and labels is not None:
            label = DEFECT if labels.any() else GOOD
        if organized and colors is not None:
            rgb, colors = colors, None
        else:
            rgb = None
        return Sample(id=ref.id, class_name=ref.class_name, label=label, split=ref.split, rgb=rgb,
                      points=points, point_colors=colors, point_labels=labels, paths=paths)
