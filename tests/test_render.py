"""The numpy renderer: z-buffer, visibility and back-projection against brute-force references."""
from __future__ import annotations

import numpy as np
import pytest

from core.render import BackProjection, backproject, render_views, rotation, view_rotations, zbuffer
from core.render.views import MVTEC_VIEWS


def _brute_zbuffer(row, col, z, size, r):
    depth = np.full((size, size), -np.inf)
    index = np.full((size, size), -1)
    for i in range(len(z)):
        for a in range(row[i] - r, row[i] + r + 1):
            for b in range(col[i] - r, col[i] + r + 1):
                if 0 <= a < size and 0 <= b < size and (z[i] > depth[a, b]):
                    depth[a, b], index[a, b] = z[i], i
    return depth, index


@pytest.mark.parametrize("r", [0, 1, 2])
def test_zbuffer_matches_brute_force(r):
    rng = np.random.default_rng(r)
    n, size = 300, 20
    row, col = rng.integers(0, size, n), rng.integers(0, size, n)
    z = rng.normal(size=n)
    d, ix = zbuffer(row, col, z, size, r)
    bd, bix = _brute_zbuffer(row, col, z, size, r)
    assert np.array_equal(d, bd)
    assert np.array_equal(ix, bix)


def test_view_rotations_are_pointads_mvtec_set():
    assert [a for a, _ in MVTEC_VIEWS] == ["x"] * 5 + ["y"] * 4
    assert [d for _, d in MVTEC_VIEWS] == [-45, -15, 0, 15, 45, -30, -15, 15, 30]
    R = view_rotations()
    assert R.shape == (9, 3, 3)
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    assert np.allclose(rotation("x", 90) @ [0, 1, 0], [0, 0, 1], atol=1e-12)


def _two_planes(n=40):
    u, v = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n))
    front = np.stack([u.ravel(), v.ravel(), np.full(n * n, 0.5)], 1)
    back = np.stack([u.ravel(), v.ravel(), np.full(n * n, -0.5)], 1)
    return np.concatenate([front, back])


def test_hidden_plane_is_not_visible_from_the_front_but_is_from_behind():
    pts = _two_planes()
    n = len(pts) // 2
    views = render_views(pts, np.stack([rotation("x", 0), rotation("y", 180)]), size=48, radius=1)
    assert views.visible[0, :n].all() and not views.visible[0, n:].any()
    assert views.visible[1, n:].all() and not views.visible[1, :n].any()
    # every winning pixel shows a visible point; the background is white
    ix = views.index[0]
    assert views.visible[0, ix[ix >= 0]].all()
    assert (views.images[0][ix < 0] == 255).all()
    assert views.images.dtype == np.uint8 and views.images.shape == (2, 48, 48, 3)


def test_backprojection_matches_brute_force_and_fills_unseen_from_nearest_seen():
    rng = np.random.default_rng(1)
    pts = _two_planes(12)
    rots = np.stack([rotation("x", 0), rotation("x", 20), rotation("y", 25)])
    views = render_views(pts, rots, size=32, radius=1)
    maps = rng.random((3, 32, 32))
    got = backproject(maps, views, pts)
    exp = np.zeros(len(pts))
    seen = np.zeros(len(pts), bool)
    for i in range(len(pts)):
        vals = [maps[k, views.pixel[k, i, 0], views.pixel[k, i, 1]] for k in range(3) if views.visible[k, i]]
        if vals:
            exp[i], seen[i] = np.mean(vals), True
    assert (~seen).any(), "the fixture must have hidden points"
    for i in np.flatnonzero(~seen):
        d = np.linalg.norm(pts[seen] - pts[i], axis=1)
        exp[i] = exp[seen][np.argmin(d)]
    assert np.allclose(got, exp, atol=1e-6)


def test_backprojection_of_a_constant_is_that_constant_and_shapes_are_checked():
    pts = np.random.default_rng(2).normal(size=(500, 3))
    views = render_views(pts, size=24)
    bp = BackProjection.from_views(views, pts)
    assert np.allclose(bp.apply(np.full((9, 24, 24), 0.25)), 0.25)
    with pytest.raises(ValueError):
        bp.apply(np.zeros((8, 24, 24)))


def test_dense_cloud_uses_a_subset_for_the_zbuffer_but_scores_every_point():
    u, v = np.meshgrid(np.linspace(-1, 1, 120), np.linspace(-1, 1, 120))
    pts = np.stack([u.ravel(), v.ravel(), 0.2 * np.exp(-3 * (u ** 2 + v ** 2)).ravel()], 1)
    views = render_views(pts, size=32, max_splat=2000)
    assert views.pixel.shape == (9, len(pts), 2)
    assert views.visible[2].mean() > 0.95    # the frontal view sees (almost) the whole surface
    with pytest.raises(ValueError):
        render_views(np.zeros((0, 3)))
