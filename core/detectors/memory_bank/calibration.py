"""Decision thresholds from good parts.

A per-class threshold on the fused image score is calibrated on image scores of *good* parts that
the bank did not see (leave-one-out scores of the support samples, or a ``validation/good`` split)
for a target false-alarm rate ``rate``:

* with enough scores to resolve the rate (``n * rate >= 1``), the empirical ``1 - rate`` quantile
  (linear interpolation);
* with fewer (few-shot: 5 scores cannot resolve 5 %), a normal fit: ``mean + z(1 - rate) * sd``,
  ``sd`` the sample standard deviation, floored at ``MIN_REL_SPREAD * |mean|`` (one or two scores
  say nothing about the spread).

Leave-one-out scores come from a bank with one sample fewer than the one the test parts meet, so
they are slightly pessimistic: the realised false-alarm rate tends to be at or below ``rate``.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import Sequence

import numpy as np

MIN_REL_SPREAD = 0.15


def calibrate_threshold(scores: Sequence[float], rate: float = 0.05) -> float:
    """Threshold on image scores such that about ``rate`` of good parts score at or above it."""
    v = np.asarray([s for s in scores if s is not None and math.isfinite(s)], np.float64)
    if not 0.0 < rate < 1.0:
        raise ValueError(f"false-alarm rate must be in (0, 1), got {rate}")
    if v.size == 0:
        return float("nan")
    if v.size * rate >= 1.0:
        return float(np.quantile(v, 1.0 - rate))
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    sd = max(sd, MIN_REL_SPREAD * abs(mean), 1e-6)
    return mean + NormalDist().inv_cdf(1.0 - rate) * sd


def false_alarm_rate(good_scores: Sequence[float], threshold: float) -> float:
    """Fraction of good parts flagged (score >= threshold); NaN without good parts."""
    v = np.asarray([s for s in good_scores if s is not None and math.isfinite(s)], np.float64)
    if v.size == 0 or threshold is None or not math.isfinite(threshold):
        return float("nan")
    return float(np.mean(v >= threshold))
