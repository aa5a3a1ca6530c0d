"""Regions a reviewer marks: the heatmap blob under a clicked pixel, the cluster of high-scoring
3D points around a picked point (headless; the GUI only passes the click)."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np


def _level(value: float, threshold: Optional[float]) -> float:
    """The iso-level of a blob: the decision threshold, or half the clicked value when the click is
    on a spot below it (a reviewer may mark a sub-threshold spot as a missed defect)."""
    if threshold is not None and np.isfinite(threshold) and value >= threshold:
        return float(threshold)
    return 0.5 * float(value)


def blob_at_pixel(pixel_map: np.ndarray, row: int, col: int, threshold: Optional[float]) -> Optional[dict]:
    """The connected region of ``pixel_map >= level`` containing (row, col), as a polygon geometry
    ``{"polygon": [[x, y], ...], "space": "pixel"}`` (its outer contour), or None when the click is
    outside the map or on a non-positive score."""
    m = np.asarray(pixel_map, np.float32)
    h, w = m.shape[:2]
    if not (0 <= row < h and 0 <= col < w):
        return None
    v = float(m[row, col])
    if not np.isfinite(v) or v <= 0:
        return None
    mask = np.nan_to_num(m, nan=-np.inf) >= _level(v, threshold)
    n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    blob = (lab == lab[row, col]).astype(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea).reshape(-1, 2)
    if len(c) < 3:                      # a 1-2 pixel blob: its bounding box
        x0, y0 = c.min(0)
        x1, y1 = c.max(0)
        return {"bbox": [int(x0), int(y0), int(x1) + 1, int(y1) + 1], "space": "pixel"}
    return {"polygon": [[int(x), int(y)] for x, y in c], "space": "pixel"}


def cluster_at_point(points: np.ndarray, scores: np.ndarray, index: int, threshold: Optional[float],
                     radius: Optional[float] = None) -> Optional[dict]:
    """The points with ``score >= level`` connected to point ``index`` (neighbours within
    ``radius``, default 3 x the median nearest-neighbour spacing), as ``{"points": [...]}``."""
    from scipy.spatial import cKDTree
    pts = np.asarray(points, np.float64)
    s = np.asarray(scores, np.float64)
    if not (0 <= index < len(pts)) or not np.isfinite(s[index]) or s[index] <= 0:
        return None
    keep = np.flatnonzero(np.nan_to_num(s, nan=-np.inf) >= _level(float(s[index]), threshold))
    tree = cKDTree(pts[keep])
    if radius is None:
        d, _ = cKDTree(pts).query(pts[:: max(1, len(pts) // 2000)], k=2)
        radius = 3.0 * float(np.median(d[:, 1])) if len(d) else 1.0
    pos = {int(k): i for i, k in enumerate(keep)}
    seen = {pos[int(index)]}
    front = [pos[int(index)]]
    while front:
        nxt = []
        for lists in tree.query_ball_point(pts[keep[front]], radius):
            for j in lists:
                if j not in seen:
                    seen.add(j)
                    nxt.append(j)
        front = nxt
    return {"points": sorted(int(keep[j]) for j in seen), "space": "points"}
