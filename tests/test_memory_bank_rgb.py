"""Tests of the ``memory-bank`` RGB branch on real-like images: invariances of the descriptors,
texture / object modes, the calibrated threshold and the fitted state's round trip."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from core.detectors import create
from core.calibration import calibrate_threshold, false_alarm_rate, tolerance_threshold
from core.detectors.memory_bank.coreset import Whitener
from core.features.rgb import dominant_angles, rgb_descriptors
from core.detectors.state import FitState
from core.sample import Sample

SIZE = 160
# half the default working size; sigma_pct keeps the smoothing these tests were tuned with (4 working px)
FAST = dict(working_size=128, sigma_pct=100 * 4 / 128)


def texture(seed: int, size: int = SIZE, angle: float | None = None, defect: bool = False) -> np.ndarray:
    """A woven-looking texture: two crossing sets of dark bars, a random phase, a small random
    rotation, a slow illumination gradient and noise.  ``defect``: a bright, thick scratch."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    a = np.radians(rng.uniform(-8, 8) if angle is None else angle)
    u = xs * np.cos(a) + ys * np.sin(a) + rng.uniform(0, 12)
    v = -xs * np.sin(a) + ys * np.cos(a) + rng.uniform(0, 12)
    bars = np.maximum(np.cos(2 * np.pi * u / 12) > 0.6, np.cos(2 * np.pi * v / 12) > 0.6)
    img = 150 - 80 * bars + 20 * (xs / size - 0.5) * rng.uniform(-1, 1) + rng.normal(0, 5, (size, size))
    if defect:
        cv2.line(img, (40, 60), (75, 95), 255, 4)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return np.dstack([img] * 3)


def obj(seed: int, size: int = SIZE, defect: bool = False) -> np.ndarray:
    """An object: a yellow disc and a blue square on a dark, flat background (small shifts)."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 30.0)
    dx, dy = rng.integers(-3, 4, 2)
    cv2.circle(img, (70 + dx, 80 + dy), 40, (200, 170, 60), -1)
    cv2.rectangle(img, (115 + dx, 20 + dy), (145 + dx, 50 + dy), (60, 90, 200), -1)
    img += rng.normal(0, 4, img.shape)
    if defect:
        cv2.circle(img, (60 + dx, 70 + dy), 7, (90, 40, 30), -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def samples(make, seeds, **kw) -> list[Sample]:
    return [Sample(id=f"s{s}", class_name="c", rgb=make(s, **kw)) for s in seeds]


@pytest.fixture(scope="module")
def tex_det():
    det = create("memory-bank", **FAST)
    det.fit(samples(texture, range(4)), class_name="tex")
    return det


def score(det, rgb: np.ndarray) -> float:
    return det.score(Sample(id="q", class_name="c", rgb=rgb)).image_score


# ------------------------------------------------------------------------------ descriptors
def test_lightness_channels_ignore_brightness_and_contrast():
    img = texture(10)
    changed = np.clip(img.astype(np.float64) * 0.7 + 40, 0, 255).astype(np.uint8)
    d1, _, names = rgb_descriptors(img, 128, 4)
    d2, _, _ = rgb_descriptors(changed, 128, 4)
    structure = np.array([not n.startswith("colour") for n in names])
    rel = np.abs(d1[:, structure] - d2[:, structure]).mean() / np.abs(d1[:, structure]).mean()
    assert rel < 0.05
    # a planted defect changes the descriptors of its patches much more than that
    d3, _, _ = rgb_descriptors(texture(10, defect=True), 128, 4)
    rel_def = np.abs(d1[:, structure] - d3[:, structure]).max(1) / np.abs(d1[:, structure]).mean()
    assert rel_def.max() > 20 * rel


def test_dominant_angle_follows_rotation():
    a0 = dominant_angles(texture(3, angle=0.0), 128, 1)[0]
    a1 = dominant_angles(texture(3, angle=20.0), 128, 1)[0]
    diff = math.degrees(a1 - a0) % 90.0          # the bars cross at right angles
    assert min(abs(diff - 20.0), abs(diff - 20.0 + 90.0), abs(diff - 20.0 - 90.0)) < 6.0


def test_brightness_change_does_not_raise_score_defect_does(tex_det):
    good = texture(20)
    s_good = score(tex_det, good)
    s_bright = score(tex_det, np.clip(good.astype(np.float64) * 1.25 + 15, 0, 255).astype(np.uint8))
    s_dark = score(tex_det, np.clip(good.astype(np.float64) * 0.6, 0, 255).astype(np.uint8))
    s_def = score(tex_det, texture(20, defect=True))
    thr = tex_det.decision_threshold()
    assert s_bright < s_good + 0.25 * (s_def - s_good)
    assert s_dark < s_good + 0.25 * (s_def - s_good)
    assert s_def > thr > max(s_good, s_bright)


def test_defect_map_peaks_inside_the_defect(tex_det):
    r = tex_det.score(Sample(id="d", class_name="c", rgb=texture(21, defect=True)))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    cv2.line(mask, (40, 60), (75, 95), 1, 12)
    y, x = np.unravel_index(np.nanargmax(r.pixel_map), r.pixel_map.shape)
    assert mask[y, x]


def test_whitener_decorrelates_support():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 6)) @ rng.normal(size=(6, 6))
    w = Whitener.fit(x, np.array(["a"] * 6), shrink=0.0)
    c = np.cov(w(x).T)
    np.testing.assert_allclose(c, np.eye(6), atol=0.05)


# ------------------------------------------------------------------------------ modes
def test_auto_mode_texture_vs_object(tex_det):
    assert tex_det.state.meta["rgb_mode"] == "texture"
    det = create("memory-bank", **FAST)
    det.fit(samples(obj, range(3)), class_name="obj")
    assert det.state.meta["rgb_mode"] == "object"
    assert det.state.meta["stationarity"] > tex_det.state.meta["stationarity"]
    s_good = score(det, obj(30))
    s_def = score(det, obj(30, defect=True))
    assert s_def > det.decision_threshold() > s_good
    forced = create("memory-bank", rgb_mode="texture", **FAST)
    forced.fit(samples(obj, range(3)), class_name="obj")
    assert forced.state.meta["rgb_mode"] == "texture"


def test_object_mode_uses_position():
    """The same patch content at a place where good parts never have it is anomalous in object
    mode (a blue square moved onto the background), not in texture mode."""
    moved = obj(40)
    block = moved[10:60, 105:155].copy()              # the square with its background margin
    moved[10:60, 105:155] = moved[105:155, 105:155]   # background there ...
    moved[105:155, 105:155] = block                   # ... and the square down in the corner
    scores = {}
    for mode in ("object", "texture"):
        det = create("memory-bank", rgb_mode=mode, **FAST)
        det.fit(samples(obj, range(3)), class_name="obj")
        scores[mode] = score(det, moved) / det.decision_threshold()
    assert scores["object"] > 1.0
    assert scores["object"] > 1.5 * scores["texture"]


# ------------------------------------------------------------------------------ calibration
def test_calibration_empirical_quantile_on_many_scores():
    rng = np.random.default_rng(1)
    good = rng.normal(10.0, 2.0, 2000)
    thr = calibrate_threshold(good, 0.05)
    assert abs(thr - (10.0 + 1.6449 * 2.0)) < 0.25
    fresh = rng.normal(10.0, 2.0, 20000)
    assert abs(false_alarm_rate(fresh, thr) - 0.05) < 0.01
    assert calibrate_threshold(good, 0.01) > thr


def test_calibration_normal_fit_on_few_scores():
    v = [1.0, 1.4, 0.8, 1.2, 1.6]
    expected = np.mean(v) + 1.6448536 * np.std(v, ddof=1)
    assert calibrate_threshold(v, 0.05) == pytest.approx(expected, rel=1e-6)
    # nearly equal scores: the spread is floored at a fraction of the mean
    tight = [1.0, 1.01, 0.99]
    assert calibrate_threshold(tight, 0.05) == pytest.approx(1.0 + 1.6448536 * 0.15, rel=1e-3)
    # one score: the spread floor (a fraction of the score), never the score itself
    assert calibrate_threshold([2.0], 0.05) > 2.0
    assert math.isnan(calibrate_threshold([], 0.05))
    with pytest.raises(ValueError):
        calibrate_threshold(v, 0.0)


@pytest.mark.parametrize("n", [5, 60])
def test_tolerance_bound_keeps_false_alarms_below_target_with_its_confidence(n):
    # normal good scores: over many calibrations, the realised false-alarm rate of the threshold
    # is at most the target in about `confidence` of them (the plain estimate: about half)
    rng = np.random.default_rng(1)
    q95 = 1.0 + 0.3 * 1.6448536   # true 95 % quantile of N(1, 0.3) (sd above the floor)
    held = [tolerance_threshold(rng.normal(1.0, 0.3, n), 0.05, 0.9) >= q95 for _ in range(400)]
    plain = [calibrate_threshold(rng.normal(1.0, 0.3, n), 0.05) >= q95 for _ in range(400)]
    assert 0.85 <= np.mean(held) <= 0.97
    assert np.mean(plain) < 0.75
    # many scores: distribution-free, an order statistic of the scores
    v = rng.normal(1.0, 0.2, 200)
    assert tolerance_threshold(v, 0.05, 0.9) in set(v)


def test_validation_parts_replace_leave_one_out_in_calibration(tmp_path):
    det = create("memory-bank", **FAST)
    det.fit(samples(texture, range(3)), class_name="tex")
    loo = det.calibration_scores()
    val = [det.extract(Sample(id=f"v{i}", class_name="c", rgb=texture(30 + i))) for i in range(6)]
    val_scores = [det.fuse(c, {"sigma_pct": det["sigma_pct"]}).image_score for c in val]
    st = det.calibrate(val)
    got = det.calibration_scores()
    assert len(got) == 6 and len(loo) == 3
    # the stored patch-grid maps give (nearly) the scores of the full-resolution maps
    np.testing.assert_allclose(np.sort(got), np.sort(val_scores), rtol=0.05, atol=0.05)
    assert det.calibrated_threshold() == pytest.approx(tolerance_threshold(got, 0.05, 0.9))
    other = create("memory-bank", **FAST)
    other.load_state(FitState.load(st.save(tmp_path / "fit")))
    np.testing.assert_allclose(other.calibration_scores(), got, rtol=1e-6)


def test_false_alarm_rate_counts_at_or_above():
    assert false_alarm_rate([0.1, 0.5, 1.0, 2.0], 1.0) == 0.5
    assert math.isnan(false_alarm_rate([], 1.0))


def test_result_threshold_is_calibrated_and_override_wins(tex_det):
    rgb = Sample(id="q", class_name="c", rgb=texture(22))
    comps = tex_det.extract(rgb)
    r = tex_det.fuse(comps)
    assert r.threshold == pytest.approx(tex_det.calibrated_threshold())
    loo = tex_det.calibration_scores()
    assert len(loo) == 4
    assert r.threshold == pytest.approx(tolerance_threshold(loo, 0.05, 0.9))
    # confidence 0.5: the plain quantile estimate, lower than the upper confidence limit
    plain = tex_det.fuse(comps, {"calibration_confidence": 0.5}).threshold
    assert plain == pytest.approx(calibrate_threshold(loo, 0.05)) and plain < r.threshold
    assert tex_det.fuse(comps, {"false_alarm_rate": 0.01}).threshold > r.threshold
    assert tex_det.fuse(comps, {"threshold": 3.5}).threshold == 3.5
    # the calibration follows the fusion parameters (a stronger smoothing lowers the scores)
    assert tex_det.fuse(comps, {"sigma_pct": 12.5}).threshold != pytest.approx(r.threshold)


# ------------------------------------------------------------------------------ fit state
def test_fit_state_round_trip(tmp_path, tex_det):
    st = tex_det.state
    assert {"rgb.proj", "rgb.centre", "calib.rgb"} <= set(st.arrays)
    path = st.save(tmp_path / "fit")
    back = FitState.load(path, detector="memory-bank", version=tex_det.state_version)
    other = create("memory-bank", **FAST)
    other.load_state(back)
    q = Sample(id="q", class_name="c", rgb=texture(23, defect=True))
    a, b = tex_det.score(q), other.score(q)
    assert b.image_score == pytest.approx(a.image_score, rel=1e-5)
    assert b.threshold == pytest.approx(a.threshold, rel=1e-6)
    np.testing.assert_allclose(b.pixel_map, a.pixel_map, rtol=1e-4, atol=1e-5)

    det = create("memory-bank", rgb_mode="object", **FAST)
    det.fit(samples(obj, range(2)), class_name="obj")
    assert "rgb.positions" in det.state.arrays
    other = create("memory-bank", rgb_mode="object", **FAST)
    other.load_state(FitState.load(det.state.save(tmp_path / "obj")))
    q = Sample(id="o", class_name="c", rgb=obj(41, defect=True))
    assert other.score(q).image_score == pytest.approx(det.score(q).image_score, rel=1e-5)
