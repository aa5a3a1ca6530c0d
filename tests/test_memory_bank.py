"""Tests of the ``memory-bank`` detector (hand-crafted features + coreset memory bank)."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from core.detectors import STAGE_FIT, STAGE_FUSION, available, create, get
from core.detectors.memory_bank import detector as mb_detector
from core.detectors.memory_bank.bank import depth_noise
from core.detectors.memory_bank.coreset import GroupScaler, greedy_coreset, nn_distance
from core.features.geometry import geometry_descriptors, local_shape
from core.preprocess import estimate_normals
from core.errors import Cancelled, InputError
from core.sample import Sample, map_to_points

SIZE = 72
DEFECT = (28, 44)          # (row, col) of the injected defects
DEFECT_R = 5


def make_part(seed: int, size: int = SIZE, bump: bool = False, blob: bool = False, rgb: bool = True,
              points: bool = True, rgb_size: int | None = None, unit: float = 1.0) -> Sample:
    """A good part: a dome and a box on a slightly tilted plane (height map, mm), a textured RGB.

    Good parts differ by sensor noise, texture noise and a small shift.  ``bump`` raises a smooth
    bump on the dome; ``blob`` paints a dark brown disc on the RGB, both centred at DEFECT.
    """
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sx, sy = rng.uniform(-1, 1, 2)
    cx, cy = size * 0.55 + sx, size * 0.45 + sy
    r2 = (xs - cx) ** 2 + (ys - cy) ** 2
    R = size * 0.3
    dome = r2 < R * R
    z = 0.05 * xs + 0.03 * ys + np.where(dome, np.sqrt(np.clip(R * R - r2, 0, None)) * 0.6 + 1.0, 0.0)
    box = (np.abs(xs - size * 0.2) < 6) & (np.abs(ys - size * 0.75) < 6)
    z = z + np.where(box, 5.0, 0.0)
    if bump:
        d2 = (ys - DEFECT[0]) ** 2 + (xs - DEFECT[1]) ** 2
        z = z + np.where(d2 < DEFECT_R ** 2, 2.0 * np.cos(np.sqrt(d2) / DEFECT_R * np.pi / 2) ** 2, 0.0)
    z = z + rng.normal(0, 0.02, z.shape)
    xyz = (np.stack([xs * 0.5, ys * 0.5, z * 0.5], -1) * unit).astype(np.float32)
    xyz[rng.random((size, size)) < 0.01] = np.nan            # a few missing points
    img = None
    if rgb:
        img = np.empty((size, size, 3), np.float64)
        img[:] = (90, 95, 100)
        img[dome] = (190, 150, 70)
        img[box] = (60, 120, 180)
        stripes = 12 * np.sin(xs / 2.0 + ys / 3.0)            # a fine texture on everything
        img += stripes[..., None] + rng.normal(0, 4, img.shape)
        if blob:
            d2 = (ys - DEFECT[0]) ** 2 + (xs - DEFECT[1]) ** 2
            img[d2 < DEFECT_R ** 2] = (80, 50, 30)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if rgb_size is not None:
            import cv2
            img = cv2.resize(img, (rgb_size, rgb_size), interpolation=cv2.INTER_LINEAR)
    return Sample(id=f"s{seed}", class_name="part", rgb=img, points=xyz if points else None)


def defect_region(shape, margin: float = 1.0) -> np.ndarray:
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]
    sy, sx = h / SIZE, w / SIZE
    return ((ys - DEFECT[0] * sy) / sy) ** 2 + ((xs - DEFECT[1] * sx) / sx) ** 2 < (DEFECT_R * margin) ** 2


# half the default working size; sigma_pct keeps the smoothing these tests were tuned with (4 working px)
FAST = dict(working_size=128, target_points=3000, sigma_pct=100 * 4 / 128)


@pytest.fixture(scope="module")
def fitted():
    det = create("memory-bank", **FAST)
    det.fit([make_part(i) for i in range(3)])
    return det


# ------------------------------------------------------------------------------ registry / params
def test_registered_and_declares_params():
    assert "memory-bank" in available()
    cls = get("memory-bank")
    assert cls.needs.support >= 1 and cls.needs.default_support == 5
    assert not cls.needs.weights and not cls.needs.training
    stages = {p.name: p.stage for p in cls.params}
    for name in ("coreset_ratio", "working_size", "fpfh_radius_factor", "normal_radius_factor", "remove_background"):
        assert stages[name] == STAGE_FIT, name
    for name in ("rgb_weight", "agreement_weight", "max_weight", "sigma_pct", "threshold", "image_top_fraction"):
        assert stages[name] == STAGE_FUSION, name
    det = create("memory-bank")
    assert det.set_params(rgb_weight=0.3) == {STAGE_FUSION}
    with pytest.raises(ValueError):
        det.set_params(rgb_weight=2.0)


# ------------------------------------------------------------------------------ building blocks
def test_nn_distance_matches_sklearn_and_exclusion():
    rng = np.random.default_rng(0)
    bank = rng.normal(size=(700, 9)).astype(np.float32)
    q = rng.normal(size=(300, 9)).astype(np.float32)
    ref = NearestNeighbors(n_neighbors=2).fit(bank).kneighbors(q)[0]
    got = nn_distance(q, bank, chunk=64)
    np.testing.assert_allclose(got, ref[:, 0], rtol=1e-4, atol=1e-4)
    # excluding each query's nearest neighbour gives the second one
    nearest = NearestNeighbors(n_neighbors=1).fit(bank).kneighbors(q)[1][:, 0]

    def excl(rows):
        m = np.zeros((rows.stop - rows.start, len(bank)), bool)
        m[np.arange(len(m)), nearest[rows]] = True
        return m

    np.testing.assert_allclose(nn_distance(q, bank, chunk=64, exclude=excl), ref[:, 1], rtol=1e-4, atol=1e-4)


def test_greedy_coreset_is_k_center_and_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    sel = greedy_coreset(x, 40, seed=3)
    assert len(set(sel.tolist())) == 40
    np.testing.assert_array_equal(sel, greedy_coreset(x, 40, seed=3))
    # brute-force farthest-point selection from the same first centre
    ref = [int(sel[0])]
    mind = np.linalg.norm(x - x[ref[0]], axis=1)
    for _ in range(39):
        j = int(np.argmax(mind))
        ref.append(j)
        mind = np.minimum(mind, np.linalg.norm(x - x[j], axis=1))
    np.testing.assert_array_equal(sel, ref)
    # the coreset covers the data better than a random subset of the same size
    cover = nn_distance(x, x[sel]).max()
    rand = nn_distance(x, x[rng.choice(400, 40, replace=False)]).max()
    assert cover < rand


def test_local_shape_matches_brute_force_and_sign():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-10, 10, (3000, 2))
    for sign in (-1.0, 1.0):                     # -1: dome (bump), +1: bowl (dent), seen from +z
        z = sign * 0.02 * (xy ** 2).sum(1) + rng.normal(0, 0.01, len(xy))
        p = np.c_[xy, z]
        n = estimate_normals(p, radius=2.0, orient="+z")
        radii = (1.5, 3.0)
        got = local_shape(p, n, radii, k=len(p))
        for i in rng.choice(len(p), 20, replace=False):
            for s_i, r in enumerate(radii):
                nb = p[np.linalg.norm(p - p[i], axis=1) <= r]
                c = nb.mean(0)
                ev = np.linalg.eigvalsh(np.cov((nb - c).T, bias=True))
                np.testing.assert_allclose(got[i, 2 * s_i], ev[0] / ev.sum(), rtol=1e-3, atol=1e-6)
                np.testing.assert_allclose(got[i, 2 * s_i + 1], n[i] @ (p[i] - c) / r, rtol=1e-3, atol=1e-6)
        centre = np.linalg.norm(xy, axis=1) < 5
        heights = got[centre, 3]
        assert (np.sign(np.median(heights)) == -sign) and abs(np.median(heights)) > 0.01
    d, groups = geometry_descriptors(p, voxel=0.4)
    assert d.shape == (len(p), 37) and np.isfinite(d).all()
    assert (groups == "fpfh").sum() == 33
    # FPFH sub-histograms are normalized to ~1 each
    np.testing.assert_allclose(d[:, :33].reshape(-1, 3, 11).sum(2), 1.0, atol=0.02)


def test_depth_noise_estimate_is_unit_free():
    """The second-difference estimator recovers the white depth noise of a tilted, curved part."""
    for unit, sigma in ((1.0, 0.05), (1e-3, 0.2)):
        s = make_part(3, rgb=False, unit=unit)
        rng = np.random.default_rng(1)
        # add a known noise, much larger than the part's own (0.01 mm)
        s.points[..., 2] += rng.normal(0, sigma * unit, s.points.shape[:2]).astype(np.float32)
        est = depth_noise(s, np.arange(s.n_points))
        assert est == pytest.approx(sigma * unit, rel=0.2), (unit, est)
    assert np.isnan(depth_noise(Sample(id="u", points=np.zeros((10, 3), np.float32)), np.arange(10)))


def test_group_scaler_balances_groups():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 100, (500, 30)), rng.normal(5, 0.01, (500, 3)), np.ones((500, 1))]
    groups = np.array(["a"] * 30 + ["b"] * 3 + ["c"])
    y = GroupScaler.fit(x, groups)(x)
    assert y[:, :30].var(0).sum() == pytest.approx(1.0, rel=1e-3)
    assert y[:, 30:33].var(0).sum() == pytest.approx(1.0, rel=1e-3)
    assert np.all(y[:, 33] == 0)                                # constant channel dropped


# ------------------------------------------------------------------------------ shapes / modalities
def test_result_shapes_organized_rgb_and_cloud(fitted):
    s = make_part(10)
    r = fitted.score(s)
    assert r.pixel_map.shape == s.rgb.shape[:2]
    assert np.isfinite(r.pixel_map).all()
    assert r.point_scores.shape == (s.n_points,)
    assert np.isfinite(r.point_scores).all()
    assert set(r.components.maps) == {"rgb", "geometry"}
    geo = r.components.maps["geometry"]
    assert np.isnan(geo[~s.valid_mask()]).all() and np.isfinite(geo[s.valid_mask()]).all()
    np.testing.assert_allclose(r.point_scores, map_to_points(r.pixel_map, s), rtol=1e-6)
    assert np.isfinite(r.image_score) and r.is_anomalous is not None


def test_rgb_grid_larger_than_cloud_grid():
    det = create("memory-bank", **FAST)
    det.fit([make_part(i, rgb_size=96) for i in range(2)])
    s = make_part(7, rgb_size=96)
    r = det.score(s)
    assert r.pixel_map.shape == (96, 96)
    assert r.components.maps["geometry"].shape == (96, 96)
    assert r.point_scores.shape == (s.n_points,)


def test_rgb_only_and_3d_only():
    det = create("memory-bank", **FAST)
    det.fit([make_part(i, points=False) for i in range(2)])
    r = det.score(make_part(5, points=False))
    assert set(r.components.maps) == {"rgb"} and r.point_scores is None
    assert r.pixel_map.shape == (SIZE, SIZE)
    with pytest.raises(InputError, match="no modality"):
        det.score(make_part(5, rgb=False))

    det3 = create("memory-bank", **FAST)
    det3.fit([make_part(i, rgb=False) for i in range(2)])
    s = make_part(5, rgb=False)
    r = det3.score(s)
    assert set(r.components.maps) == {"geometry"}
    assert r.pixel_map.shape == (SIZE, SIZE) and np.isfinite(r.pixel_map).all()
    assert r.point_scores.shape == (s.n_points,)


def test_unorganized_cloud_only_scores_points_and_finds_bump():
    def cloud(seed, bump=False):
        s = make_part(seed, rgb=False, bump=bump)
        pts = s.valid_points()
        return Sample(id=s.id, points=np.random.default_rng(seed).permutation(pts)), pts

    det = create("memory-bank", **FAST)
    det.fit([cloud(i)[0] for i in range(2)])
    s, _ = cloud(11, bump=True)
    r = det.score(s)
    assert r.pixel_map is None and r.components.shape is None
    assert r.point_scores.shape == (len(s.points),)
    # the bump's points (xy within the defect disc, in mm = px * 0.5) score higher than the rest
    xy = s.points[:, :2] / 0.5
    near = (xy[:, 1] - DEFECT[0]) ** 2 + (xy[:, 0] - DEFECT[1]) ** 2 < (DEFECT_R * 0.8) ** 2
    assert np.median(r.point_scores[near]) > np.percentile(r.point_scores[~near], 95)
    clean = det.score(cloud(11)[0])
    assert r.image_score > clean.image_score


# ------------------------------------------------------------------------------ detection
def test_injected_defects_score_where_they_are(fitted):
    clean = fitted.score(make_part(20))
    for kind, comp in (("bump", "geometry"), ("blob", "rgb")):
        s = make_part(20, **{kind: True})
        r = fitted.score(s)
        region = defect_region(s.grid_shape, 0.8)
        far = ~defect_region(s.grid_shape, 2.5)
        m = r.components.maps[comp]
        # the defect's own modality lights up where the defect is, not elsewhere
        assert np.nanmedian(m[region]) > np.nanpercentile(m[far], 99), kind
        assert np.nanmedian(m[region]) > 2.0, kind                  # > twice the nominal p99
        assert np.median(r.pixel_map[region]) > np.percentile(r.pixel_map[far], 99), kind
        assert r.image_score > clean.image_score + 1.0, kind
        assert r.image_score > r.threshold >= clean.image_score, kind
        # the other modality is not fooled (the blob is flat, the bump keeps the colours)
        other = "rgb" if comp == "geometry" else "geometry"
        assert np.nanmedian(r.components.maps[other][region]) < 1.0, kind


def test_rgb_robust_to_lighting_and_in_texture_mode_to_rotation(fitted):
    """A good part lit 15 % brighter stays far below a stained one; in texture mode (any position
    matches any position, orientations relative to the dominant one) so does a part turned by 90
    degrees.  (Object mode has a positional prior: a pose the support never shows is a change.)"""
    good = make_part(31)
    stained = make_part(31, blob=True)
    p = dict(rgb_weight=1.0)
    brighter = Sample(id="l", rgb=np.clip(good.rgb.astype(np.float64) * 1.15, 0, 255).astype(np.uint8))
    turned = Sample(id="t", rgb=np.ascontiguousarray(np.rot90(brighter.rgb)))
    s_bright = fitted.fuse(fitted.extract(brighter), p).image_score
    s_stained = fitted.fuse(fitted.extract(Sample(id="b", rgb=stained.rgb)), p).image_score
    s_good = fitted.fuse(fitted.extract(Sample(id="g", rgb=good.rgb)), p).image_score
    assert s_bright < 0.5 * s_stained
    assert s_bright < s_good + 1.0
    tex = create("memory-bank", rgb_mode="texture", **FAST)
    tex.fit([make_part(i, points=False) for i in range(3)])
    t_turned = tex.fuse(tex.extract(turned), p).image_score
    t_good = tex.fuse(tex.extract(Sample(id="g", rgb=good.rgb)), p).image_score
    t_stained = tex.fuse(tex.extract(Sample(id="b", rgb=stained.rgb)), p).image_score
    assert t_turned < 0.5 * t_stained
    assert t_turned < t_good + 1.0


def test_nominal_normalization_on_held_out_good_part(fitted):
    """0 ~ the median, 1 ~ the 99th percentile of good patches: a held-out good part stays there."""
    r = fitted.score(make_part(30))
    for name, m in r.components.maps.items():
        v = m[np.isfinite(m)]
        assert -1.0 < np.median(v) < 0.75, name
        assert np.percentile(v, 99) < 3.0, name


def test_bump_detected_at_metre_scale():
    """Same geometry in metres: radii follow the cloud's spacing, so the bump is still found."""
    det = create("memory-bank", **FAST)
    det.fit([make_part(i, rgb=False, unit=1e-3) for i in range(2)])
    s = make_part(21, rgb=False, bump=True, unit=1e-3)
    m = det.score(s).components.maps["geometry"]
    assert np.nanmedian(m[defect_region(s.grid_shape, 0.8)]) > np.nanpercentile(m[~defect_region(s.grid_shape, 2.5)], 99)


# ------------------------------------------------------------------------------ fusion stage
def test_fusion_changes_do_not_reextract(fitted, monkeypatch):
    calls = {"rgb": 0, "geo": 0}
    real_rgb, real_geo = mb_detector.rgb_descriptors, mb_detector.geometry_descriptors

    def count_rgb(*a, **k):
        calls["rgb"] += 1
        return real_rgb(*a, **k)

    def count_geo(*a, **k):
        calls["geo"] += 1
        return real_geo(*a, **k)

    monkeypatch.setattr(mb_detector, "rgb_descriptors", count_rgb)
    monkeypatch.setattr(mb_detector, "geometry_descriptors", count_geo)
    comps = fitted.extract(make_part(12, blob=True))
    assert calls == {"rgb": 1, "geo": 1}
    results = [fitted.fuse(comps, dict(rgb_weight=a, agreement_weight=b, sigma_pct=sg, image_top_fraction=t,
                                       threshold=th))
               for a, b, sg, t, th in [(0.5, 0, 3, 0, 1), (0.9, 0.5, 0, 0.01, 2), (0.1, 1.0, 6, 0.1, 0.5)]]
    assert calls == {"rgb": 1, "geo": 1}
    assert len({round(r.image_score, 6) for r in results}) == 3
    assert results[1].threshold == 2.0
    # set_params on the fusion stage keeps the detector fitted
    assert fitted.set_params(sigma_pct=2.0) == {STAGE_FUSION} and fitted.fitted
    fitted.set_params(sigma_pct=fitted.param("sigma_pct").default)


def test_rgb_weight_one_follows_rgb_zero_follows_geometry(fitted):
    comps = fitted.extract(make_part(13, blob=True, bump=True))
    rgb, geo = comps.maps["rgb"], comps.maps["geometry"]
    r1 = fitted.fuse(comps, dict(rgb_weight=1.0, agreement_weight=0.0, sigma_pct=0.0, max_weight=0.5))
    np.testing.assert_allclose(r1.pixel_map, rgb, rtol=1e-6, atol=1e-6)
    r0 = fitted.fuse(comps, dict(rgb_weight=0.0, agreement_weight=0.0, sigma_pct=0.0, max_weight=0.5))
    ok = np.isfinite(geo)
    np.testing.assert_allclose(r0.pixel_map[ok], geo[ok], rtol=1e-6, atol=1e-6)
    # rgb_weight = 0 ignores RGB even where geometry is undefined (missing points): no evidence there,
    # filled with the least anomalous value of the map
    assert (~ok).any()
    np.testing.assert_allclose(r0.pixel_map[~ok], np.nanmin(geo), rtol=1e-6)
    # smoothing keeps the ordering: the fused rgb map correlates with the smoothed rgb map
    rs = fitted.fuse(comps, dict(rgb_weight=1.0, agreement_weight=0.5, sigma_pct=1.5))
    assert np.corrcoef(rs.pixel_map.ravel(), rgb.ravel())[0, 1] > 0.9
    # the agreement term rewards pixels where both modalities agree
    # max_weight interpolates between the mean (0) and the max (1) of the modalities where both exist
    both = np.isfinite(geo)
    for g in (0.0, 0.3, 1.0):
        rg = fitted.fuse(comps, dict(rgb_weight=0.5, agreement_weight=0.0, sigma_pct=0.0, max_weight=g))
        mean, mx = (rgb[both] + geo[both]) / 2, np.maximum(rgb[both], geo[both])
        np.testing.assert_allclose(rg.pixel_map[both], (1 - g) * mean + g * mx, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rg.pixel_map[~both], rgb[~both], rtol=1e-5, atol=1e-5)
    rb = fitted.fuse(comps, dict(rgb_weight=0.5, agreement_weight=1.0, sigma_pct=0.0))
    expected = np.sqrt(np.maximum(rgb[both], 0) * np.maximum(geo[both], 0))
    np.testing.assert_allclose(rb.pixel_map[both], expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------ cancel / determinism
def test_cancel_raises_in_fit_and_extract(fitted):
    messages = []
    n = {"calls": 0}

    def cancel_after(k):
        def f():
            n["calls"] += 1
            return n["calls"] > k
        return f

    det = create("memory-bank", **FAST)
    with pytest.raises(Cancelled):
        det.fit([make_part(i) for i in range(3)], progress=lambda f, m: messages.append((f, m)),
                cancel=cancel_after(2))
    assert not det.fitted and messages
    n["calls"] = 0
    with pytest.raises(Cancelled):
        fitted.extract(make_part(3), cancel=cancel_after(1))
    assert n["calls"] == 2


def test_deterministic_and_one_shot():
    sup = [make_part(i) for i in range(2)]
    a, b = create("memory-bank", **FAST), create("memory-bank", **FAST)
    a.fit(sup)
    b.fit(sup)
    s = make_part(8, bump=True)
    ra, rb = a.score(s), b.score(s)
    np.testing.assert_array_equal(ra.pixel_map, rb.pixel_map)
    np.testing.assert_array_equal(ra.point_scores, rb.point_scores)
    # one shot works (leave-one-out replaced by excluding the query's own neighbourhood)
    one = create("memory-bank", **FAST)
    one.fit(sup[:1])
    r = one.score(s)
    region = defect_region(s.grid_shape, 0.8)
    assert np.nanmedian(r.components.maps["geometry"][region]) > 1.0


def test_fit_options_change_the_bank_and_still_detect():
    """Non-default fit options (plane context, no noise augmentation, no boundary strata) work."""
    sup = [make_part(i) for i in range(2)]
    base = create("memory-bank", **FAST)
    base.fit(sup)
    alt = create("memory-bank", plane_context=True, noise_augment=0.0, boundary_aware=False, **FAST)
    alt.fit(sup)
    assert alt._banks["geometry"].strata is None and base._banks["geometry"].strata is not None
    # noise augmentation adds descriptors to the bank before the coreset
    assert base._banks["geometry"].n_full > alt._banks["geometry"].n_full
    s = make_part(9, bump=True)
    m = alt.score(s).components.maps["geometry"]
    assert np.nanmedian(m[defect_region(s.grid_shape, 0.8)]) > np.nanpercentile(m[~defect_region(s.grid_shape, 2.5)], 99)


def test_errors_before_fit_and_without_support():
    det = create("memory-bank")
    with pytest.raises(RuntimeError, match="not fitted"):
        det.extract(make_part(0))
    with pytest.raises(InputError):
        det.fit([])
