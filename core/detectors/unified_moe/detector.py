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

from ...fusion import weighted_max, weighted_mean
from ..base import STAGE_FUSION, Components, DetectorResult, Needs, Param
from ..postprocess import rgb_weight_param
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
        rgb_weight_param("rgb_weight * RGB + (1 - rgb_weight) * 3D renormalised where one modality is "
                         "undefined (fusion = mean), or max(RGB * rgb_weight / w_max, 3D * (1 - rgb_weight) "
                         "/ w_max) with w_max the larger weight (fusion = max)"),
        Param("fusion", "mean", "choice", choices=("mean", "max"), stage=STAGE_FUSION,
              help="weighted mean of the modality maps, or their weighted maximum (see rgb_weight)"),
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
            fused = (weighted_max if p["fusion"] == "max" else weighted_mean)(maps, w)
        return self.finish(fused, components, p, {"text_term": TEXT_OFF, "modalities": sorted(maps)})
