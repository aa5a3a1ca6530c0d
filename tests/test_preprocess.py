"""Tests of core.preprocess (background plane, spacing, missing-aware resize, normals)."""
from __future__ import annotations

import numpy as np
import pytest

from core.preprocess import (estimate_normals, fit_plane_robust, largest_cluster_mask, point_spacing,
                             remove_background_plane, resize_organized, voxel_downsample)


def tilted_scene(unit: float, n: int = 96, step_mm: float = 0.5, noise: float = 0.05, seed: int = 0,
                 camera: bool = False):
    """An organized cloud: a tilted plane with a box and a sphere on it, in mm (unit=1) or m (1e-3).

    ``camera=True`` puts it in a camera frame (z = depth ~ 300 mm, looking at the plane).
    Returns (xyz H x W x 3 float32, object mask H x W bool).
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float64) * step_mm
    xs -= xs.mean()
    ys -= ys.mean()
    z = 0.15 * xs + 0.1 * ys
    box = (np.abs(xs + 10) < 5) & (np.abs(ys) < 5)
    r2 = (xs - 10) ** 2 + (ys - 4) ** 2
    sph = r2 < 36
    z = z + np.where(box, 4.0, 0.0) + np.where(sph, np.sqrt(np.clip(36 - r2, 0, None)) + 2.0, 0.0)
    z = z + rng.normal(0, noise * step_mm, z.shape)
    xyz = np.stack([xs, ys, z], -1)
    if camera:
        xyz[..., 2] = 300.0 - xyz[..., 2]
    return (xyz * unit).astype(np.float32), box | sph


# ------------------------------------------------------------------------------ spacing
@pytest.mark.parametrize("step", [0.5, 2e-4])
def test_spacing_of_regular_grid_is_its_step(step):
    ys, xs = np.mgrid[0:60, 0:70].astype(np.float64) * step
    pts = np.stack([xs.ravel(), ys.ravel(), np.zeros(xs.size)], 1)
    assert point_spacing(pts) == pytest.approx(step, rel=1e-6)
    # the 4th neighbour of a square grid is also at one step, the 5th at sqrt(2) steps
    assert point_spacing(pts, k=4) == pytest.approx(step, rel=1e-6)
    assert point_spacing(pts, k=5) == pytest.approx(step * np.sqrt(2), rel=1e-6)


def test_spacing_ignores_nan_duplicates_and_matches_brute_force():
    rng = np.random.default_rng(1)
    pts = rng.uniform(size=(500, 3))
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    np.fill_diagonal(d, np.inf)
    nearest = d.min(1)
    noisy = np.concatenate([pts, pts[:50], np.full((20, 3), np.nan)])  # duplicates + missing
    # every finite row is a query; a duplicate's nearest *distinct* point is its twin's
    expected = np.median(np.r_[nearest, nearest[:50]])
    assert point_spacing(noisy) == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        point_spacing(np.full((10, 3), np.nan))


# ------------------------------------------------------------------------------ plane
@pytest.mark.parametrize("unit", [1.0, 1e-3])
@pytest.mark.parametrize("camera", [False, True])
def test_background_plane_removal_at_two_unit_scales(unit, camera):
    xyz, obj = tilted_scene(unit, camera=camera)
    out, plane, mask = remove_background_plane(xyz)
    assert plane is not None
    assert np.linalg.norm(plane[:3]) == pytest.approx(1.0)
    removed_plane = (~mask[~obj]).mean()
    kept_object = mask[obj].mean()
    assert removed_plane >= 0.95, removed_plane
    assert kept_object >= 0.95, kept_object
    # removed points are NaN, kept ones unchanged
    assert np.isnan(out[~mask]).all()
    np.testing.assert_array_equal(out[mask], xyz[mask])


def test_plane_removal_with_missing_points_and_largest_cluster():
    xyz, obj = tilted_scene(1.0)
    rng = np.random.default_rng(3)
    holes = rng.random(obj.shape) < 0.1
    xyz[holes] = np.nan
    # a few flying points far above the plane, isolated from the objects
    xyz[5, 5, 2] += 30.0
    xyz[90, 7, 2] += 25.0
    out, plane, mask = remove_background_plane(xyz, keep_largest_cluster=True)
    assert plane is not None
    assert not mask[holes].any()
    assert not mask[5, 5] and not mask[90, 7]
    # the largest cluster is one of the two objects: the sphere (~113 mm^2) vs the box (100 mm^2)
    sph_or_box = mask & obj
    assert sph_or_box.sum() == mask.sum()
    assert mask.sum() >= 0.3 * (obj & ~holes).sum()


def test_plane_removal_degenerate_inputs():
    with pytest.raises(ValueError, match="no valid"):
        remove_background_plane(np.full((20, 20, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        remove_background_plane(np.zeros((10, 3), np.float32))
    # a border without points: no plane, input returned unchanged and flagged with None
    xyz, _ = tilted_scene(1.0, n=40)
    xyz[:12] = xyz[-12:] = np.nan
    xyz[:, :12] = xyz[:, -12:] = np.nan
    out, plane, mask = remove_background_plane(xyz, border=10)
    assert plane is None
    np.testing.assert_array_equal(np.isfinite(out).all(2), mask)
    np.testing.assert_array_equal(out[mask], xyz[mask])
    # a cloud that is nothing but the plane: removing it would leave nothing -> unchanged, flagged
    flat = tilted_scene(1.0, n=40)[0]
    flat[..., 2] = 0.15 * flat[..., 0] + 0.1 * flat[..., 1]
    out, plane, mask = remove_background_plane(flat)
    assert plane is None and mask.all()


def test_robust_plane_fit_recovers_plane_and_noise_with_outliers():
    rng = np.random.default_rng(0)
    n_in = 3000
    xy = rng.uniform(-1, 1, (n_in, 2))
    normal = np.array([0.2, -0.1, 1.0])
    normal /= np.linalg.norm(normal)
    z = -(normal[0] * xy[:, 0] + normal[1] * xy[:, 1] + 0.3) / normal[2]
    inl = np.c_[xy, z] + rng.normal(0, 0.002, (n_in, 1)) * normal
    outl = rng.uniform(-1, 1, (1500, 3))
    plane, sigma = fit_plane_robust(np.r_[inl, outl])
    assert abs(plane[:3] @ normal) == pytest.approx(1.0, abs=1e-4)
    assert sigma == pytest.approx(0.002, rel=0.15)
    assert fit_plane_robust(np.zeros((2, 3)))[0] is None


# ------------------------------------------------------------------------------ resize
def test_resize_organized_keeps_missing_semantics():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(40, 60, 3)).astype(np.float32)
    src[rng.random((40, 60)) < 0.5] = np.nan
    src[:, :12] = np.nan                      # a fully missing band
    out = resize_organized(src, (10, 15))      # 4 x 4 cells
    valid_src = np.isfinite(src).all(2)
    for i in range(10):
        for j in range(15):
            cell = src[4 * i:4 * i + 4, 4 * j:4 * j + 4].reshape(-1, 3)
            cell_valid = valid_src[4 * i:4 * i + 4, 4 * j:4 * j + 4].ravel()
            if cell_valid.any():
                # a valid target takes one of its cell's valid source points, unchanged
                assert np.isfinite(out[i, j]).all()
                assert (np.abs(cell[cell_valid] - out[i, j]).max(1) == 0).any()
            else:
                assert np.isnan(out[i, j]).all()
    # identity and upsampling (nearest): no point is invented
    np.testing.assert_array_equal(resize_organized(src, (40, 60)), src)
    up = resize_organized(src, (80, 120))
    np.testing.assert_array_equal(up[::2, ::2], src)
    with pytest.raises(ValueError):
        resize_organized(src[..., :2], (4, 4))


# ------------------------------------------------------------------------------ voxels / clusters
def test_voxel_downsample_matches_brute_force_centroids():
    rng = np.random.default_rng(2)
    pts = rng.uniform(0, 1, (2000, 3))
    cent, owner = voxel_downsample(pts, 0.25)
    keys = np.floor((pts - pts.min(0)) / 0.25).astype(int)
    assert len(cent) == len({tuple(k) for k in keys})
    for c in range(len(cent)):
        members = pts[owner == c]
        assert len({tuple(k) for k in keys[owner == c]}) == 1
        np.testing.assert_allclose(cent[c], members.mean(0))


def test_largest_cluster_mask_picks_biggest_blob():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (600, 3))
    b = rng.normal(0, 1, (300, 3)) + 50
    m = largest_cluster_mask(np.r_[a, b], eps=2.0)
    assert m[:600].all() and not m[600:].any()


# ------------------------------------------------------------------------------ normals
@pytest.mark.parametrize("unit", [1.0, 1e-3])
def test_normals_of_sphere_are_radial_and_oriented(unit):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(4000, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    pts = v * 10 * unit
    n = estimate_normals(pts, orient="outward")
    assert np.abs(np.linalg.norm(n, axis=1) - 1).max() < 1e-6
    assert np.median(np.einsum("ij,ij->i", n, v)) > 0.99   # outward radial
    # a front-facing hemisphere seen from a camera at the origin: normals face the camera
    cam = v[v[:, 2] < 0] * 10 * unit + np.array([0, 0, 100 * unit])
    nc = estimate_normals(cam)                              # auto: all z > 0 -> camera
    assert (np.einsum("ij,ij->i", nc, -cam) > 0).all()
    # a height map (z around 0) seen from +z
    xyz, _ = tilted_scene(unit, n=40)
    nz = estimate_normals(xyz.reshape(-1, 3))
    assert (nz[:, 2] >= 0).all()
