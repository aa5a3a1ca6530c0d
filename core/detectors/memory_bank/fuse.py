"""Fusion of the ``memory-bank`` component maps (pure, milliseconds): weighted mean towards the
weighted maximum (``gamma``), optional agreement term (``beta``), NaN-aware smoothing, image score;
an image with an unorganized cloud is fused at image level."""
from __future__ import annotations

from typing import Any, Optional

import cv2
import numpy as np

from ...fusion import image_score as _image_score
from ...fusion import weighted_mean, weighted_product
from ..base import Components
from .bank import smooth_fill, weighted_max
from .params import GEOMETRY, RGB


def grid_sigma(sigma: float, comps: Components) -> float:
    """Sigma in working pixels -> pixels of the sample's grid."""
    if comps.shape is None:
        return 0.0
    ws = float(comps.extra.get("working_size", 256))
    return float(sigma) * max(comps.shape) / ws


def fuse_components(components: Components, p: dict[str, Any]) -> tuple[Optional[np.ndarray],
                                                                      Optional[np.ndarray], float, str]:
    """(pixel map, point scores, image score, modalities in words) of one sample."""
    alpha, beta = float(p["alpha"]), float(p["beta"])
    weights = {RGB: alpha, GEOMETRY: 1.0 - alpha}
    maps = {k: components.maps[k] for k in (RGB, GEOMETRY) if k in components.maps}
    pixel_map = point_scores = None
    if maps:
        # a zero weight drops a modality (alpha = 0 / 1: single-modality maps) unless no
        # modality of the sample has a positive weight (e.g. alpha = 1 on a 3D-only sample)
        present = {k: w for k, w in weights.items() if k in maps}
        if sum(present.values()) <= 0:
            present = {k: 1.0 for k in present}
        fused = weighted_mean(maps, present)
        gamma = float(p["gamma"])
        if gamma > 0 and len(maps) == 2:
            # where a single modality is defined, mean and max are that modality's value
            both = np.isfinite(maps[RGB]) & np.isfinite(maps[GEOMETRY])
            fused = np.where(both, (1 - gamma) * fused + gamma * weighted_max(maps, present), fused)
        if beta > 0 and len(maps) == 2:
            both = np.isfinite(maps[RGB]) & np.isfinite(maps[GEOMETRY])
            agree = weighted_product(maps, present)
            if agree is not None:
                fused = np.where(both, (1 - beta) * fused + beta * agree, fused)
        defined = np.isfinite(fused)
        smooth = smooth_fill(fused, grid_sigma(p["sigma"], components))
        pixel_map = smooth.astype(np.float32)
        score = _image_score(np.where(defined, smooth, np.nan), p["image_top_fraction"])
        if components.valid is not None:
            vm = components.valid
            m = pixel_map
            if m.shape != vm.shape:
                m = cv2.resize(m, (vm.shape[1], vm.shape[0]), interpolation=cv2.INTER_NEAREST)
            point_scores = m[vm].astype(np.float32)
    elif components.point_maps:
        pm = components.point_maps
        present = {k: weights.get(k, 0.0) for k in pm}
        if sum(present.values()) <= 0:
            present = {k: 1.0 for k in pm}
        num = sum(present[k] * np.asarray(v, np.float64) for k, v in pm.items())
        point_scores = (num / sum(present.values())).astype(np.float32)
        score = _image_score(point_scores, p["image_top_fraction"])
    else:
        score = float("nan")
    used = [k for k in (RGB, GEOMETRY) if k in maps or k in components.point_maps]
    how = "fused per pixel" if len(maps) == 2 else ""
    # an image with an unorganized cloud (e.g. part7.png + part7.ply): no pixel <-> point
    # correspondence is known, so the 3D evidence is kept per point and fused at image level
    loose = {k: v for k, v in components.point_maps.items() if k not in maps}
    if maps and loose:
        pm = loose[GEOMETRY] if GEOMETRY in loose else next(iter(loose.values()))
        point_scores = np.asarray(pm, np.float32)
        scores = {RGB: float(score), GEOMETRY: _image_score(point_scores, p["image_top_fraction"])}
        present = {k: weights[k] for k in scores if np.isfinite(scores[k])}
        if sum(present.values()) <= 0:
            present = {k: 1.0 for k in present}
        if present:
            tot = sum(present.values())
            mean = sum(w * scores[k] for k, w in present.items()) / tot
            wmax = max(present.values())
            mx = max((w / wmax) * scores[k] for k, w in present.items() if w > 0)
            g = float(p["gamma"])
            score = (1 - g) * mean + g * mx
        how = "fused at image level (no camera model links the image to the cloud)"
    names = {RGB: "RGB", GEOMETRY: "3D"}
    modalities = " ".join(f"{names[k]} {'✓' if k in used else '✗'}" for k in (RGB, GEOMETRY))
    if components.extra.get("geometry_skipped"):
        modalities += f" (3D skipped: {components.extra['geometry_skipped']})"
    if how:
        modalities += " " + how
    return pixel_map, point_scores, score, modalities
