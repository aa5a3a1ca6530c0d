"""Hand-crafted, pose-invariant 3D point descriptors.

For each point of a (voxel-downsampled) cloud:

* **FPFH** (Rusu et al. 2009) from open3d, 33 bins, divided by 200 so every one of its three
  11-bin sub-histograms sums to 1 (open3d normalizes the point's own SPFH and the weighted sum of
  its neighbours' to 100 each);
* **local shape** at two scales (the normal radius and the FPFH radius): the *surface variation*
  ``lambda_min / sum(lambda)`` of the neighbourhood covariance (a curvature proxy) and the signed
  *height* of the point above the centroid of its neighbourhood along its oriented normal,
  divided by the radius (> 0 on bumps, < 0 in dents; scale-free).

All radii are multiples of the working voxel size, itself derived from the cloud's own point
spacing: nothing depends on the unit of the coordinates.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..preprocess import estimate_normals


def local_shape(p: np.ndarray, normals: np.ndarray, radii: tuple[float, ...], k: int = 128) -> np.ndarray:
    """Surface variation and normalized signed height of every point at each radius.

    One k-nearest-neighbour query (up to ``k`` neighbours within the largest radius) serves every
    scale: a scale uses the neighbours within its radius.  Covariances are accumulated from
    coordinates relative to the query point (numerically safe at any unit).  Returns N x 2R float32:
    ``[variation_r1, height_r1, variation_r2, height_r2, ...]``; points with fewer than 4
    neighbours at a scale get 0 there.
    """
    k = int(min(k, len(p)))
    d, idx = cKDTree(p).query(p, k=k, distance_upper_bound=max(radii))
    idx = np.where(np.isfinite(d), idx, 0)
    rel = (p[idx] - p[:, None, :]).astype(np.float32)            # N x k x 3
    prods = [rel[..., i] * rel[..., j] for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))]
    out = []
    for r in radii:
        w = (d <= r).astype(np.float32)                            # inf (no neighbour) -> 0
        cnt = np.maximum(w.sum(1), 1.0)
        mu = np.einsum("nk,nki->ni", w, rel) / cnt[:, None]        # centroid - p
        m = [np.einsum("nk,nk->n", w, q) / cnt for q in prods]
        cov = np.empty((len(p), 3, 3), np.float64)
        for (i, j), mij in zip(((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)), m):
            cov[:, i, j] = cov[:, j, i] = mij - mu[:, i] * mu[:, j]
        ev = np.linalg.eigvalsh(cov)
        var = ev[:, 0] / np.maximum(ev.sum(1), 1e-30)
        height = -np.einsum("ni,ni->n", normals, mu) / r           # n . (p - centroid) / r
        few = w.sum(1) < 4
        var[few] = 0.0
        height[few] = 0.0
        out += [var, height]
    return np.stack(out, axis=1).astype(np.float32)


def geometry_descriptors(points: np.ndarray, voxel: float, normal_radius_factor: float = 4.0,
                         fpfh_radius_factor: float = 10.0, orient: str = "auto",
                         max_nn_normal: int = 30, max_nn_fpfh: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of a working cloud (N x 3, spacing ~ ``voxel``).

    Returns ``(desc, groups)``: N x 37 float32 (33 FPFH + 4 local shape) and the group name of each
    column (``"fpfh"`` / ``"shape"``).
    """
    import open3d as o3d

    p = np.asarray(points, np.float64)
    if len(p) < 5:
        raise ValueError(f"too few 3D points to describe ({len(p)})")
    r_n = normal_radius_factor * voxel
    r_f = fpfh_radius_factor * voxel
    normals = estimate_normals(p, radius=r_n, max_nn=max_nn_normal, orient=orient)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p))
    pc.normals = o3d.utility.Vector3dVector(normals)
    fpfh = np.asarray(o3d.pipelines.registration.compute_fpfh_feature(
        pc, o3d.geometry.KDTreeSearchParamHybrid(radius=r_f, max_nn=max_nn_fpfh)).data).T / 200.0
    # a surface sampled every voxel holds ~pi (r / voxel)^2 points within r: the cap of 128
    # neighbours limits the large scale to ~6.4 voxels, which keeps it local but robust
    shape = local_shape(p, normals, (r_n, r_f), k=128)
    desc = np.concatenate([fpfh, shape], axis=1).astype(np.float32)
    groups = np.array(["fpfh"] * fpfh.shape[1] + ["shape"] * shape.shape[1])
    return desc, groups
