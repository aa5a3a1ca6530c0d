"""Point-cloud preprocessing shared by all detectors.

Every physical length used here is derived from the cloud itself (its point spacing and the
noise of its background plane), never from a constant tied to one dataset's unit: the same code
works on clouds in metres (MVTec 3D-AD) and in millimetres (the demo data).

Functions
---------
* :func:`point_spacing`            median nearest-neighbour distance (the cloud's own length unit)
* :func:`fit_plane_robust`         seeded least-median-of-squares RANSAC plane + noise estimate
* :func:`remove_background_plane`  the MVTec 3D-AD background removal (plane fitted on the border)
* :func:`largest_cluster_mask`     DBSCAN largest connected cluster (eps from the spacing)
* :func:`resize_organized`         missing-aware resize of an organized H x W x 3 cloud
* :func:`voxel_downsample`         voxel-grid centroid downsampling with the voxel of each point
* :func:`estimate_normals`         open3d normals, consistently oriented towards the viewer
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["point_spacing", "fit_plane_robust", "remove_background_plane", "largest_cluster_mask",
           "resize_organized", "voxel_downsample", "estimate_normals", "finite_points"]


# ---------------------------------------------------------------------------------- helpers
def finite_points(points: np.ndarray) -> np.ndarray:
    """The rows of an N x 3 (or H x W x 3) array whose three coordinates are finite, as N x 3."""
    p = np.asarray(points)
    if p.ndim == 3:
        p = p.reshape(-1, 3)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"expected N x 3 or H x W x 3 points, got shape {np.shape(points)}")
    return p[np.isfinite(p).all(axis=1)]


def _subsample(n: int, m: int, seed: int = 0) -> np.ndarray:
    """Indices of a seeded random subset of size min(n, m) (sorted, so order is stable)."""
    if n <= m:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))


# ---------------------------------------------------------------------------------- spacing
def point_spacing(points: np.ndarray, k: int = 1, sample: int = 20000, seed: int = 0) -> float:
    """Median distance from a point to its ``k``-th nearest neighbour.

    The tree holds every finite point (so the distances are those of the full-density cloud);
    only the queries are a seeded subsample of ``sample`` points.  Duplicate points (distance 0)
    are ignored so that a cloud with repeated points still gets its true spacing.

    Raises ValueError when fewer than ``k + 1`` distinct finite points exist.
    """
    p = finite_points(points).astype(np.float64, copy=False)
    if len(p) < k + 1:
        raise ValueError(f"point_spacing needs at least {k + 1} finite points, got {len(p)}")
    tree = cKDTree(p, balanced_tree=False, compact_nodes=False)
    q = p[_subsample(len(p), sample, seed)]
    # ask for a few extra neighbours to step over exact duplicates
    kk = min(len(p), k + 4)
    d, _ = tree.query(q, k=kk)
    d = np.atleast_2d(d)
    # drop exact duplicates (d == 0, including the query itself), then take the k-th remaining
    d = np.where(d > 0, d, np.inf)
    d.sort(axis=1)
    kth = d[:, k - 1]
    kth = kth[np.isfinite(kth)]
    if kth.size == 0:
        raise ValueError("point_spacing: all points coincide")
    return float(np.median(kth))


# ---------------------------------------------------------------------------------- plane fit
def _plane_from_points(p: np.ndarray) -> np.ndarray:
    """Least-squares plane (a, b, c, d) with unit normal through N >= 3 points (PCA)."""
    c = p.mean(axis=0)
    _, _, vt = np.linalg.svd(p - c, full_matrices=False)
    n = vt[-1]
    return np.array([n[0], n[1], n[2], -float(n @ c)])


def fit_plane_robust(points: np.ndarray, iterations: int = 1000, seed: int = 0,
                     max_points: int = 4000) -> tuple[Optional[np.ndarray], float]:
    """Fit a plane with least-median-of-squares RANSAC; return ``(plane, noise_sigma)``.

    LMedS needs no distance threshold (unlike open3d's ``segment_plane``): each of ``iterations``
    3-point hypotheses is ranked by the median of its squared residuals over (a seeded subsample
    of) the points, which tolerates up to 50 % outliers.  The robust noise scale
    ``sigma = 1.4826 * (1 + 5 / (n - 3)) * sqrt(median r^2)`` (Rousseeuw & Leroy) then selects the
    inliers (|r| < 2.5 sigma) for a least-squares refinement, and sigma is re-estimated on them.

    It is used instead of open3d's ``segment_plane`` because the latter is multi-threaded and not
    reproducible (different planes from run to run even with ``o3d.utility.random.seed``), and
    because its fixed threshold would have to be tied to the cloud's unit.

    ``plane`` is (a, b, c, d) with a unit normal (a, b, c), or None when fewer than 3
    non-collinear points exist.  The normal's sign is chosen so that c >= 0.
    """
    p = finite_points(points).astype(np.float64, copy=False)
    if len(p) < 3:
        return None, float("nan")
    rng = np.random.default_rng(seed)
    sub = p[_subsample(len(p), max_points, seed)]
    # hypotheses: all triplets at once (vectorised)
    idx = rng.integers(0, len(sub), size=(int(iterations), 3))
    a, b, c = sub[idx[:, 0]], sub[idx[:, 1]], sub[idx[:, 2]]
    n = np.cross(b - a, c - a)
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-12 * max(1.0, float(np.abs(sub).max()) ** 2)
    if not ok.any():
        return None, float("nan")
    n = n[ok] / norm[ok, None]
    d = -np.einsum("ij,ij->i", n, a[ok])
    # median squared residual of every hypothesis, in chunks to bound memory
    best_med, best = np.inf, None
    for s in range(0, len(n), 128):
        r = sub @ n[s:s + 128].T + d[s:s + 128]
        med = np.median(r * r, axis=0)
        j = int(np.argmin(med))
        if med[j] < best_med:
            best_med, best = float(med[j]), np.r_[n[s + j], d[s + j]]
    if best is None:
        return None, float("nan")
    ns = len(sub)
    sigma = 1.4826 * (1.0 + 5.0 / max(ns - 3, 1)) * np.sqrt(best_med)
    # refine on the inliers of the full set, twice (plane, then sigma from its inliers)
    plane = best
    for _ in range(2):
        r = p @ plane[:3] + plane[3]
        inl = np.abs(r) <= max(2.5 * sigma, 1e-12)
        if inl.sum() < 3:
            break
        plane = _plane_from_points(p[inl])
        r_in = (p[inl] @ plane[:3] + plane[3])
        sigma = float(np.sqrt(np.mean(r_in ** 2))) / 0.9546  # std of N(0, 1) truncated at +-2.5
    if plane[2] < 0:
        plane = -plane
    return plane.astype(np.float64), float(sigma)


def _border_mask(shape: tuple[int, int], border: int) -> np.ndarray:
    h, w = shape
    b = int(max(1, min(border, h // 2, w // 2)))
    m = np.zeros((h, w), bool)
    m[:b, :] = m[-b:, :] = True
    m[:, :b] = m[:, -b:] = True
    return m


def remove_background_plane(organized_xyz: np.ndarray, border: int = 10, distance: Optional[float] = None,
                            iterations: int = 1000, keep_largest_cluster: bool = False,
                            noise_factor: float = 4.0, spacing_factor: float = 1.5, seed: int = 0,
                            min_object_fraction: float = 0.002
                            ) -> tuple[np.ndarray, Optional[np.ndarray], np.ndarray]:
    """Remove the background plane of an organized cloud, as the MVTec 3D-AD literature does.

    The plane is fitted (robust RANSAC, :func:`fit_plane_robust`) on the valid points of the
    ``border``-pixel strips of the grid; every point closer than ``distance`` to it becomes NaN.
    When ``distance`` is None it is derived from the cloud:
    ``max(noise_factor * sigma, spacing_factor * spacing)`` where ``sigma`` is the robust noise of
    the border points around the plane and ``spacing`` the median point spacing - so it scales with
    the cloud's unit and its sensor noise.  With ``keep_largest_cluster`` only the largest
    DBSCAN cluster of what remains is kept (:func:`largest_cluster_mask`).

    Returns ``(xyz, plane, object_mask)``: ``xyz`` an H x W x 3 float32 copy with the background
    set to NaN, ``plane`` (a, b, c, d) or **None when no plane was found** - too few valid border
    points, or removing it would leave almost nothing (less than ``min_object_fraction`` of the
    valid points): the input is then returned unchanged - and ``object_mask`` the H x W bool of the
    points kept.

    Raises ValueError when the cloud is not H x W x 3 or has no finite point.
    """
    xyz = np.asarray(organized_xyz)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"remove_background_plane needs an organized H x W x 3 cloud, got shape {xyz.shape}")
    xyz = xyz.astype(np.float32, copy=True)
    valid = np.isfinite(xyz).all(axis=2)
    if not valid.any():
        raise ValueError("remove_background_plane: the cloud has no valid (finite) point")
    border_pts = xyz[_border_mask(valid.shape, border) & valid]
    if len(border_pts) < 10:
        return xyz, None, valid
    plane, sigma = fit_plane_robust(border_pts, iterations=iterations, seed=seed)
    if plane is None:
        return xyz, None, valid
    if distance is None:
        spacing = point_spacing(xyz[valid], seed=seed)
        distance = max(noise_factor * (sigma if np.isfinite(sigma) else 0.0), spacing_factor * spacing)
    pts = xyz[valid].astype(np.float64)
    r = np.abs(pts @ plane[:3] + plane[3])
    keep = r >= float(distance)
    if keep.sum() < max(3, min_object_fraction * valid.sum()):
        return xyz, None, valid
    obj = np.zeros_like(valid)
    obj[valid] = keep
    if keep_largest_cluster:
        cl = largest_cluster_mask(xyz[obj])
        obj[obj] = cl
    xyz[~obj] = np.nan
    return xyz, plane, obj


def largest_cluster_mask(points: np.ndarray, eps: Optional[float] = None, min_points: int = 10,
                         max_points: int = 40000, eps_factor: float = 4.0) -> np.ndarray:
    """N bool: the points of the largest DBSCAN cluster (open3d ``cluster_dbscan``).

    ``eps`` defaults to ``eps_factor`` x the working spacing.  Clouds larger than ``max_points`` are
    clustered on a voxel-downsampled copy whose labels are propagated to every point by nearest
    neighbour, so the cost stays bounded on 800 x 800 scans.  All True when nothing clusters.
    """
    import open3d as o3d

    p = np.asarray(points, np.float64)
    n = len(p)
    if n == 0:
        return np.zeros(0, bool)
    spacing = point_spacing(p) if n > 1 else 1.0
    work, owner = p, None
    if n > max_points:
        voxel = spacing * np.sqrt(n / max_points)
        work, owner = voxel_downsample(p, voxel)
        spacing = max(spacing, voxel)
    eps = float(eps) if eps is not None else eps_factor * spacing
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(work))
    labels = np.asarray(pc.cluster_dbscan(eps=eps, min_points=int(min_points)))
    if labels.size == 0 or labels.max() < 0:
        return np.ones(n, bool)
    best = np.bincount(labels[labels >= 0]).argmax()
    keep = labels == best
    return keep[owner] if owner is not None else keep


# ---------------------------------------------------------------------------------- resize
def resize_organized(xyz: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Resize an organized H x W x 3 cloud to ``shape`` = (h, w) without inventing points.

    Each target pixel covers a cell of source pixels.  It takes the *valid* source point of its
    cell that is nearest to the cell centre (never an average, which would create points floating
    between surfaces at depth edges); it is missing (NaN) only when its whole cell is missing.
    When upsampling, cells are smaller than a source pixel and this is plain nearest-neighbour.
    """
    xyz = np.asarray(xyz)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"resize_organized needs an H x W x 3 cloud, got shape {xyz.shape}")
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"resize_organized: invalid target shape {tuple(shape)}")
    H, W = xyz.shape[:2]
    src = xyz.astype(np.float32, copy=False)
    if (H, W) == (h, w):
        return src.copy()
    valid = np.isfinite(src).all(axis=2)
    # cell bounds [y0, y1) x [x0, x1) of each target row / column in source pixels
    ys = np.arange(h + 1) * H / h
    xs = np.arange(w + 1) * W / w
    y0 = np.floor(ys[:-1]).astype(int)
    y1 = np.maximum(np.ceil(ys[1:]).astype(int), y0 + 1).clip(max=H)
    x0 = np.floor(xs[:-1]).astype(int)
    x1 = np.maximum(np.ceil(xs[1:]).astype(int), x0 + 1).clip(max=W)
    yc = np.clip(((ys[:-1] + ys[1:]) / 2).astype(int), 0, H - 1)  # centre pixel of each cell
    xc = np.clip(((xs[:-1] + xs[1:]) / 2).astype(int), 0, W - 1)
    out = np.full((h, w, 3), np.nan, np.float32)
    filled = np.zeros((h, w), bool)
    cy, cx = int((y1 - y0).max()), int((x1 - x0).max())
    # offsets from the centre pixel, nearest first
    offs = [(dy, dx) for dy in range(-cy, cy + 1) for dx in range(-cx, cx + 1)]
    offs.sort(key=lambda o: (o[0] ** 2 + o[1] ** 2, o))
    for dy, dx in offs:
        sy = yc + dy
        sx = xc + dx
        row_ok = (sy >= y0) & (sy < y1)
        col_ok = (sx >= x0) & (sx < x1)
        if not row_ok.any() or not col_ok.any():
            continue
        syc = np.clip(sy, 0, H - 1)
        sxc = np.clip(sx, 0, W - 1)
        cand = valid[np.ix_(syc, sxc)] & row_ok[:, None] & col_ok[None, :] & ~filled
        if cand.any():
            vals = src[np.ix_(syc, sxc)]
            out[cand] = vals[cand]
            filled |= cand
        if filled.all():
            break
    return out


# ---------------------------------------------------------------------------------- voxels
def voxel_downsample(points: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """Voxel-grid downsampling: the centroid of the points of each occupied voxel.

    Returns ``(centroids, owner)``: M x 3 centroids (float64, ordered by voxel key, hence
    deterministic) and, for each input point, the index of the centroid of its voxel.
    """
    p = np.asarray(points, np.float64)
    if voxel <= 0 or not np.isfinite(voxel):
        raise ValueError(f"voxel_downsample: invalid voxel size {voxel}")
    keys = np.floor((p - p.min(axis=0)) / voxel).astype(np.int64)
    dims = keys.max(axis=0) + 1
    if float(np.prod(dims.astype(np.float64))) < 2.0 ** 62:
        # one int64 key per voxel (row-major over x, y, z): a 1-D unique is much faster
        flat = np.ravel_multi_index(keys.T, dims)
        _, owner, counts = np.unique(flat, return_inverse=True, return_counts=True)
    else:  # absurdly fine voxels: fall back to the row-wise unique
        _, owner, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    owner = owner.ravel()
    cent = np.zeros((len(counts), 3))
    np.add.at(cent, owner, p)
    cent /= counts[:, None]
    return cent, owner


# ---------------------------------------------------------------------------------- normals
def _orientation_target(p: np.ndarray, orient: str) -> tuple[str, np.ndarray]:
    if orient == "auto":
        # a camera-frame scan (MVTec 3D-AD, Eyecandies) lies entirely in front of the camera at the
        # origin (z > 0); anything else (height maps, CAD-like clouds) is viewed from +z.
        orient = "camera" if float(np.nanmin(p[:, 2])) > 0 else "+z"
    if orient == "camera":
        return orient, np.zeros(3)
    if orient == "+z":
        return orient, np.array([0.0, 0.0, 1.0])
    if orient == "outward":
        return orient, p.mean(axis=0)
    raise ValueError(f"estimate_normals: unknown orientation {orient!r} (auto, camera, +z, outward)")


def estimate_normals(points: np.ndarray, radius: Optional[float] = None, max_nn: int = 30,
                     orient: str = "auto", radius_factor: float = 4.0) -> np.ndarray:
    """Unit normals (N x 3 float64) of an N x 3 cloud, with open3d's hybrid KD-tree search.

    ``radius`` defaults to ``radius_factor`` x :func:`point_spacing`.  Orientation (the sign of
    each normal) is made consistent so descriptors that depend on it are comparable:

    * ``"camera"``: towards a camera at the origin (camera-frame scans, z = depth > 0);
    * ``"+z"``: towards a viewer at +z infinity (n_z >= 0; height maps);
    * ``"outward"``: away from the centroid (closed objects scanned from all sides);
    * ``"auto"`` (default): ``"camera"`` when every point has z > 0, else ``"+z"``.
    """
    import open3d as o3d

    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"estimate_normals needs N x 3 points, got shape {p.shape}")
    if len(p) < 3:
        raise ValueError(f"estimate_normals needs at least 3 points, got {len(p)}")
    if radius is None:
        radius = radius_factor * point_spacing(p)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    pc.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=float(radius), max_nn=int(max_nn)))
    n = np.asarray(pc.normals).copy()
    mode, target = _orientation_target(p, orient)
    if mode == "+z":
        flip = n @ target < 0
    elif mode == "outward":
        flip = np.einsum("ij,ij->i", n, p - target) < 0
    else:  # towards a location
        flip = np.einsum("ij,ij->i", n, target - p) < 0
    n[flip] *= -1
    return n
