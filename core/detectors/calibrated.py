"""The decision threshold of detectors that calibrate one on good parts (``memory-bank``, the
trained detectors): ``threshold`` > 0 is used as typed; 0 means the upper
``calibration_confidence`` limit of the ``1 - false_alarm_rate`` quantile of the calibration parts'
fused image scores (:func:`core.calibration.tolerance_threshold`), cached per set of fusion
parameters; 1.0 without any calibration part."""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..calibration import tolerance_threshold
from .base import STAGE_FUSION, Capabilities, Param
from .state import params_key

__all__ = ["CalibratedThreshold", "calibration_params"]


def calibration_params() -> tuple[Param, Param]:
    """The two fusion parameters of the calibration: ``false_alarm_rate``, ``calibration_confidence``."""
    return (
        Param("false_alarm_rate", 0.05, "float", min=0.001, max=0.5, step=0.01, stage=STAGE_FUSION,
              help="target fraction of good parts flagged at the calibrated threshold"),
        Param("calibration_confidence", 0.9, "float", min=0.0, max=0.999, step=0.05, stage=STAGE_FUSION,
              help="confidence that the realised false-alarm rate is at most the target: the "
                   "calibrated threshold is this upper confidence limit of the good scores' quantile "
                   "(0.5 or less: the plain quantile estimate)"),
    )


class CalibratedThreshold:
    """Mixin for a :class:`~core.detectors.base.Detector`: subclasses implement
    :meth:`calibration_scores` and :meth:`~core.detectors.base.Detector.calibrate`, and call
    :meth:`forget_threshold` when those scores may change."""

    capabilities = Capabilities(calibrates=True)

    def __init__(self, *args: Any, **kwargs: Any):
        self._thr_cache: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def calibration_scores(self, params: Optional[dict[str, Any]] = None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def forget_threshold(self) -> None:
        self._thr_cache = {}

    def calibrated_threshold(self, params: Optional[dict[str, Any]] = None) -> float:
        """The calibrated threshold for these fusion parameters (cached per fusion-parameter set);
        1.0 (the 99th percentile of good locations) without calibration scores."""
        p = self.merged_params(params)
        key = params_key({q.name: p[q.name] for q in self.fusion_params() if q.name != "threshold"})
        cache = self._thr_cache
        if key not in cache:
            v = self.calibration_scores(p)
            thr = (tolerance_threshold(v, float(p["false_alarm_rate"]), float(p["calibration_confidence"]))
                   if len(v) else float("nan"))
            cache[key] = thr if math.isfinite(thr) else 1.0
        return cache[key]

    def decision_threshold(self, params: Optional[dict[str, Any]] = None) -> Optional[float]:
        """The threshold ``fuse`` uses: the ``threshold`` parameter, or, when it is 0, the
        calibrated one (None while the detector is not fitted: nothing to calibrate on yet)."""
        p = self.merged_params(params)
        t = float(p["threshold"])
        if t > 0:
            return t
        return self.calibrated_threshold(p) if self.fitted else None
