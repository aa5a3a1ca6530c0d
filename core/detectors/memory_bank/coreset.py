"""Memory bank: feature scaling, greedy k-center coreset and exact nearest-neighbour search."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import numpy as np

# torch is imported inside the functions that use it: importing the detector (e.g. to list its
# parameters in the GUI process) must not load torch (~700 MB resident).


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Temporarily limit torch's intra-op threads.

    The greedy coreset makes thousands of tiny (sub-millisecond) tensor operations; on a shared
    2-core machine, the synchronisation of a multi-threaded pool costs far more than it saves
    (measured here under load: 17 ms per iteration with 2 threads, 0.4 ms with 1).
    """
    import torch
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def greedy_coreset(features: np.ndarray, n: int, seed: int = 0, proj_dim: int = 128,
                   check: Optional[Callable[[], None]] = None) -> np.ndarray:
    """Indices of ``n`` rows chosen by greedy k-center (farthest-point) selection, as PatchCore.

    Features wider than ``proj_dim`` are first mapped by a seeded Gaussian random projection
    (Johnson-Lindenstrauss) to speed the distance updates up.  The first centre is a seeded
    random row.  Deterministic for a given ``seed``.  ``check`` is called every few hundred
    iterations (e.g. to raise :class:`~core.errors.Cancelled`).
    """
    x = np.asarray(features, np.float32)
    N = len(x)
    n = int(min(max(n, 1), N))
    if n >= N:
        return np.arange(N)
    import torch
    g = torch.Generator().manual_seed(int(seed))
    t = torch.from_numpy(np.ascontiguousarray(x))
    with _torch_threads(1):
        if t.shape[1] > proj_dim:
            proj = torch.randn(t.shape[1], proj_dim, generator=g) / np.sqrt(proj_dim)
            t = t @ proj
        sq = (t * t).sum(1)
        first = int(torch.randint(N, (1,), generator=g).item())
        sel = np.empty(n, np.int64)
        sel[0] = first
        mind = torch.mv(t, t[first]).mul_(-2).add_(sq).add_(sq[first])
        for i in range(1, n):
            j = int(torch.argmax(mind).item())
            sel[i] = j
            d = torch.mv(t, t[j]).mul_(-2).add_(sq).add_(sq[j])
            torch.minimum(mind, d, out=mind)
            if check is not None and i % 256 == 0:
                check()
    return sel


def nn_distance(queries: np.ndarray, bank: np.ndarray, chunk: int = 1024,
                exclude: Optional[Callable[[slice], Optional[np.ndarray]]] = None) -> np.ndarray:
    """Exact Euclidean distance of each query row to its nearest bank row.

    Computed in chunks of queries as ``min_b(|b|^2 - 2 q.b) + |q|^2`` with one fused ``addmm`` and
    one ``amin`` per chunk (cache-sized chunks: ~15k x 4k x 37 in ~0.1 s on one core).
    ``exclude(rows)`` may return a (len(rows) x len(bank)) bool array of pairs to ignore; a query
    with every pair excluded gets ``inf``.
    """
    import torch
    q = torch.from_numpy(np.ascontiguousarray(queries, np.float32))
    b = torch.from_numpy(np.ascontiguousarray(bank, np.float32))
    out = np.empty(len(q), np.float32)
    if len(b) == 0:
        out[:] = np.inf
        return out
    bsq = (b * b).sum(1).unsqueeze(0)
    bt = b.T.contiguous()
    for s in range(0, len(q), chunk):
        qc = q[s:s + chunk]
        d2 = torch.addmm(bsq, qc, bt, alpha=-2)
        if exclude is not None:
            m = exclude(slice(s, s + len(qc)))
            if m is not None:
                d2[torch.from_numpy(np.asarray(m, bool))] = float("inf")
        best = d2.amin(1) + (qc * qc).sum(1)
        out[s:s + len(qc)] = torch.sqrt(torch.clamp(best, min=0)).numpy()
    return out


@dataclass
class GroupScaler:
    """Per-channel standardization, then each group scaled to unit total variance.

    After it, every group (e.g. colour vs texture, FPFH vs local shape) contributes the same
    expected squared distance between two random bank rows, whatever its number of channels.
    """
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, groups: np.ndarray, min_std: Optional[np.ndarray] = None) -> "GroupScaler":
        """``min_std``: per-channel floors of the standard deviation (in the channels' own
        units), so that a channel that barely varies on the support (the chroma of a grey image:
        rounding noise) is not blown up to unit variance."""
        x = np.asarray(x, np.float64)
        mean = x.mean(0)
        std = x.std(0)
        if min_std is not None:
            std = np.where(std > 1e-12 * max(1.0, float(np.abs(mean).max())), np.maximum(std, min_std), std)
        std = np.where(std > 1e-12 * max(1.0, float(np.abs(mean).max())), std, np.inf)  # constant: drop
        scale = 1.0 / std
        for g in np.unique(groups):
            m = groups == g
            n_used = max(int(np.isfinite(std[m]).sum()), 1)
            scale[m] /= np.sqrt(n_used)
        return cls(mean.astype(np.float32), scale.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, np.float32) - self.mean) * self.scale).astype(np.float32)


@dataclass
class Whitener:
    """A :class:`GroupScaler` followed by PCA whitening fitted on the support descriptors.

    ``x -> ((x - mean) * scale - centre) @ proj``; ``proj`` (D x k) holds the principal axes divided
    by ``sqrt(eigenvalue + shrink * mean eigenvalue)`` (shrinkage keeps near-constant directions,
    mostly noise, from being blown up).  Euclidean distance after it is a regularised Mahalanobis
    distance under the good parts' patch covariance: a deviation along a direction in which good
    patches barely vary counts more than one along a direction of normal variation.
    """
    mean: np.ndarray
    scale: np.ndarray
    centre: np.ndarray
    proj: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, groups: np.ndarray, shrink: float = 0.1, max_rows: int = 50_000,
            seed: int = 0, min_std: Optional[np.ndarray] = None) -> "Whitener":
        gs = GroupScaler.fit(x, groups, min_std)
        z = gs(x)
        keep = np.isfinite(gs.scale) & (gs.scale > 0)
        z = z[:, keep] if keep.any() else z
        if len(z) > max_rows:
            z = z[np.random.default_rng(seed).choice(len(z), max_rows, replace=False)]
        centre_k = z.mean(0)
        cov = np.cov((z - centre_k).T.astype(np.float64)) if len(z) > 1 else np.eye(z.shape[1])
        cov = np.atleast_2d(cov)
        w, v = np.linalg.eigh(cov)
        w = np.clip(w, 0.0, None)
        reg = w + shrink * max(float(w.mean()), 1e-12)
        proj_k = v / np.sqrt(reg)[None, :]
        proj = np.zeros((len(gs.scale), proj_k.shape[1]), np.float64)
        proj[keep if keep.any() else slice(None)] = proj_k
        centre = np.zeros(len(gs.scale), np.float64)
        centre[keep if keep.any() else slice(None)] = centre_k
        scale = np.where(keep, gs.scale, 0.0)
        return cls(gs.mean, scale.astype(np.float32), centre.astype(np.float32), proj.astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - self.mean) * self.scale - self.centre
        return (z @ self.proj).astype(np.float32)
