"""Decision thresholds from good parts (shared by the detectors that calibrate one).

A per-class threshold on the fused image score is calibrated on image scores of *good* parts the
detector did not learn from (memory-bank: ``validation/good`` and the ``train/good`` samples the
support left out, else leave-one-out scores of the support; trained detectors: ``validation/good``
and the training parts held out of training) for a target false-alarm rate ``rate``:

* with enough scores to resolve the rate (``n * rate >= 1``), the empirical ``1 - rate`` quantile
  (linear interpolation);
* with fewer (few-shot: 5 scores cannot resolve 5 %), a normal fit: ``mean + z(1 - rate) * sd``,
  ``sd`` the sample standard deviation, floored at ``MIN_REL_SPREAD * |mean|`` (one or two scores
  say nothing about the spread).

Leave-one-out scores come from a bank with one sample fewer than the one the test parts meet, but
the support parts also resemble each other more than they resemble later parts (same batch, same
session), so in practice they are *optimistic* (measured: MVTec grid, the demo).  Validation
scores (good parts the bank never saw, scored by the full bank) have no such bias and are used
when there are any.

:func:`tolerance_threshold` (what the detector uses) adds the sampling uncertainty of ``n``
scores: an upper ``confidence`` limit of the ``1 - rate`` quantile, so that with probability
``confidence`` the realised false-alarm rate is at most ``rate``:

* distribution-free when ``n`` allows it: the smallest order statistic ``X_(k)`` with
  ``P(Binomial(n, 1 - rate) <= k - 1) >= confidence`` (needs ``n >= log(1 - confidence) /
  log(1 - rate)``, 45 scores for 5 % at 90 %);
* otherwise the normal one-sided tolerance bound ``mean + k * sd``, ``k`` = the ``confidence``
  quantile of the non-central t with ``n - 1`` degrees of freedom and non-centrality
  ``z(1 - rate) * sqrt(n)``, divided by ``sqrt(n)`` (e.g. 2.74 for n = 5, 5 %, 90 %); ``sd``
  floored at ``MIN_REL_SPREAD * |mean|``; with a single score, the bound of two.
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


def tolerance_threshold(scores: Sequence[float], rate: float = 0.05, confidence: float = 0.9) -> float:
    """Upper ``confidence`` limit of the ``1 - rate`` quantile of the good-part scores (module doc);
    ``confidence`` <= 0.5 falls back to :func:`calibrate_threshold` (the point estimate)."""
    v = np.sort(np.asarray([s for s in scores if s is not None and math.isfinite(s)], np.float64))
    if not 0.0 < rate < 1.0:
        raise ValueError(f"false-alarm rate must be in (0, 1), got {rate}")
    if v.size == 0:
        return float("nan")
    if confidence <= 0.5:
        return calibrate_threshold(v, rate)
    confidence = min(float(confidence), 0.999)
    from scipy import stats
    n = v.size
    ks = np.arange(1, n + 1)
    ok = stats.binom.cdf(ks - 1, n, 1.0 - rate) >= confidence
    if ok.any():
        return float(v[int(np.argmax(ok))])
    mean = float(v.mean())
    sd = float(v.std(ddof=1)) if n > 1 else 0.0
    sd = max(sd, MIN_REL_SPREAD * abs(mean), 1e-6)
    m = max(n, 2)
    k = float(stats.nct.ppf(confidence, m - 1, NormalDist().inv_cdf(1.0 - rate) * math.sqrt(m))) / math.sqrt(m)
    return mean + k * sd


def false_alarm_rate(good_scores: Sequence[float], threshold: float) -> float:
    """Fraction of good parts flagged (score >= threshold); NaN without good parts."""
    v = np.asarray([s for s in good_scores if s is not None and math.isfinite(s)], np.float64)
    if v.size == 0 or threshold is None or not math.isfinite(threshold):
        return float("nan")
    return float(np.mean(v >= threshold))
