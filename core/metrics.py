"""Evaluation metrics for image-, pixel- and point-level anomaly detection.

All functions are pure: numpy arrays in, Python floats out.  A metric that is undefined for its
input (one class only, no ground-truth region, empty input) returns ``nan`` and issues an
:class:`UndefinedMetricWarning`.

Conventions
-----------
* **Labels** (image / point level) are bool or 0/1 arrays; ``True`` / 1 is *anomalous*.
* **Masks** (pixel level) are H x W arrays where any non-zero value is anomalous (MVTec PNGs store
  255), so ground-truth images can be passed as read.
* **Scores**: higher means more anomalous.  ``NaN`` scores (e.g. pixels without a 3D point) rank
  *below every other score*: they are replaced by ``-inf`` and, being equal to each other, count as
  ties.  To leave such pixels out of a metric instead, pass a ``valid`` mask.
* A pixel/point is predicted anomalous at threshold ``t`` when ``score >= t``.

Exactness and memory
--------------------
:func:`pixel_auroc`, :func:`point_auroc` and :func:`aupro` are exact (no threshold sampling) and
made for MVTec-scale input (250 maps of 800 x 800 = 160M pixels):

* scores are copied once into two float32 arrays, one per class (4 bytes per pixel; scores are
  compared in float32, so differences below float32 resolution count as ties);
* each class is sorted in place, and the class with fewer elements is located in the other with
  binary searches, in chunks, so no int64 permutation of all pixels is ever built (AU-PRO on its
  own only sorts the normal scores above its FPR limit, isolated by a linear-time partition);
* AUROC is the Mann-Whitney statistic ``P(s+ > s-) + 0.5 P(s+ = s-)`` counted in exact integer
  arithmetic, identical to :func:`sklearn.metrics.roc_auc_score`;
* AU-PRO follows the official MVTec 3D-AD evaluation (``generic_util.trapezoid`` on the curve of
  ``pro_curve_util.compute_pro``): the per-region-overlap curve is taken at *every* distinct
  threshold, integrated with the trapezoid rule up to FPR = ``limit`` (linear interpolation of the
  last segment) and divided by ``limit``.  Per-region overlap is accumulated with sorting and
  cumulative sums of per-pixel weights ``1 / (region size * number of regions)``.  The integral is
  summed per normal pixel (a segment of the curve only has width where normal pixels pass the
  threshold), which gives the same number as integrating the materialized curve while touching only
  the normal pixels whose FPR is below ``limit``.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Optional, Sequence

import cv2
import numpy as np
from scipy import ndimage

if TYPE_CHECKING:  # pragma: no cover
    from .detectors.base import DetectorResult
    from .sample import Sample

__all__ = [
    "UndefinedMetricWarning",
    "image_auroc", "image_ap", "f1_max",
    "pixel_auroc", "point_auroc",
    "pro_curve", "aupro", "aupro_30", "aupro_1",
    "EvalAccumulator",
    "METRIC_KEYS",
]

#: Elements processed per binary-search chunk (bounds the int64 temporaries to ~64 MB).
_CHUNK = 1 << 22

#: 8-connectivity, as in the official MVTec (3D-)AD evaluation.
_STRUCTURE = np.ones((3, 3), dtype=int)

#: Keys of :meth:`EvalAccumulator.compute`, in display order.
METRIC_KEYS = ("image_auroc", "image_ap", "pixel_auroc", "aupro_30", "aupro_1", "point_auroc",
               "f1_max", "f1_threshold", "n_images", "n_anomalous", "n_pixel_images", "n_clouds")


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined for the given input (e.g. only one class) and was set to NaN."""


def _undefined(metric: str, why: str) -> float:
    warnings.warn(f"{metric} is undefined: {why}; returning NaN", UndefinedMetricWarning, stacklevel=3)
    return math.nan


# ---------------------------------------------------------------------------------- validation
def _as_labels(labels: Any, what: str = "labels") -> np.ndarray:
    """1-D bool array from bool or 0/1 input (ValueError otherwise)."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    if arr.size and not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"{what} must be bool or 0/1 numbers, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise ValueError(f"{what} must be bool or 0/1, got the value {arr[bad][0]!r}")
    return arr.astype(bool)


def _as_scores(scores: Any, n: int, what: str = "scores", dtype=np.float64) -> np.ndarray:
    """1-D float array of length ``n`` with NaN replaced by -inf."""
    try:
        arr = np.array(scores, dtype=dtype).reshape(-1) if np.ndim(scores) <= 1 else None
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be real numbers") from None
    if arr is None:
        raise ValueError(f"{what} must be a 1-D array, got shape {np.shape(scores)}")
    if arr.size != n:
        raise ValueError(f"{what} has {arr.size} values but the labels have {n}")
    arr[np.isnan(arr)] = -np.inf
    return arr


def _float_map(m: Any, what: str) -> np.ndarray:
    """float32 view/copy of a score map (NaN kept; replaced later)."""
    try:
        return np.asarray(m, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must hold real numbers") from None


# --------------------------------------------------------------------------- ranking kernels
def _search_sums(ref_sorted: np.ndarray, queries_sorted: np.ndarray) -> tuple[int, int]:
    """Sums over all queries of ``searchsorted(ref, q, 'left')`` and ``(..., 'right')`` (exact ints)."""
    s_left = s_right = 0
    for i in range(0, queries_sorted.size, _CHUNK):
        q = queries_sorted[i:i + _CHUNK]
        s_left += int(np.searchsorted(ref_sorted, q, side="left").sum(dtype=np.int64))
        s_right += int(np.searchsorted(ref_sorted, q, side="right").sum(dtype=np.int64))
    return s_left, s_right


def _auc_sorted(pos: np.ndarray, neg: np.ndarray) -> float:
    """Exact AUROC from the *sorted* scores of both classes (Mann-Whitney U with half ties).

    ``2U = sum_p (#neg < p) + (#neg <= p)`` is counted with binary searches of the smaller class in
    the larger one; all counts are integers, so the result is exact.
    """
    n_pos, n_neg = pos.size, neg.size
    if pos.size <= neg.size:
        s_left, s_right = _search_sums(neg, pos)
        two_u = s_left + s_right
    else:  # count, for each negative, the positives above it (and half the ties)
        s_left, s_right = _search_sums(pos, neg)
        two_u = 2 * n_pos * n_neg - s_left - s_right
    return two_u / (2.0 * n_pos * n_neg)


def _ranked(labels: np.ndarray, scores: np.ndarray):
    """Descending sort; per distinct threshold: index of its last element, TP and FP counts."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    y = labels[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # last index of each tie group
    tp = np.cumsum(y, dtype=np.int64)[ends]
    fp = ends + 1 - tp
    return s[ends], tp, fp


# ---------------------------------------------------------------------------- image level
def image_auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of per-image scores (exact, ties count half)."""
    y = _as_labels(labels)
    s = _as_scores(scores, y.size)
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    if pos.size == 0 or neg.size == 0:
        return _undefined("image AUROC", "it needs both good and anomalous samples")
    return _auc_sorted(pos, neg)


def image_ap(labels: Any, scores: Any) -> float:
    """Average precision, ``sum_n (R_n - R_{n-1}) P_n`` over distinct thresholds.

    Same definition as :func:`sklearn.metrics.average_precision_score` (no interpolation).
    Undefined (NaN) without anomalous or without good samples.
    """
    y = _as_labels(labels)
    s = _as_scores(scores, y.size)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return _undefined("image AP", "it needs both good and anomalous samples")
    _, tp, fp = _ranked(y, s)
    precision = tp / (tp + fp)
    recall = tp / n_pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def f1_max(labels: Any, scores: Any) -> tuple[float, float]:
    """Best F1 over all thresholds and the threshold reaching it.

    Returns ``(f1, threshold)``; a sample is predicted anomalous when ``score >= threshold``, and
    ``threshold`` is one of the scores.  When several thresholds reach the best F1, the highest one
    is returned.  ``(nan, nan)`` without anomalous or without good samples.
    """
    y = _as_labels(labels)
    s = _as_scores(scores, y.size)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        _undefined("F1-max", "it needs both good and anomalous samples")
        return math.nan, math.nan
    thresholds, tp, fp = _ranked(y, s)
    f1 = 2.0 * tp / (tp + fp + n_pos)  # 2TP / (2TP + FP + FN)
    k = int(np.argmax(f1))             # first maximum = highest threshold
    return float(f1[k]), float(thresholds[k])


# ---------------------------------------------------------------------------- pixel level
class _PixelSet:
    """Scores of all (valid) pixels split by class, ready for exact ranking metrics.

    ``neg``: float32 scores of normal pixels (sorted by :meth:`sorted_neg`, partly by
    :meth:`top_neg`).  ``pos``: sorted float32 scores of anomalous pixels.  With ``regions=True``
    also ``suffix``: ``suffix[i]`` is the mean over all ground-truth regions of the fraction of the
    region's pixels among ``pos[i:]`` (so ``suffix[0] == 1`` and ``suffix[-1] == 0``), i.e. the PRO
    at any threshold between ``pos[i-1]`` and ``pos[i]``.
    """

    def __init__(self, masks: Sequence[Any], maps: Sequence[Any], valid: Optional[Sequence[Any]] = None,
                 regions: bool = False, kind: str = "map"):
        n = len(masks)
        if len(maps) != n:
            raise ValueError(f"got {n} masks but {len(maps)} {kind}s")
        if valid is not None and len(valid) != n:
            raise ValueError(f"got {n} masks but {len(valid)} valid masks")

        # pass 1: check shapes, count pixels per class
        n_pos = n_neg = 0
        for i in range(n):
            gt, ok = self._gt_and_valid(i, masks[i], maps[i], None if valid is None else valid[i], kind)
            p = int(np.count_nonzero(gt & ok)) if ok is not None else int(np.count_nonzero(gt))
            total = int(np.count_nonzero(ok)) if ok is not None else gt.size
            n_pos += p
            n_neg += total - p

        # pass 2: copy scores into one float32 array per class (and region weights)
        self.pos = np.empty(n_pos, np.float32)
        self.neg = np.empty(n_neg, np.float32)
        inv_size = np.empty(n_pos, np.float64) if regions else None
        self.n_regions = 0
        ip = ineg = 0
        for i in range(n):
            gt, ok = self._gt_and_valid(i, masks[i], maps[i], None if valid is None else valid[i], kind)
            s = _float_map(maps[i], f"{kind} {i}")
            pos_sel = gt if ok is None else gt & ok
            neg_sel = ~gt if ok is None else ~gt & ok
            a = s[pos_sel]
            b = s[neg_sel]
            self.pos[ip:ip + a.size] = a
            self.neg[ineg:ineg + b.size] = b
            if regions and a.size:
                lab, n_lab = ndimage.label(gt, structure=_STRUCTURE)
                lab_sel = lab[pos_sel]
                sizes = np.bincount(lab_sel, minlength=n_lab + 1)
                self.n_regions += int(np.count_nonzero(sizes[1:]))  # regions left with no valid pixel drop out
                inv_size[ip:ip + a.size] = 1.0 / sizes[lab_sel]
            ip += a.size
            ineg += b.size

        for arr in (self.pos, self.neg):
            arr[np.isnan(arr)] = -np.inf
        self._neg_sorted = False  # sorted on demand: AU-PRO alone only needs the top scores sorted
        if regions:
            order = np.argsort(self.pos, kind="stable")
            self.pos = self.pos[order]
            w = inv_size[order]
            del order, inv_size
            # suffix sums of 1/size, in units of regions, then averaged over regions
            suffix = np.empty(n_pos + 1, np.float64)
            suffix[:n_pos] = np.cumsum(w[::-1])[::-1]
            suffix[n_pos] = 0.0
            if self.n_regions:
                suffix /= self.n_regions
            np.clip(suffix, 0.0, 1.0, out=suffix)
            self.suffix: Optional[np.ndarray] = suffix
        else:
            self.pos.sort()
            self.suffix = None

    @staticmethod
    def _gt_and_valid(i: int, mask: Any, smap: Any, valid: Any, kind: str):
        gt = np.asarray(mask)
        if gt.ndim != 2:
            raise ValueError(f"mask {i} must be a 2-D array, got shape {gt.shape}")
        shape = np.shape(smap)
        if tuple(shape) != gt.shape:
            raise ValueError(f"{kind} {i} has shape {tuple(shape)} but its mask has shape {gt.shape}")
        gt = gt != 0 if gt.dtype != bool else gt
        ok = None
        if valid is not None:
            ok = np.asarray(valid)
            if ok.shape != gt.shape:
                raise ValueError(f"valid mask {i} has shape {ok.shape} but its mask has shape {gt.shape}")
            ok = ok.astype(bool, copy=False)
        return gt, ok

    # -------------------------------------------------------------- metrics
    def auroc(self, what: str = "pixel AUROC") -> float:
        if self.pos.size == 0:
            return _undefined(what, "the ground truth has no anomalous pixel")
        if self.neg.size == 0:
            return _undefined(what, "the ground truth has no normal pixel")
        return _auc_sorted(self.pos, self.sorted_neg())

    def sorted_neg(self) -> np.ndarray:
        """The normal scores, sorted ascending (in place, once)."""
        if not self._neg_sorted:
            self.neg.sort()
            self._neg_sorted = True
        return self.neg

    def top_neg(self, m: int) -> tuple[np.float32, int, int, np.ndarray]:
        """``(v, n_gt, n_ge, top)``: ``v`` is the (m+1)-th highest normal score, ``n_gt`` / ``n_ge``
        the numbers of normal scores > v / >= v, ``top`` the normal scores > v, sorted ascending.

        Without a full sort, a partition (linear time) isolates the top scores and only they are
        sorted: AU-PRO at a limit of 0.3 sorts 30% of the normal pixels.
        """
        neg, n = self.neg, self.neg.size
        k = n - 1 - m
        if self._neg_sorted:
            v = neg[k]
            lo = int(np.searchsorted(neg, v, side="left"))
            hi = int(np.searchsorted(neg, v, side="right"))
            return v, n - hi, n - lo, neg[hi:]
        neg.partition(k)  # neg[k] = v, neg[:k] <= v <= neg[k + 1:]
        v = neg[k]
        upper = neg[k + 1:]
        top = upper[upper > v]
        top.sort()
        n_ge = top.size + 1 + int(np.count_nonzero(upper == v)) + int(np.count_nonzero(neg[:k] == v))
        return v, top.size, n_ge, top

    def _pro_at(self, t: np.ndarray | float, side: str) -> np.ndarray:
        """PRO for ``score >= t`` (side='left') or ``score > t`` (side='right')."""
        return self.suffix[np.searchsorted(self.pos, t, side=side)]

    def aupro(self, limit: float) -> float:
        if not (0.0 < limit <= 1.0):
            raise ValueError(f"the AU-PRO integration limit must be in (0, 1], got {limit}")
        if self.n_regions == 0:
            return _undefined("AU-PRO", "the ground truth has no anomalous region")
        if self.neg.size == 0:
            return _undefined("AU-PRO", "the ground truth has no normal pixel")
        n = self.neg.size
        k_lim = limit * n  # FPR = limit after k_lim normal pixels (descending)
        m = int(math.floor(k_lim))
        correction = 0.0
        if m >= n:
            top = self.sorted_neg()
        else:
            # v = the (m+1)-th highest normal score: its tie group crosses the limit
            v, n_in, n_ge, top = self.top_neg(m)
            if n_in < k_lim:  # interpolate inside the segment (F(>v), R(>v)) -> (F(>=v), R(>=v))
                x0, x1 = n_in / n, n_ge / n
                y0 = float(self._pro_at(v, "right"))
                y1 = float(self._pro_at(v, "left"))
                y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
                correction = 0.5 * (y_lim + y0) * (limit - x0)
        # each normal pixel above the cut closes a trapezoid of width 1/n between the PRO just above
        # its score and the PRO at its score (ties: the group's trapezoid, split evenly)
        total = 0.0
        for i in range(0, top.size, _CHUNK):
            q = top[i:i + _CHUNK]
            total += float(self._pro_at(q, "right").sum()) + float(self._pro_at(q, "left").sum())
        area = 0.5 * total / n + correction
        return area / limit

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n_regions == 0:
            _undefined("the PRO curve", "the ground truth has no anomalous region")
            return np.array([0.0, 1.0]), np.array([math.nan, math.nan])
        if self.neg.size == 0:
            _undefined("the PRO curve", "the ground truth has no normal pixel")
            return np.array([0.0, 1.0]), np.array([math.nan, math.nan])
        neg = self.sorted_neg()
        thresholds = np.union1d(self.pos, neg)[::-1]  # distinct, descending
        fprs = (neg.size - np.searchsorted(neg, thresholds, side="left")) / neg.size
        pros = self._pro_at(thresholds, "left")
        np.clip(fprs, 0.0, 1.0, out=fprs)
        return np.concatenate(([0.0], fprs, [1.0])), np.concatenate(([0.0], pros, [1.0]))


def pixel_auroc(masks: Sequence[Any], maps: Sequence[Any], valid: Optional[Sequence[Any]] = None) -> float:
    """Exact pixel AUROC over all pixels of all images.

    Parameters
    ----------
    masks:
        Ground truth, one H x W array per image (non-zero = anomalous).  Sizes may differ between
        images.
    maps:
        Anomaly maps, each with the shape of its mask (ValueError naming the index otherwise).
        NaN ranks lowest.
    valid:
        Optional H x W bool masks, one per image (or None for "all pixels"); pixels where it is
        False are left out.
    """
    return _PixelSet(masks, maps, valid).auroc()


def point_auroc(labels_list: Sequence[Any], scores_list: Sequence[Any]) -> float:
    """Exact per-point AUROC over all points of all clouds.

    ``labels_list[i]`` (N_i bool or 0/1) and ``scores_list[i]`` (N_i floats, NaN ranks lowest) belong
    to cloud ``i``.  A single 1-D array is taken as one cloud.
    """
    if isinstance(labels_list, np.ndarray) and labels_list.ndim == 1:
        labels_list = [labels_list]
    if isinstance(scores_list, np.ndarray) and scores_list.ndim == 1:
        scores_list = [scores_list]
    if len(labels_list) != len(scores_list):
        raise ValueError(f"got {len(labels_list)} label arrays but {len(scores_list)} score arrays")
    masks, maps = [], []
    for i, (lab, sc) in enumerate(zip(labels_list, scores_list)):
        y = _as_labels(lab, f"point labels {i}")
        s = np.asarray(sc)
        if s.ndim != 1:
            raise ValueError(f"point scores {i} must be a 1-D array, got shape {s.shape}")
        if s.size != y.size:
            raise ValueError(f"cloud {i}: {s.size} point scores but {y.size} point labels")
        masks.append(y[None, :])
        maps.append(s[None, :])
    return _PixelSet(masks, maps, kind="point scores").auroc("point AUROC")


def pro_curve(masks: Sequence[Any], maps: Sequence[Any],
              valid: Optional[Sequence[Any]] = None) -> tuple[np.ndarray, np.ndarray]:
    """The exact per-region-overlap curve, as the official MVTec 3D-AD ``compute_pro``.

    Returns ``(fprs, pros)`` (float64, FPR non-decreasing), one point per distinct score
    ``t`` (descending) for the rule ``score >= t``, preceded by ``(0, 0)`` and followed by
    ``(1, 1)``.  FPR is over the normal pixels of all images; PRO is the mean, over all 8-connected
    ground-truth regions of all images, of the fraction of the region's pixels at or above ``t``.
    The curve has one point per distinct score, so it can hold as many points as there are pixels;
    use :func:`aupro` for the area (it never builds the curve).
    """
    return _PixelSet(masks, maps, valid, regions=True).curve()


def aupro(masks: Sequence[Any], maps: Sequence[Any], limit: float = 0.3,
          valid: Optional[Sequence[Any]] = None) -> float:
    """Normalized area under the PRO curve up to FPR = ``limit`` (official MVTec 3D-AD AU-PRO).

    The exact curve (every distinct threshold) is integrated with the trapezoid rule, the last
    segment linearly interpolated at ``limit``, and the area divided by ``limit`` (so a perfect map
    scores 1).  With ``valid``, excluded pixels count neither as normal pixels nor in the regions
    (regions are found on the full mask, then restricted to valid pixels).
    """
    return _PixelSet(masks, maps, valid, regions=True).aupro(limit)


def aupro_30(masks: Sequence[Any], maps: Sequence[Any], valid: Optional[Sequence[Any]] = None) -> float:
    """AU-PRO integrated up to FPR = 0.3 (the MVTec 3D-AD default)."""
    return aupro(masks, maps, 0.3, valid)


def aupro_1(masks: Sequence[Any], maps: Sequence[Any], valid: Optional[Sequence[Any]] = None) -> float:
    """AU-PRO integrated up to FPR = 0.01."""
    return aupro(masks, maps, 0.01, valid)


# ------------------------------------------------------------------------------ accumulator
def _nan_area_resize(m: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """INTER_AREA downsampling that averages only finite pixels (all-NaN areas stay NaN)."""
    finite = np.isfinite(m)
    if finite.all():
        return cv2.resize(m, size_wh, interpolation=cv2.INTER_AREA)
    num = cv2.resize(np.where(finite, m, 0).astype(np.float32), size_wh, interpolation=cv2.INTER_AREA)
    den = cv2.resize(finite.astype(np.float32), size_wh, interpolation=cv2.INTER_AREA)
    out = np.full(num.shape, np.nan, np.float32)
    ok = den > 1e-6
    out[ok] = num[ok] / den[ok]
    return out


class EvalAccumulator:
    """Collects per-sample results and computes all metrics at once.

    Use :meth:`add` (plain arrays) or :meth:`add_result` (a :class:`~core.sample.Sample` and its
    :class:`~core.detectors.base.DetectorResult`) per test sample, then :meth:`compute`.

    Memory: maps are stored as float32 and masks as bool.  A map whose long side exceeds
    ``max_side`` is downsampled to that long side first, the map with area averaging
    (``cv2.INTER_AREA``, ignoring NaN pixels) and the mask and ``valid`` with nearest neighbour, so
    an MVTec 3D-AD class (about 250 maps of 800 x 800) needs about 330 MB instead of 800 MB.  Maps
    up to ``max_side`` are kept as given, so their pixel metrics are exact; ``max_side=None`` keeps
    every map at full resolution.  Per-point labels and scores are kept in full (5 bytes a point).

    Pixel metrics use the samples that have both a mask and a map; point metrics those with both
    point labels and point scores.  A metric that cannot be computed (no such sample, only good or
    only anomalous samples...) is NaN; :meth:`compute` then issues one
    :class:`UndefinedMetricWarning` naming those metrics.
    """

    def __init__(self, max_side: Optional[int] = 512):
        if max_side is not None and int(max_side) < 1:
            raise ValueError(f"max_side must be a positive number of pixels or None, got {max_side}")
        self.max_side = None if max_side is None else int(max_side)
        self.reset()

    def reset(self) -> None:
        """Forget every sample."""
        self._labels: list[bool] = []
        self._scores: list[float] = []
        self._masks: list[np.ndarray] = []
        self._maps: list[np.ndarray] = []
        self._valid: list[Optional[np.ndarray]] = []
        self._point_labels: list[np.ndarray] = []
        self._point_scores: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self._labels)

    # -------------------------------------------------------------- collecting
    def add(self, label: Any, score: float, mask: Optional[np.ndarray] = None,
            pixel_map: Optional[np.ndarray] = None, point_labels: Optional[np.ndarray] = None,
            point_scores: Optional[np.ndarray] = None, valid: Optional[np.ndarray] = None) -> None:
        """Add one sample.

        Parameters
        ----------
        label: True / 1 when the sample is anomalous.
        score: its image-level anomaly score (NaN ranks lowest).
        mask, pixel_map: H x W ground truth (non-zero = anomalous) and the map on the same grid
            (ValueError when the shapes differ).  Either may be None.
        point_labels, point_scores: N per-point ground truth and scores.  Either may be None.
        valid: optional H x W bool mask of the pixels to evaluate (e.g. pixels with a 3D point).
        """
        idx = len(self._labels)
        y = _as_labels([label], f"label of sample {idx}")[0]
        try:
            s = float(score)
        except (TypeError, ValueError):
            raise ValueError(f"score of sample {idx} must be a number, got {score!r}") from None

        item_mask = item_map = item_valid = None
        if mask is not None and pixel_map is not None:
            gt = np.asarray(mask)
            smap = _float_map(pixel_map, f"map of sample {idx}")
            if gt.ndim != 2 or smap.shape != gt.shape:
                raise ValueError(f"map of sample {idx} has shape {smap.shape} but its mask has shape {gt.shape}")
            gt = gt != 0 if gt.dtype != bool else gt
            if valid is not None:
                item_valid = np.asarray(valid).astype(bool)
                if item_valid.shape != gt.shape:
                    raise ValueError(f"valid mask of sample {idx} has shape {item_valid.shape} "
                                     f"but its mask has shape {gt.shape}")
            item_mask, item_map, item_valid = self._shrink(gt, smap, item_valid)

        item_pl = item_ps = None
        if point_labels is not None and point_scores is not None:
            item_pl = _as_labels(point_labels, f"point labels of sample {idx}")
            item_ps = np.array(point_scores, dtype=np.float32).reshape(-1)
            if item_ps.size != item_pl.size:
                raise ValueError(f"sample {idx}: {item_ps.size} point scores but {item_pl.size} point labels")

        # all checks passed: store
        self._labels.append(bool(y))
        self._scores.append(s)
        if item_mask is not None:
            self._masks.append(item_mask)
            self._maps.append(item_map)
            self._valid.append(item_valid)
        if item_pl is not None:
            self._point_labels.append(item_pl)
            self._point_scores.append(item_ps)

    def add_result(self, sample: "Sample", result: "DetectorResult", exclude_invalid: bool = False) -> None:
        """Add a sample with a detector's result for it.

        The label is ``sample.is_anomalous``; the mask ``sample.pixel_gt()`` (all-False for a good
        sample without a mask file); the map ``result.pixel_map``, resized bilinearly to the mask's
        grid when the detector worked at another resolution; per-point ground truth
        ``sample.point_gt()`` with ``result.point_scores``.  With ``exclude_invalid``, pixels
        without a 3D point (``result.components.valid``) are left out of the pixel metrics;
        otherwise NaN pixels of the map rank lowest, as everywhere in this module.
        """
        from .sample import resize_map

        mask = sample.pixel_gt()
        amap = result.pixel_map
        valid = None
        if mask is not None and amap is not None:
            if np.shape(amap) != mask.shape:
                amap = resize_map(np.asarray(amap, np.float32), mask.shape)
            if exclude_invalid and result.components.valid is not None:
                valid = np.asarray(result.components.valid).astype(np.uint8)
                if valid.shape != mask.shape:
                    valid = cv2.resize(valid, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
        point_labels = sample.point_gt() if result.point_scores is not None else None
        self.add(sample.is_anomalous, result.image_score, mask, amap, point_labels, result.point_scores,
                 valid=valid)

    def _shrink(self, gt: np.ndarray, smap: np.ndarray, valid: Optional[np.ndarray]):
        h, w = gt.shape
        if self.max_side is None or max(h, w) <= self.max_side:
            return gt.copy(), smap.astype(np.float32, copy=True), None if valid is None else valid.copy()
        scale = self.max_side / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2 wants (w, h)
        small_map = _nan_area_resize(smap, size)
        small_gt = cv2.resize(gt.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        small_valid = None
        if valid is not None:
            small_valid = cv2.resize(valid.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
        return small_gt, small_map, small_valid

    # -------------------------------------------------------------- results
    def compute(self) -> dict[str, float]:
        """All metrics as a dict (keys :data:`METRIC_KEYS`); NaN where not computable.

        ``f1_max`` / ``f1_threshold`` are image-level (the threshold is on the image scores).
        """
        labels = np.array(self._labels, dtype=bool)
        scores = np.array(self._scores, dtype=np.float64)
        out: dict[str, float] = {}
        undefined: list[str] = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedMetricWarning)
            out["image_auroc"] = image_auroc(labels, scores)
            out["image_ap"] = image_ap(labels, scores)
            valid = None if all(v is None for v in self._valid) else self._valid
            if self._masks:
                px = _PixelSet(self._masks, self._maps, valid, regions=True)
                out["pixel_auroc"] = px.auroc()
                out["aupro_30"] = px.aupro(0.3)
                out["aupro_1"] = px.aupro(0.01)
                del px
            else:
                out["pixel_auroc"] = out["aupro_30"] = out["aupro_1"] = math.nan
                undefined.append("pixel metrics (no sample with both a mask and a map)")
            if self._point_labels:
                out["point_auroc"] = point_auroc(self._point_labels, self._point_scores)
            else:
                out["point_auroc"] = math.nan
                undefined.append("point AUROC (no sample with both point labels and point scores)")
            out["f1_max"], out["f1_threshold"] = f1_max(labels, scores)
        for w in caught:
            if issubclass(w.category, UndefinedMetricWarning):
                msg = str(w.message).replace("; returning NaN", "")
                if msg not in undefined:
                    undefined.append(msg)
            else:  # pragma: no cover - pass on anything unexpected
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        out["n_images"] = len(labels)
        out["n_anomalous"] = int(labels.sum())
        out["n_pixel_images"] = len(self._masks)
        out["n_clouds"] = len(self._point_labels)
        self.undefined = list(undefined)   # plain words, for front-ends that show "n/a" + a note
        if undefined:
            warnings.warn("some metrics are NaN: " + "; ".join(undefined), UndefinedMetricWarning, stacklevel=2)
        return {k: out[k] for k in METRIC_KEYS}
