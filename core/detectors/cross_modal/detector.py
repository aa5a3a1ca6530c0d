"""The ``cross-modal`` detector: anomalies are where RGB and 3D disagree.

A trained RGB -> 3D mapper (GACM) and 3D -> RGB MLP (:mod:`.model`) predict each modality's
features from the other's; the maps are ``Psi_rgb = D(F_rgb, F_3d->rgb)`` and
``Psi_3d = D(F_3d, F_rgb->3d)`` (cosine discrepancy per location of the common feature grid,
calibrated on good support samples), fused as ``Psi = alpha (Psi_rgb * Psi_3d) + beta Psi_text``
(eq. 16; ``fusion = sum`` replaces the product by ``rgb_weight Psi_rgb + (1 - rgb_weight) Psi_3d``),
then post-processed as every detector (:mod:`core.detectors.postprocess`).

The text term needs CLIP text features (OCTA); none exist without weights, so ``Psi_text`` is off
and every result says so (``Components.extra['text_term']``, ``DetectorResult.params['text_term']``).

**RGB-only or 3D-only samples are refused** with a clear message: with one modality there is
nothing to map across, and a silent fallback would report a score that means something else.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ...errors import InputError
from ..base import STAGE_FUSION, Components, DetectorResult, Needs, Param
from ..postprocess import rgb_weight_param
from ..trained import TEXT_OFF, TrainedDetector, checkpoint_param, fusion_common


class CrossModalDetector(TrainedDetector):
    id = "cross-modal"
    name = "Cross-modal mapper (trained, RGB <-> 3D)"
    description = ("Trained on good parts of several classes: a geometry-aware RGB->3D mapper (semantic and "
                   "geometric branches, geometry-prior gating) and a 3D->RGB MLP on weight-free patch "
                   "descriptors; anomalies are where the modalities disagree. Needs RGB and an organized "
                   "point cloud. Text term (OCTA) off without CLIP weights.")
    needs = Needs(rgb="required", points="required", support=0, default_support=5, training=True)
    params = (
        checkpoint_param(),
        Param("alpha", 0.5, "float", "alpha (cross-modal term)", min=0.0, max=4.0, step=0.05, stage=STAGE_FUSION,
              help="alpha of the paper's eq. 16, Psi = alpha * Psi_cross + beta * Psi_text: the weight of the "
                   "cross-modal term Psi_cross = Psi_rgb * Psi_3d (fusion = product) or "
                   "rgb_weight * Psi_rgb + (1 - rgb_weight) * Psi_3d (fusion = sum)"),
        Param("beta", 0.5, "float", "beta (text term)", min=0.0, max=4.0, step=0.05, stage=STAGE_FUSION,
              help="beta of the paper's eq. 16, Psi = alpha * Psi_cross + beta * Psi_text: the weight of the "
                   "text term Psi_text; no effect while the text term is off (no CLIP text features)"),
        Param("fusion", "product", "choice", choices=("product", "sum"), stage=STAGE_FUSION,
              help="the cross-modal term Psi_cross: product: Psi_rgb * Psi_3d (the paper); "
                   "sum: rgb_weight * Psi_rgb + (1 - rgb_weight) * Psi_3d"),
        rgb_weight_param("the weighted sum of the cross-modal term (fusion = sum only), where both are "
                         "defined"),
        *fusion_common(),
    )

    @classmethod
    def make_net(cls, config):
        from .model import CrossModalNet  # torch: imported only when a model is built
        return CrossModalNet(**config)

    def check_usable(self, feats, sample) -> None:
        if feats.rgb is None or feats.geo is None or not feats.valid.any():
            src = sample.paths.get("rgb") or sample.paths.get("points") or sample.key
            have = "an RGB image only" if feats.geo is None else "no usable RGB"
            why = f" ({feats.geometry_note})" if feats.geometry_note else ""
            raise InputError(src, f"detector 'cross-modal' needs an RGB image and an organized point cloud "
                                  f"aligned with it; this sample has {have}{why}: nothing to map across "
                                  f"modalities (use 'unified-moe' or 'memory-bank' for single-modality data)")

    def fuse(self, components: Components, params: Optional[dict[str, Any]] = None) -> DetectorResult:
        p = self.merged_params(params)
        a, b = components.maps.get("rgb"), components.maps.get("geometry")
        fused = None
        if a is not None and b is not None:
            if p["fusion"] == "product":
                cross = np.maximum(a, 0) * np.maximum(b, 0)
            else:
                cross = p["rgb_weight"] * a + (1 - p["rgb_weight"]) * b
            fused = (p["alpha"] * cross).astype(np.float32)   # + beta * Psi_text: off (no text features)
        return self.finish(fused, components, p, {"text_term": TEXT_OFF})
