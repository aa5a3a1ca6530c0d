"""MVTec 3D-AD layout.

::

    <root>/<class>/{train,validation,test}/<label>/rgb/NNN.png
                                                 /xyz/NNN.tiff   (organized cloud, missing = 0)
                                                 /gt/NNN.png     (defect mask; may be absent for good)

``root`` may also be a single class folder (holding ``train``/``test``...).  Listing only reads
folder entries; files are opened by :meth:`MVTec3DDataset.load`.  RGB-only and xyz-only samples
are allowed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .. import io
from ..errors import SampleLoadError
from ..sample import GOOD, Sample
from .base import ClassFolderDataset, SampleRef, list_entries, read_gt_mask, walk_split_labels

#: split folder name -> split name used in :class:`SampleRef`
SPLITS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
RGB_DIR, XYZ_DIR, GT_DIR = "rgb", "xyz", "gt"
RGB_EXTS = (".png", ".jpg", ".jpeg", ".bmp")
XYZ_EXTS = (".tiff", ".tif")
GT_EXTS = (".png", ".bmp", ".tiff", ".tif")


def _label_dirs(split_dir: Path) -> list[Path]:
    return [d for d in io.list_dir(split_dir, dirs=True)
            if (d / RGB_DIR).is_dir() or (d / XYZ_DIR).is_dir()]


def _is_class_dir(d: Path) -> bool:
    return any((d / s).is_dir() and _label_dirs(d / s) for s in SPLITS)


def class_dirs(root: Path) -> list[Path]:
    """The class folders of an MVTec 3D-AD tree (``[root]`` when root is itself a class folder)."""
    root = Path(root)
    if _is_class_dir(root):
        return [root]
    return [d for d in io.list_dir(root, dirs=True) if _is_class_dir(d)]


def _stem_map(folder: Path, exts, warnings: Optional[list] = None) -> dict[str, Path]:
    return {p.stem: p for p in list_entries(folder, exts, warnings)}


class MVTec3DDataset(ClassFolderDataset):
    """A lazily listed MVTec 3D-AD dataset (or one class of it)."""

    layout = "mvtec3d"
    layout_label = "MVTec 3D-AD"
    class_folders = staticmethod(class_dirs)

    @classmethod
    def list_class(cls, class_dir: Path, warnings: list[str]) -> list[SampleRef]:
        return [r for _, split, ldir in walk_split_labels([class_dir], SPLITS, _label_dirs)
                for r in cls._list_label_dir(class_dir.name, split, ldir, warnings)]

    @staticmethod
    def _list_label_dir(class_name: str, split: str, ldir: Path, warnings: Optional[list] = None) -> list[SampleRef]:
        rgb = _stem_map(ldir / RGB_DIR, RGB_EXTS, warnings)
        xyz = _stem_map(ldir / XYZ_DIR, XYZ_EXTS, warnings)
        gt = _stem_map(ldir / GT_DIR, GT_EXTS, warnings)
        label = GOOD if ldir.name.lower() == GOOD else ldir.name
        out = []
        for stem in sorted(set(rgb) | set(xyz), key=io.natural_key):
            paths = {}
            if stem in rgb:
                paths["rgb"] = rgb[stem]
            if stem in xyz:
                paths["points"] = xyz[stem]
            if stem in gt:
                paths["gt"] = gt[stem]
            out.append(SampleRef(id=stem, class_name=class_name, split=split, label=label, paths=paths))
        return out

    def load(self, ref: SampleRef) -> Sample:
        """Read the sample's files; sizes must agree (else :class:`SampleLoadError`)."""
        return load_rgb_xyz(ref, ref.paths.get("rgb"), ref.paths.get("points"), ref.paths.get("gt"))


def load_rgb_xyz(ref: SampleRef, rgb_path: Optional[Path], xyz_path: Optional[Path],
                 gt_path: Optional[Path]) -> Sample:
    """Load an (RGB, organized xyz TIFF, mask) triple into a :class:`Sample` and check that the
    xyz grid matches the RGB size."""
    rgb = io.read_rgb(rgb_path) if rgb_path is not None else None
    points = io.read_xyz_tiff(xyz_path) if xyz_path is not None else None
    if rgb is not None and points is not None and rgb.shape[:2] != points.shape[:2]:
        raise SampleLoadError(xyz_path, f"xyz size {points.shape[1]}x{points.shape[0]} (W x H) does not match "
                                        f"the RGB image size {rgb.shape[1]}x{rgb.shape[0]} of {Path(rgb_path).name}")
    if rgb is None and points is None:
        raise SampleLoadError(None, f"sample {ref.key} has neither an RGB image nor a point cloud")
    grid = rgb.shape[:2] if rgb is not None else points.shape[:2]
    gt = read_gt_mask(gt_path, grid, rgb_path if rgb is not None else xyz_path) if gt_path is not None else None
    paths = {k: Path(v) for k, v in ref.paths.items()}
    return Sample(id=ref.id, class_name=ref.class_name, label=ref.label or _label_from(gt), split=ref.split,
                  rgb=rgb, points=points, gt_mask=gt, paths=paths)


def _label_from(gt: Optional[np.ndarray]) -> str:
    if gt is None:
        return ""
    return "defect" if bool(gt.any()) else GOOD
