"""Per-point ground truth: label files and their alignment with a cloud's points."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import SampleLoadError
from ._common import PathLike, as_path, guard
from .clouds import read_npy_array
from .text import read_text_table

def read_point_labels(path: PathLike) -> tuple[Optional[np.ndarray], np.ndarray]:
    """Read per-point ground truth: ``(xyz or None, labels)`` with ``labels`` an ``N`` bool array.

    Text files hold ``x y z label`` rows (Real3D-AD ``gt/*.txt``; the last column is the label, any
    value > 0 is a defect) or a single label column; ``.npy`` files an ``N`` label vector or an
    ``N x 4`` array.
    """
    p = as_path(path)
    if p.suffix.lower() == ".npy":
        a = read_npy_array(p)
        with guard(p, "label file"):
            a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
    else:
        a = read_text_table(p, "per-point label file")
    if a.ndim != 2 or a.shape[1] in (2, 3):
        raise SampleLoadError(p, f"expected rows of 'x y z label' or a single label column, got {a.shape[1]} columns")
    if a.shape[0] == 0:
        raise SampleLoadError(p, "label file is empty (no rows)")
    labels = np.nan_to_num(a[:, -1]) > 0
    xyz = a[:, :3].astype(np.float32) if a.shape[1] >= 4 else None
    return xyz, labels


def align_point_labels(path: PathLike, points: np.ndarray, label_xyz: Optional[np.ndarray],
                       labels: np.ndarray) -> np.ndarray:
    """Per-point labels for ``points`` (``N x 3``) from a label file's rows.

    Rows are matched by order when the counts agree (and, when the file has coordinates, the
    coordinates agree); otherwise each point takes the label of the nearest labelled coordinate
    (scipy ``cKDTree``).  ``path`` (the label file) is only used in error messages.
    """
    p = as_path(path)
    pts = np.asarray(points, dtype=np.float64)
    n = pts.shape[0]
    if len(labels) == n:
        if label_xyz is None:
            return labels.astype(bool)
        ext = float(np.ptp(pts, axis=0).max()) if n else 0.0
        if np.allclose(label_xyz, pts, rtol=0.0, atol=max(ext, 1.0) * 1e-5):
            return labels.astype(bool)
    if label_xyz is None:
        raise SampleLoadError(p, f"the file has {len(labels):,} labels but the point cloud has {n:,} points "
                                 "(and no coordinates to match them)")
    from scipy.spatial import cKDTree

    finite = np.isfinite(label_xyz).all(axis=1)
    if not finite.any():
        raise SampleLoadError(p, "the label file has no valid coordinates")
    tree = cKDTree(label_xyz[finite])
    _, idx = tree.query(pts, k=1, workers=-1)
    return labels[finite][idx].astype(bool)


