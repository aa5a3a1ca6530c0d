"""Fusion of the ``memory-bank`` component maps (pure, milliseconds): weighted mean (``rgb_weight``)
towards the weighted maximum (``max_weight``), optional agreement term (``agreement_weight``), then
the shared post-processing (:func:`core.detectors.postprocess.finish`); an image with an
unorganized cloud is fused at image level."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...fusion import image_score, weighted_max, weighted_mean, weighted_product
from ..base import Components
from ..postprocess import finish
from .params import GEOMETRY, RGB


def fuse_components(components: Components, p: dict[str, Any]) -> tuple[Optional[np.ndarray],
                                                                      Optional[np.ndarray], float, str]:
    """(pixel map, point scores, image score, modalities in words) of one sample."""
    w_rgb, w_agree = float(p["rgb_weight"]), float(p["agreement_weight"])
    weights = {RGB: w_rgb, GEOMETRY: 1.0 - w_rgb}
    maps = {k: components.maps[k] for k in (RGB, GEOMETRY) if k in components.maps}
    pixel_map = point_scores = None
    if maps:
        # a zero weight drops a modality (rgb_weight = 0 / 1: single-modality maps) unless no
        # modality of the sample has a positive weight (e.g. rgb_weight = 1 on a 3D-only sample)
        present = {k: w for k, w in weights.items() if k in maps}
        if sum(present.values()) <= 0:
            present = {k: 1.0 for k in present}
        fused = weighted_mean(maps, present)
        w_max = float(p["max_weight"])
        if w_max > 0 and len(maps) == 2:
            # where a single modality is defined, mean and max are that modality's value
            both = np.isfinite(maps[RGB]) & np.isfinite(maps[GEOMETRY])
            fused = np.where(both, (1 - w_max) * fused + w_max * weighted_max(maps, present), fused)
        if w_agree > 0 and len(maps) == 2:
            both = np.isfinite(maps[RGB]) & np.isfinite(maps[GEOMETRY])
            agree = weighted_product(maps, present)
            if agree is not None:
                fused = np.where(both, (1 - w_agree) * fused + w_agree * agree, fused)
        done = finish(fused, p["sigma_pct"], p["image_top_fraction"], components.valid)
        pixel_map, point_scores, score = done.pixel_map, done.point_scores, done.image_score
    elif components.point_maps:
        pm = components.point_maps
        present = {k: weights.get(k, 0.0) for k in pm}
        if sum(present.values()) <= 0:
            present = {k: 1.0 for k in pm}
        point_scores = weighted_mean(pm, present)
        score = image_score(point_scores, p["image_top_fraction"])
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
        scores = {RGB: float(score), GEOMETRY: image_score(point_scores, p["image_top_fraction"])}
        present = {k: weights[k] for k in scores if np.isfinite(scores[k])}
        if sum(present.values()) <= 0:
            present = {k: 1.0 for k in present}
        if present:
            tot = sum(present.values())
            mean = sum(w * scores[k] for k, w in present.items()) / tot
            wmax = max(present.values())
            mx = max((w / wmax) * scores[k] for k, w in present.items() if w > 0)
            g = float(p["max_weight"])
            score = (1 - g) * mean + g * mx
        how = "fused at image level (no camera model links the image to the cloud)"
    names = {RGB: "RGB", GEOMETRY: "3D"}
    modalities = " ".join(f"{names[k]} {'✓' if k in used else '✗'}" for k in (RGB, GEOMETRY))
    if components.extra.get("geometry_skipped"):
        modalities += f" (3D skipped: {components.extra['geometry_skipped']})"
    if how:
        modalities += " " + how
    return pixel_map, point_scores, score, modalities
