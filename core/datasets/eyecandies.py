"""Eyecandies layout (synthetic candies, Bonfiglioli et al. 2022).

::

    <root>/<Class>/{train,val,test_public,test_private}/data/
        NNN_image_4.png        RGB (the 5th light; used as the sample's image)
        NNN_depth.png          16-bit depth, normalised to [min, max] of the yaml below
        NNN_info_depth.yaml    normalization: {min: ..., max: ...}
        NNN_pose.txt           4 x 4 camera pose
        NNN_mask.png           defect mask (test sets)

The organized cloud follows the dataset's own recipe::

    d   = png / 65535 * (max - min) + min
    K4  = [[f, 0, W/2, 0], [0, f, H/2, 0], [0, 0, 1, 0], [0, 0, 0, 1]],  f = 711.11
    xyz = (inv(K4 @ pose) @ [u*d, v*d, d, 1])[:3]          (= d * inv(K4 @ pose) @ [u, v, 1, 1/d])

Eyecandies' public test set does not name defect kinds, so a test sample's label is read from its
mask when the sample is loaded: any pixel > 0 -> ``"defect"``, else ``"good"``.  Listing never
opens a file, so test refs carry the label ``""`` (unknown) until
:meth:`EyecandiesDataset.resolve_labels` reads the masks.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .. import io
from ..errors import InputError, SampleLoadError
from ..sample import GOOD, Sample
from .base import Dataset, SampleRef, read_gt_mask

FOCAL_LENGTH = 711.11
SPLITS = {"train": "train", "val": "validation", "validation": "validation",
          "test_public": "test", "test_private": "test", "test": "test"}
DEFECT = "defect"
_FILE_RE = re.compile(r"^(\d+)_(image_4\.png|depth\.png|info_depth\.yaml|pose\.txt|mask\.png)$", re.IGNORECASE)
_ROLES = {"image_4.png": "rgb", "depth.png": "points", "info_depth.yaml": "depth_info",
          "pose.txt": "pose", "mask.png": "gt"}


def _split_dirs(class_dir: Path) -> list[Path]:
    return [d for d in io.list_dir(class_dir, dirs=True) if d.name.lower() in SPLITS and (d / "data").is_dir()]


def class_dirs(root: Path) -> list[Path]:
    root = Path(root)
    if _split_dirs(root):
        return [root]
    return [d for d in io.list_dir(root, dirs=True) if _split_dirs(d)]


class EyecandiesDataset(Dataset):
    """A lazily listed Eyecandies dataset (or one class of it)."""

    layout = "eyecandies"
    layout_label = "Eyecandies"

    @staticmethod
    def detect(root: Path) -> bool:
        for cdir in class_dirs(Path(root)):
            for sdir in _split_dirs(cdir):
                if any(_FILE_RE.match(p.name) for p in io.list_dir(sdir / "data")[:64]):
                    return True
        return False

    @classmethod
    def from_root(cls, root) -> "EyecandiesDataset":
        root = Path(root)
        refs = []
        for cdir in class_dirs(root):
            for sdir in _split_dirs(cdir):
                split = SPLITS[sdir.name.lower()]
                groups: dict[str, dict[str, Path]] = {}
                for p in io.list_dir(sdir / "data"):
                    m = _FILE_RE.match(p.name)
                    if m:
                        groups.setdefault(m.group(1), {})[_ROLES[m.group(2).lower()]] = p
                for sid in sorted(groups, key=io.natural_key):
                    paths = groups[sid]
                    if "rgb" not in paths and "points" not in paths:
                        continue
                    label = GOOD if split in ("train", "validation") else ""
                    refs.append(SampleRef(id=sid, class_name=cdir.name, split=split, label=label, paths=paths))
        return cls(root, refs)

    def load(self, ref: SampleRef) -> Sample:
        paths = {k: Path(v) for k, v in ref.paths.items()}
        rgb = io.read_rgb(paths["rgb"]) if "rgb" in paths else None
        points = None
        if "points" in paths:
            points = depth_to_points(paths["points"], paths.get("depth_info"), paths.get("pose"))
            if rgb is not None and rgb.shape[:2] != points.shape[:2]:
                raise SampleLoadError(paths["points"],
                                      f"depth size {points.shape[1]}x{points.shape[0]} (W x H) does not match the "
                                      f"RGB image size {rgb.shape[1]}x{rgb.shape[0]} of {paths['rgb'].name}")
        grid = rgb.shape[:2] if rgb is not None else points.shape[:2]
        gt = read_gt_mask(paths["gt"], grid, paths.get("rgb", paths.get("points"))) if "gt" in paths else None
        label = ref.label
        if not label and gt is not None:
            label = DEFECT if gt.any() else GOOD
        return Sample(id=ref.id, class_name=ref.class_name, label=label, split=ref.split,
                      rgb=rgb, points=points, gt_mask=gt, paths=paths)

    def resolve_labels(self, on_error: Optional[Callable[[SampleRef, InputError], None]] = None) -> None:
        """Read the masks of refs whose label is unknown and set ``"defect"``/``"good"`` in place
        (reads one small PNG per test sample; a bad mask is reported through ``on_error`` and the
        ref stays unknown)."""
        new = []
        for r in self.refs:
            if not r.label and "gt" in r.paths:
                try:
                    r = replace(r, label=DEFECT if io.read_mask(r.paths["gt"]).any() else GOOD)
                except InputError as e:
                    if on_error is not None:
                        on_error(r, e)
            new.append(r)
        self.refs = new


def read_pose(path: Path) -> np.ndarray:
    """A 4 x 4 camera pose from a whitespace-separated text file."""
    a = io.read_text_table(Path(path), "pose file")
    if a.size != 16:
        raise SampleLoadError(path, f"expected a 4 x 4 pose matrix, got {a.shape[0]} x {a.shape[1]} numbers")
    pose = a.reshape(4, 4)
    if not np.isfinite(pose).all():
        raise SampleLoadError(path, "the pose matrix holds NaN or infinite values")
    return pose


def read_depth_range(path: Path) -> tuple[float, float]:
    """``(min, max)`` of the ``normalization`` block of an Eyecandies ``*_info_depth.yaml``."""
    info = io.read_simple_yaml(path)
    norm = info.get("normalization", info)
    try:
        lo, hi = float(norm["min"]), float(norm["max"])
    except (KeyError, TypeError, ValueError):
        raise SampleLoadError(path, "no numeric normalization min/max in the depth info file") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
        raise SampleLoadError(path, f"invalid depth range min={lo}, max={hi}")
    return lo, hi


def depth_to_points(depth_path: Path, info_path: Optional[Path], pose_path: Optional[Path],
                    focal_length: float = FOCAL_LENGTH) -> np.ndarray:
    """Organized ``H x W x 3`` float32 cloud (world frame, metres) from an Eyecandies depth PNG."""
    depth_path = Path(depth_path)
    if info_path is None:
        raise SampleLoadError(depth_path.with_name(depth_path.name.replace("_depth.png", "_info_depth.yaml")),
                              "file not found (needed to convert the depth image to metres)")
    if pose_path is None:
        raise SampleLoadError(depth_path.with_name(depth_path.name.replace("_depth.png", "_pose.txt")),
                              "file not found (needed to turn the depth image into a point cloud)")
    raw = io.read_image_raw(depth_path)
    if raw.ndim == 3:
        raw = raw[:, :, 0]
    if raw.dtype.kind not in "ui":
        raise SampleLoadError(depth_path, f"expected an integer (16-bit) depth image, got data type {raw.dtype}")
    if raw.dtype != np.uint16:
        raise SampleLoadError(depth_path, f"expected a 16-bit depth PNG, got {raw.dtype.itemsize * 8}-bit data")
    lo, hi = read_depth_range(info_path)
    pose = read_pose(pose_path)
    d = raw.astype(np.float64) / 65535.0 * (hi - lo) + lo
    h, w = d.shape
    k4 = np.array([[focal_length, 0, w / 2, 0], [0, focal_length, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]], np.float64)
    try:
        inv = np.linalg.inv(k4 @ pose)
    except np.linalg.LinAlgError:
        raise SampleLoadError(pose_path, "the camera pose matrix is not invertible") from None
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    cam = np.stack([u * d, v * d, d, np.ones_like(d)], axis=-1)     # H x W x 4
    xyz = (cam @ inv.T)[..., :3].astype(np.float32)
    xyz[~np.isfinite(xyz).all(axis=-1)] = np.nan
    if not np.isfinite(xyz).any():
        raise SampleLoadError(depth_path, "all points are missing (NaN or zero)")
    return xyz
