"""Memory banks: one modality's scaled coreset with its nominal (leave-one-out) score
distribution, their construction (:func:`build_bank`), the positional-prior search and the small
score helpers the detector uses (point smoothing, depth noise, neighbourhood completeness)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
from scipy.spatial import cKDTree

from ...sample import Sample
from .coreset import GroupScaler, Whitener, greedy_coreset, nn_distance

_NOMINAL_Q = (0.5, 0.99)       # nominal_normalize quantiles: median -> 0, 99th percentile -> 1
_SMOOTH_K = 16                 # neighbours of the per-point score smoothing on the working cloud
_MAX_NOMINAL = 200_000         # nominal scores kept per modality
_CORESET_CANDIDATES = 25       # greedy coreset candidates per kept entry, at most (random subset)
_MIN_STRATUM = 200             # nominal scores needed for a stratum to get its own normalization
_COMPLETENESS_EDGES = (0.6, 0.85)  # strata of neighbourhood completeness (boundary / partial / open)


# ============================================================================== fitted state
@dataclass
class Bank:
    """One modality's memory bank and its nominal score distribution.

    With ``strata`` (an integer per nominal score), the normalization is *conditional*: each
    stratum (e.g. geometry points in the open vs. near a data boundary, whose descriptors are
    less reliable) gets its own median / 99th percentile, when it holds enough nominal scores.
    """
    scaler: Any                     # GroupScaler or Whitener
    features: np.ndarray            # B x D scaled coreset
    nominal: np.ndarray             # leave-one-out scores of the support descriptors (raw distance)
    strata: Optional[np.ndarray] = None
    n_full: int = 0                 # descriptors before the coreset
    extra: dict = field(default_factory=dict)
    lo: float = 0.0
    hi: float = 1.0
    stratum_lo_hi: dict = field(default_factory=dict)
    image_scale: float = 1.0        # typical max of a good sample's smoothed map (>= 1), see fit()
    positions: Optional[np.ndarray] = None   # B x 2 patch-grid positions (RGB object mode)
    radius: Optional[float] = None           # positional prior radius (patch-grid units)

    def distances(self, queries: np.ndarray, query_pos: Optional[np.ndarray] = None) -> np.ndarray:
        """Raw nearest-bank-entry distances of (already scaled) descriptors, under the positional
        prior when the bank has one."""
        if self.radius is None or self.positions is None or query_pos is None:
            return nn_distance(queries, self.features)
        return positional_nn(queries, query_pos, self.features, self.positions, self.radius)

    @staticmethod
    def _lo_hi(v: np.ndarray) -> tuple[float, float]:
        v = v[np.isfinite(v)]
        if not v.size:
            return 0.0, 1.0
        lo, hi = (float(q) for q in np.quantile(v, _NOMINAL_Q))
        return lo, max(hi, lo + 1e-12)

    def __post_init__(self):
        self.lo, self.hi = self._lo_hi(self.nominal)
        if self.strata is not None:
            for k in np.unique(self.strata):
                v = self.nominal[self.strata == k]
                if np.isfinite(v).sum() >= _MIN_STRATUM:
                    self.stratum_lo_hi[int(k)] = self._lo_hi(v)

    def normalize(self, d: np.ndarray, strata: Optional[np.ndarray] = None) -> np.ndarray:
        d = np.asarray(d, np.float64)
        lo = np.full(d.shape, self.lo)
        hi = np.full(d.shape, self.hi)
        if strata is not None:
            for k, (l, h) in self.stratum_lo_hi.items():
                m = strata == k
                lo[m], hi[m] = l, h
        return ((d - lo) / ((hi - lo) * self.image_scale)).astype(np.float32)


@dataclass
class WorkingCloud:
    """A sample's geometry prepared for description."""
    work: np.ndarray                # M x 3 working points: object voxels first, then plane context
    n_object: int                   # the first n_object rows of ``work`` are object voxels
    owner: np.ndarray               # for each object point, its object voxel (row of ``work``)
    object_index: np.ndarray        # indices (into sample.valid_points()) of the object points
    n_valid: int


def positional_nn(queries: np.ndarray, query_pos: np.ndarray, bank: np.ndarray, bank_pos: np.ndarray,
                  radius: float, block: float = 8.0) -> np.ndarray:
    """Nearest-bank-entry distance under a positional prior: queries are processed in square
    blocks (at most ``block`` and ``radius`` grid units), each against the bank entries within
    ``radius`` plus half the block's diagonal of the block's centre (so every entry within
    ``radius`` of a query is a candidate, and none beyond ``radius`` + 0.7 block).  A block with
    no bank entry near falls back to the whole bank."""
    qpos = np.asarray(query_pos, np.float64)
    bpos = np.asarray(bank_pos, np.float64)
    out = np.empty(len(queries), np.float32)
    block = float(min(block, max(radius, 1.0)))
    reach = radius + block / math.sqrt(2.0)   # every entry within ``radius`` of any block query
    cell = np.floor(qpos / block).astype(np.int64)
    keys = cell[:, 0] * 1_000_003 + cell[:, 1]
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    for rows in np.split(order, bounds):
        centre = (cell[rows[0]] + 0.5) * block
        near = ((bpos - centre) ** 2).sum(1) <= reach ** 2
        out[rows] = nn_distance(queries[rows], bank[near] if near.any() else bank)
    return out


def smooth_points(points: np.ndarray, values: np.ndarray, k: int = _SMOOTH_K) -> np.ndarray:
    """Mean of ``values`` over each point's k nearest neighbours (itself included)."""
    k = int(min(k, len(points)))
    if k <= 1:
        return np.asarray(values, np.float32)
    _, idx = cKDTree(points).query(points, k=k)
    return np.asarray(values, np.float64)[idx].mean(1).astype(np.float32)


def depth_noise(sample: Sample, obj_idx: np.ndarray) -> float:
    """Robust depth-noise estimate of an organized cloud on its object pixels (NaN if unknown).

    The second difference of z along the rows, z[i-1] - 2 z[i] + z[i+1], is ~0 on a smooth surface
    and has a standard deviation of sqrt(6) sigma for white depth noise; its median absolute value
    gives sigma robustly (edges and curvature are the outliers).
    """
    if not sample.organized:
        return float("nan")
    h, w = sample.points.shape[:2]
    obj = np.zeros(h * w, bool)
    obj[sample.valid_index()[obj_idx]] = True
    obj = obj.reshape(h, w)
    z = sample.points[..., 2]
    ok = obj[:, :-2] & obj[:, 1:-1] & obj[:, 2:]
    if ok.sum() < 50:
        return float("nan")
    d2 = (z[:, :-2] - 2 * z[:, 1:-1] + z[:, 2:])[ok]
    return float(1.4826 * np.median(np.abs(d2 - np.median(d2))) / math.sqrt(6.0))


def neighbour_counts(points: np.ndarray, radius: float) -> np.ndarray:
    """Number of points within ``radius`` of each point (itself included)."""
    return cKDTree(points).query_ball_point(points, radius, return_length=True).astype(np.float64)


def completeness_strata(counts: np.ndarray, n_ref: float) -> np.ndarray:
    """Stratum of each point from its neighbourhood completeness ``counts / n_ref``:
    0 = boundary (< 0.6), 1 = partial (< 0.85), 2 = open surface."""
    return np.digitize(counts / max(n_ref, 1.0), _COMPLETENESS_EDGES).astype(np.int8)


def build_bank(descs: list[np.ndarray], groups: np.ndarray, pos: list[np.ndarray],
               sid: list[np.ndarray], exclusion: float, smooth: bool,
               strata: Optional[list[np.ndarray]] = None,
               extra: Optional[tuple[list[np.ndarray], ...]] = None, whiten: bool = False,
               radius: Optional[float] = None, min_std: Optional[np.ndarray] = None, *,
               coreset_ratio: float, coreset_max: int, seed: int, check: Callable[[], None]) -> Bank:
    """Scale, coreset, and leave-one-out nominal scores of one modality.

    ``extra`` = (descriptors, sample ids, positions) of augmented copies: they join the bank
    (and are left out with their sample in leave-one-out) but are not scored as nominal queries.
    """
    raw = np.concatenate(descs)
    if whiten:
        fit_rows = np.concatenate([raw, *extra[0]]) if extra is not None else raw
        scaler = Whitener.fit(fit_rows, groups, seed=seed, min_std=min_std)
    else:
        scaler = GroupScaler.fit(raw, groups, min_std)
    x = scaler(raw)
    pos_all = np.concatenate(pos)
    sid_all = np.concatenate(sid)
    if extra is not None:
        x = np.concatenate([x, scaler(np.concatenate(extra[0]))])
        sid_all = np.concatenate([sid_all, *extra[1]])
        pos_all = np.concatenate([pos_all, *extra[2]])
    n_keep = int(min(max(1, math.ceil(coreset_ratio * len(x))), coreset_max))
    cand = None
    if len(x) > _CORESET_CANDIDATES * n_keep:
        # many shots / augmented copies: the greedy search runs on a seeded random subset
        cand = np.sort(np.random.default_rng(seed).choice(len(x), _CORESET_CANDIDATES * n_keep,
                                                                    replace=False))
    sel = greedy_coreset(x if cand is None else x[cand], n_keep, seed=seed,
                         check=check)
    if cand is not None:
        sel = cand[sel]
    bank, bank_sid, bank_pos = x[sel], sid_all[sel], pos_all[sel]
    n_samples = len(descs)
    nominal = []
    start = 0
    for i, d in enumerate(descs):
        check()
        xi = x[start:start + len(d)]
        pi = pos_all[start:start + len(d)]
        start += len(d)
        same = bank_sid == i
        if n_samples > 1 and radius is None:
            # leave-one-out: the bank entries of the other samples only
            dist = nn_distance(xi, bank[~same])
        elif n_samples > 1:
            dist = positional_nn(xi, pi, bank[~same], bank_pos[~same], radius)
        else:
            # leave-one-out (several shots) or, one shot, the same sample's entries minus those
            # overlapping the query's support; object mode: only entries near the position

            def excl(rows: slice, pi=pi, same=same) -> np.ndarray:
                dd = np.linalg.norm(pi[rows, None, :] - bank_pos[None, :, :], axis=2)
                out = same[None, :] if n_samples > 1 else (dd < exclusion) & same[None, :]
                if radius is not None:
                    out = out | (dd > radius)
                return out

            dist = nn_distance(xi, bank, chunk=256, exclude=excl)
        ok = np.isfinite(dist)
        if not ok.all():  # one shot: a query whose every bank entry was excluded
            dist = np.where(ok, dist, dist[ok].max() if ok.any() else 0.0)
        if smooth and len(dist):
            dist = smooth_points(pi, dist)
        nominal.append(dist)
    loo = list(nominal)
    nominal = np.concatenate(nominal) if nominal else np.zeros(0, np.float32)
    st = np.concatenate(strata) if strata is not None else None
    if len(nominal) > _MAX_NOMINAL:
        keep = np.random.default_rng(seed).choice(len(nominal), _MAX_NOMINAL, replace=False)
        nominal = nominal[keep]
        st = st[keep] if st is not None else None
    return Bank(scaler=scaler, features=bank, nominal=nominal.astype(np.float32), strata=st, n_full=len(x),
                 extra={"loo": loo}, positions=bank_pos if radius is not None else None, radius=radius)

