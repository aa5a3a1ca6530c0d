"""The ``unified-moe`` detector (UniMMAD-style): one model for all classes and any
modality combination (RGB-only, 3D-only, both).

The encoder features of whichever modalities the sample has are compressed to a general code and
decompressed into modality- and class-specific features by a sparsely gated mixture of experts
(:mod:`.model`); the map of each modality is the cosine discrepancy between its decompressed and
encoder features, calibrated on good support samples, fused with the declared weights
(``rgb_weight``; ``fusion = max`` takes the weighted maximum instead of the mean).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..base import STAGE_FUSION, Components, DetectorResult, Needs, Param
from ..trained import TEXT_OFF, TrainedDetector, checkpoint_param, fusion_common


class UnifiedMoEDetector(TrainedDetector):
    id = "unified-moe"
    name = "Unified MoE decompressor (trained, UniMMAD-style)"
    description = ("Trained on good parts of several classes: per-modality features compressed to a general "
                   "code and decompressed by a sparsely gated mixture of experts conditioned on modality and "
                   "class; anomalies are where the reconstruction differs. RGB-only, 3D-only or both.")
    needs = Needs(rgb="optional", points="optional", support=0, default_support=5, training=True)
    params = (
        checkpoint_param(),
        Param("rgb_weight", 0.5, "float", min=0.0, max=1.0, step=0.05, stage=STAGE_FUSION,
              help="weight of the RGB map; geometry gets 1 - rgb_weight"),
        Param("fusion", "mean", "choice", choices=("mean", "max"), stage=STAGE_FUSION,
              help="weighted mean of the modality maps, or their weighted maximum"),
        *fusion_common(),
    )

    @classmethod
    def make_net(cls, config):
        from .model import UnifiedMoENet  # torch: imported only when a model is built
        return UnifiedMoENet(**config)

    def fuse(self, components: Components, params: Optional[dict[str, Any]] = None) -> DetectorResult:
        p = self.merged_params(params)
        w = {"rgb": p["rgb_weight"], "geometry": 1.0 - p["rgb_weight"]}
        maps = {k: m for k, m in components.maps.items() if k in w}
        if maps and sum(w[k] for k in maps) <= 0:
            w = {k: 1.0 for k in w}
        fused = None
        if maps:
            if p["fusion"] == "max":
                wmax = max(w[k] for k in maps)
                fused = np.fmax.reduce([m * (w[k] / wmax) for k, m in maps.items()]) if len(maps) > 1 \
                    else next(iter(maps.values())) * (w[next(iter(maps))] / wmax if wmax else 1.0)
            else:
                num = np.zeros(components.shape, np.float64)
                den = np.zeros(components.shape, np.float64)
                for k, m in maps.items():
                    ok = np.isfinite(m)
                    num += np.where(ok, m, 0) * w[k]
                    den += ok * w[k]
                fused = np.where(den > 0, num / np.maximum(den, 1e-12), np.nan).astype(np.float32)
        return self.finish(fused, components, p, {"text_term": TEXT_OFF, "modalities": sorted(maps)})
