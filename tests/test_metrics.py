"""Tests of core.metrics: cross-checks against scikit-learn and brute force, hand-solved cases."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from core import metrics
from core.detectors.base import Components, DetectorResult
from core.metrics import (
    METRIC_KEYS, EvalAccumulator, UndefinedMetricWarning, aupro, aupro_1, aupro_30, f1_max,
    image_ap, image_auroc, pixel_auroc, point_auroc, pro_curve,
)
from core.sample import Sample, resize_map


# ------------------------------------------------------------------------------ helpers
def quantized(rng, shape, levels=12):
    """float32 scores with many ties."""
    return (rng.integers(0, levels, size=shape) / 4.0).astype(np.float32)


def random_masks(rng, shapes, p_good=0.3):
    """Masks made of a few random blobs (several components, some touching diagonally)."""
    out = []
    for h, w in shapes:
        m = np.zeros((h, w), bool)
        if rng.random() > p_good:
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, h), rng.integers(0, w)
                m[y:y + rng.integers(1, 4), x:x + rng.integers(1, 5)] = True
            m |= rng.random((h, w)) < 0.03  # isolated pixels: extra tiny regions
        out.append(m)
    return out


def brute_pro_curve(masks, maps, valid=None):
    """Independent reference: loop over every distinct threshold, count directly.

    Regions: 8-connected components of each full mask, restricted to valid pixels, empty ones
    dropped.  NaN scores rank lowest.
    """
    maps = [np.where(np.isnan(s), -np.inf, s.astype(np.float64)) for s in maps]
    valid = [np.ones(m.shape, bool) if valid is None or valid[i] is None else valid[i]
             for i, m in enumerate(masks)]
    regions = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        for k in range(1, n + 1):
            r = (lab == k) & valid[i]
            if r.any():
                regions.append(maps[i][r])
    normal = np.concatenate([s[~m & v] for m, s, v in zip(masks, maps, valid)])
    everything = np.concatenate([s[v] for s, v in zip(maps, valid)])
    fprs, pros = [0.0], [0.0]
    for t in sorted(set(everything.tolist()), reverse=True):
        fprs.append(float(np.mean(normal >= t)))
        pros.append(float(np.mean([np.mean(r >= t) for r in regions])))
    return np.array(fprs + [1.0]), np.array(pros + [1.0])


def brute_area(fprs, pros, limit):
    """Trapezoid area up to ``limit`` with the crossing segment interpolated, divided by limit."""
    area = 0.0
    for k in range(1, len(fprs)):
        x0, x1, y0, y1 = fprs[k - 1], fprs[k], pros[k - 1], pros[k]
        if x0 >= limit:
            break
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
        else:
            y = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y) / 2
            break
    return area / limit


def sk_pixel_auroc(masks, maps):
    return roc_auc_score(np.concatenate([m.ravel() for m in masks]),
                         np.concatenate([s.ravel() for s in maps]))


# ------------------------------------------------------------------------------ image level
@pytest.mark.parametrize("seed", range(5))
def test_image_metrics_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    y = rng.random(n) < 0.4
    y[:2] = [True, False]
    s = rng.integers(0, 6, n).astype(float)  # many ties
    assert image_auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert image_ap(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    # 0/1 int labels are the same as bool labels
    assert image_auroc(y.astype(int), s) == image_auroc(y, s)


@pytest.mark.parametrize("seed", range(5))
def test_f1_max_matches_precision_recall_curve(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    y = rng.random(n) < 0.3
    y[:2] = [True, False]
    s = rng.integers(0, 8, n) * 0.5
    f1, thr = f1_max(y, s)
    p, r, thresholds = precision_recall_curve(y, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        sk_f1 = np.nan_to_num(2 * p * r / (p + r))
    assert f1 == pytest.approx(sk_f1.max(), abs=1e-12)
    # the threshold reproduces the F1 with the rule score >= threshold...
    pred = s >= thr
    tp = np.sum(pred & y)
    assert 2 * tp / (pred.sum() + y.sum()) == pytest.approx(f1, abs=1e-12)
    # ...and is the highest threshold that does
    best = [t for t, f in zip(thresholds, sk_f1[:-1]) if abs(f - f1) < 1e-12]
    assert thr == max(best)


def test_image_metrics_hand_cases():
    assert image_auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert image_auroc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert image_auroc([0, 1], [0.5, 0.5]) == 0.5
    # one positive ranked second of 4: AP = precision at its rank = 1/2
    assert image_ap([0, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == pytest.approx(0.5)
    assert f1_max([0, 1, 1, 0], [0.1, 0.7, 0.9, 0.8]) == (pytest.approx(0.8), 0.7)
    # F1 = 2/3 at thresholds 4 (1 TP, 0 FP) and 1 (2 TP, 2 FP): the highest one is returned
    assert f1_max([1, 0, 0, 1], [4, 3, 2, 1]) == (pytest.approx(2 / 3), 4.0)


def test_nan_scores_rank_lowest():
    y = np.array([1, 0, 1, 0, 1])
    s = np.array([np.nan, 0.5, 0.9, np.nan, 0.2])
    filled = np.where(np.isnan(s), -10.0, s)
    assert image_auroc(y, s) == image_auroc(y, filled)
    assert image_ap(y, s) == image_ap(y, filled)
    assert f1_max(y, s)[0] == f1_max(y, filled)[0]


def test_one_class_is_nan_with_warning():
    for fn in (image_auroc, image_ap):
        with pytest.warns(UndefinedMetricWarning, match="both good and anomalous"):
            assert math.isnan(fn([1, 1, 1], [0.1, 0.2, 0.3]))
    with pytest.warns(UndefinedMetricWarning):
        f1, thr = f1_max([0, 0], [0.1, 0.2])
    assert math.isnan(f1) and math.isnan(thr)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(image_auroc([], []))


def test_bad_image_input_raises_clear_errors():
    with pytest.raises(ValueError, match="0/1"):
        image_auroc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="3 values but the labels have 2"):
        image_auroc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="real numbers"):
        image_auroc([0, 1], ["a", "b"])


# ------------------------------------------------------------------------------ pixel / point AUROC
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p_anom", [0.1, 0.8])  # exercises both search directions
def test_pixel_auroc_matches_sklearn_with_ties(seed, p_anom):
    rng = np.random.default_rng(seed)
    shapes = [(int(rng.integers(3, 20)), int(rng.integers(3, 20))) for _ in range(5)]
    masks = [rng.random(s) < p_anom for s in shapes]
    maps = [quantized(rng, s) + 0.5 * m for s, m in zip(shapes, masks)]
    assert pixel_auroc(masks, maps) == pytest.approx(sk_pixel_auroc(masks, maps), abs=1e-12)


def test_pixel_auroc_accepts_png_style_masks_and_stacks():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 6, 7)) < 0.2
    maps = rng.random((4, 6, 7)).astype(np.float32)
    ref = sk_pixel_auroc(list(masks), list(maps))
    assert pixel_auroc((masks * 255).astype(np.uint8), maps) == pytest.approx(ref, abs=1e-12)


def test_chunked_search_is_the_same(monkeypatch):
    rng = np.random.default_rng(3)
    masks = [rng.random((15, 17)) < 0.3 for _ in range(3)]
    maps = [quantized(rng, (15, 17)) for _ in range(3)]
    full = (pixel_auroc(masks, maps), aupro(masks, maps, 0.3))
    monkeypatch.setattr(metrics, "_CHUNK", 7)
    assert (pixel_auroc(masks, maps), aupro(masks, maps, 0.3)) == pytest.approx(full, abs=1e-12)


def test_pixel_auroc_nan_and_valid():
    rng = np.random.default_rng(4)
    masks = [rng.random((9, 11)) < 0.3 for _ in range(3)]
    maps = [rng.random((9, 11)).astype(np.float32) for _ in range(3)]
    holes = [rng.random((9, 11)) < 0.2 for _ in range(3)]
    with_nan = [np.where(h, np.nan, s).astype(np.float32) for s, h in zip(maps, holes)]
    lowest = [np.where(h, -1.0, s).astype(np.float32) for s, h in zip(maps, holes)]
    # NaN ranks lowest (ties among themselves)
    assert pixel_auroc(masks, with_nan) == pytest.approx(sk_pixel_auroc(masks, lowest), abs=1e-12)
    # valid=False pixels are left out
    keep = [~h for h in holes]
    ref = roc_auc_score(np.concatenate([m[k] for m, k in zip(masks, keep)]),
                        np.concatenate([s[k] for s, k in zip(maps, keep)]))
    assert pixel_auroc(masks, with_nan, valid=keep) == pytest.approx(ref, abs=1e-12)
    # None in the valid list means "every pixel of that image" (its NaN then rank lowest)
    ref = roc_auc_score(np.concatenate([masks[0][keep[0]], masks[1].ravel(), masks[2][keep[2]]]),
                        np.concatenate([maps[0][keep[0]], lowest[1].ravel(), maps[2][keep[2]]]))
    assert pixel_auroc(masks, with_nan, valid=[keep[0], None, keep[2]]) == pytest.approx(ref, abs=1e-12)


def test_pixel_shape_errors_name_the_index():
    masks = [np.zeros((4, 4), bool), np.zeros((4, 5), bool)]
    with pytest.raises(ValueError, match=r"map 1 has shape \(4, 4\) but its mask has shape \(4, 5\)"):
        pixel_auroc(masks, [np.zeros((4, 4)), np.zeros((4, 4))])
    with pytest.raises(ValueError, match="2 masks but 1 maps"):
        pixel_auroc(masks, [np.zeros((4, 4))])
    with pytest.raises(ValueError, match="mask 0 must be a 2-D array"):
        aupro([np.zeros(4, bool)], [np.zeros(4)])
    with pytest.raises(ValueError, match="valid mask 0"):
        pixel_auroc(masks[:1], [np.zeros((4, 4))], valid=[np.ones((3, 3), bool)])


def test_pixel_undefined_is_nan_with_warning():
    good = [np.zeros((5, 5), bool)] * 2
    maps = [np.random.default_rng(0).random((5, 5))] * 2
    with pytest.warns(UndefinedMetricWarning, match="no anomalous pixel"):
        assert math.isnan(pixel_auroc(good, maps))
    with pytest.warns(UndefinedMetricWarning, match="no anomalous region"):
        assert math.isnan(aupro(good, maps))
    with pytest.warns(UndefinedMetricWarning, match="no normal pixel"):
        assert math.isnan(aupro([np.ones((5, 5), bool)], maps[:1]))
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(pixel_auroc([], []))


@pytest.mark.parametrize("seed", range(3))
def test_point_auroc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels = [rng.random(n) < 0.05 for n in (50, 300, 7)]
    labels[0][:3] = True
    scores = [quantized(rng, lab.shape, levels=30) + lab for lab in labels]
    ref = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
    assert point_auroc(labels, scores) == pytest.approx(ref, abs=1e-12)
    assert point_auroc([lab.astype(int) for lab in labels], scores) == pytest.approx(ref, abs=1e-12)
    # a single cloud may be passed as plain arrays
    assert point_auroc(labels[1], scores[1]) == pytest.approx(roc_auc_score(labels[1], scores[1]), abs=1e-12)


def test_point_auroc_errors():
    with pytest.raises(ValueError, match="cloud 1: 3 point scores but 4 point labels"):
        point_auroc([np.zeros(2, bool), np.zeros(4, bool)], [np.zeros(2), np.zeros(3)])
    with pytest.raises(ValueError, match="point labels 0 must be bool or 0/1"):
        point_auroc([np.array([0, 3])], [np.zeros(2)])


# ------------------------------------------------------------------------------ AU-PRO
def test_aupro_hand_cases():
    gt = np.zeros((6, 6), bool)
    gt[1:3, 1:3] = True          # region A (4 px)
    gt[4:6, 4:6] = True          # region B (4 px)
    normal = ~gt
    # perfect map -> 1
    perfect = gt.astype(np.float32)
    for limit in (0.01, 0.3, 1.0):
        assert aupro([gt], [perfect], limit) == pytest.approx(1.0, abs=1e-12)
    # every normal pixel above every anomalous pixel -> 0
    assert aupro([gt], [normal.astype(np.float32)], 0.3) == pytest.approx(0.0, abs=1e-12)
    assert aupro([gt], [normal.astype(np.float32)], 1.0) == pytest.approx(0.0, abs=1e-12)
    # A fully detected, B half detected (its other half ranks below every normal pixel):
    # the curve jumps to PRO = (1 + 0.5) / 2 at FPR 0 and stays there until FPR 1 -> 0.75
    m = np.zeros((6, 6), np.float32)
    m[gt] = 2.0
    m[4, 4:6] = -1.0
    assert aupro([gt], [m], 0.3) == pytest.approx(0.75, abs=1e-12)
    assert aupro_30([gt], [m]) == aupro([gt], [m], 0.3)
    assert aupro_1([gt], [m]) == pytest.approx(0.75, abs=1e-12)
    # half of the normal pixels above everything: PRO 0 until FPR 0.5, then 0.75
    top = np.zeros((6, 6), bool)
    top[np.nonzero(normal)[0][:14], np.nonzero(normal)[1][:14]] = True   # 14 of 28 normal pixels
    m2 = m.copy()
    m2[top] = 3.0
    assert aupro([gt], [m2], 0.3) == pytest.approx(0.0, abs=1e-12)
    assert aupro([gt], [m2], 1.0) == pytest.approx(0.375, abs=1e-12)
    assert aupro([gt], [m2], 0.75) == pytest.approx(0.25, abs=1e-12)


def test_aupro_interpolates_inside_a_tied_segment():
    # 4 normal pixels tied with one pixel of a 2-pixel region, the other pixel above:
    # curve (0, 0) -> (0, 0.5) -> (1, 1); at FPR 0.3 the PRO is 0.65
    gt = np.array([[1, 1, 0, 0, 0, 0]], bool)
    m = np.array([[2, 1, 1, 1, 1, 1]], np.float32)
    assert aupro([gt], [m], 0.3) == pytest.approx(0.5 * (0.5 + 0.65) * 0.3 / 0.3, abs=1e-12)
    fprs, pros = pro_curve([gt], [m])
    np.testing.assert_allclose(fprs, [0, 0, 1, 1])
    np.testing.assert_allclose(pros, [0, 0.5, 1, 1])


def test_regions_are_8_connected():
    # an L of 3 pixels plus one pixel touching it diagonally: one region of 4 (8-connectivity);
    # only the diagonal pixel is detected -> PRO 1/4 (4-connectivity would give (0 + 1) / 2)
    gt = np.zeros((5, 5), bool)
    gt[1, 1] = gt[2, 1] = gt[2, 2] = True
    gt[3, 3] = True
    m = np.zeros((5, 5), np.float32)
    m[3, 3] = 1.0
    fprs, pros = pro_curve([gt], [m])
    assert fprs[1] == 0.0 and pros[1] == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(6))
def test_aupro_and_curve_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    shapes = [(int(rng.integers(4, 14)), int(rng.integers(4, 14))) for _ in range(4)]
    masks = random_masks(rng, shapes)
    masks[0][0, 0] = True  # at least one region
    maps = [quantized(rng, s, levels=int(rng.integers(3, 40))) + 0.4 * m for s, m in zip(shapes, masks)]
    if seed % 2:  # some NaN (ranked lowest)
        maps[1][rng.random(shapes[1]) < 0.2] = np.nan
    fprs, pros = brute_pro_curve(masks, maps)
    got_f, got_p = pro_curve(masks, maps)
    np.testing.assert_allclose(got_f, fprs, atol=1e-12)
    np.testing.assert_allclose(got_p, pros, atol=1e-12)
    for limit in (0.3, 0.01, 0.05, 0.123, 0.5, 1.0):
        assert aupro(masks, maps, limit) == pytest.approx(brute_area(fprs, pros, limit), abs=1e-6)


def test_aupro_with_valid_matches_brute_force():
    rng = np.random.default_rng(11)
    shapes = [(10, 12), (8, 9), (11, 7)]
    masks = random_masks(rng, shapes, p_good=0.0)
    maps = [quantized(rng, s, levels=20) + 0.5 * m for s, m in zip(shapes, masks)]
    valid = [rng.random(s) > 0.25 for s in shapes]
    valid[2] = None
    fprs, pros = brute_pro_curve(masks, maps, valid)
    np.testing.assert_allclose(pro_curve(masks, maps, valid)[1], pros, atol=1e-12)
    for limit in (0.3, 0.01, 1.0):
        assert aupro(masks, maps, limit, valid) == pytest.approx(brute_area(fprs, pros, limit), abs=1e-6)


def test_aupro_valid_drops_regions_without_valid_pixels():
    gt = np.zeros((6, 6), bool)
    gt[0:2, 0:2] = True      # region A: detected
    gt[4:6, 4:6] = True      # region B: missed
    m = np.zeros((6, 6), np.float32)
    m[0:2, 0:2] = 1.0
    m[4:6, 4:6] = -1.0
    assert aupro([gt], [m], 0.3) == pytest.approx(0.5, abs=1e-12)
    valid = ~gt.copy()
    valid[0:2, 0:2] = True   # B has no valid pixel left: it is no region any more
    assert aupro([gt], [m], 0.3, valid=[valid]) == pytest.approx(1.0, abs=1e-12)


def test_aupro_limit_is_checked():
    gt = [np.eye(4, dtype=bool)]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        aupro(gt, [np.zeros((4, 4))], limit=0.0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        aupro(gt, [np.zeros((4, 4))], limit=1.5)


def test_metrics_are_invariant_to_monotone_transforms():
    rng = np.random.default_rng(5)
    shapes = [(12, 10), (9, 13), (10, 10)]
    masks = random_masks(rng, shapes, p_good=0.0)
    maps = [quantized(rng, s, levels=24) + 0.5 * m for s, m in zip(shapes, masks)]
    warped = [(np.exp(s.astype(np.float64)) * 3 - 7).astype(np.float32) for s in maps]
    for limit in (0.3, 0.01):
        assert aupro(masks, warped, limit) == pytest.approx(aupro(masks, maps, limit), abs=1e-12)
    assert pixel_auroc(masks, warped) == pytest.approx(pixel_auroc(masks, maps), abs=1e-12)
    y = np.array([m.any() for m in masks] + [False, True, False])
    s = np.array([x.max() for x in maps] + [0.5, 1.75, 2.0])
    t = np.exp(s) * 3 - 7
    assert image_auroc(y, t) == image_auroc(y, s)
    assert image_ap(y, t) == image_ap(y, s)
    f_s, thr_s = f1_max(y, s)
    f_t, thr_t = f1_max(y, t)
    assert f_t == f_s and thr_t == pytest.approx(np.exp(thr_s) * 3 - 7)


# ------------------------------------------------------------------------------ accumulator
def test_accumulator_on_a_mixture():
    rng = np.random.default_rng(7)
    acc = EvalAccumulator()
    labels, scores, masks, maps, plabels, pscores = [], [], [], [], [], []
    for i in range(12):
        anomalous = i % 3 == 0
        score = float(rng.integers(0, 5)) + anomalous
        shape = (int(rng.integers(5, 12)), int(rng.integers(5, 12)))
        mask = random_masks(rng, [shape], p_good=0.0)[0] if anomalous else np.zeros(shape, bool)
        amap = quantized(rng, shape) + 0.5 * mask
        has_map = i % 4 != 1           # some samples without mask/map
        has_cloud = i % 2 == 0         # some samples without cloud
        pl = rng.random(30) < (0.2 if anomalous else 0.0)
        ps = rng.random(30).astype(np.float32) + 0.3 * pl
        acc.add(label=anomalous, score=score, mask=mask if has_map else None,
                pixel_map=amap if has_map else None, point_labels=pl if has_cloud else None,
                point_scores=ps if has_cloud else None)
        labels.append(anomalous)
        scores.append(score)
        if has_map:
            masks.append(mask)
            maps.append(amap)
        if has_cloud:
            plabels.append(pl)
            pscores.append(ps)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything is defined here
        res = acc.compute()
    assert tuple(res) == METRIC_KEYS and len(acc) == 12
    assert res["n_images"] == 12 and res["n_anomalous"] == 4
    assert res["n_pixel_images"] == len(masks) and res["n_clouds"] == len(plabels)
    assert res["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert res["image_ap"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert res["pixel_auroc"] == pytest.approx(sk_pixel_auroc(masks, maps), abs=1e-12)
    fprs, pros = brute_pro_curve(masks, maps)
    assert res["aupro_30"] == pytest.approx(brute_area(fprs, pros, 0.3), abs=1e-6)
    assert res["aupro_1"] == pytest.approx(brute_area(fprs, pros, 0.01), abs=1e-6)
    assert res["point_auroc"] == pytest.approx(
        roc_auc_score(np.concatenate(plabels), np.concatenate(pscores)), abs=1e-12)
    assert (res["f1_max"], res["f1_threshold"]) == f1_max(labels, scores)


@pytest.mark.parametrize("anomalous", [False, True])
def test_accumulator_single_class_gives_nan_not_crash(anomalous):
    rng = np.random.default_rng(8)
    acc = EvalAccumulator()
    for _ in range(3):
        mask = np.zeros((6, 6), bool)
        if anomalous:
            mask[2:4, 2:4] = True
        acc.add(anomalous, rng.random(), mask, rng.random((6, 6)))
    with pytest.warns(UndefinedMetricWarning, match="some metrics are NaN") as rec:
        res = acc.compute()
    assert len(rec) == 1
    for key in ("image_auroc", "image_ap", "f1_max", "f1_threshold", "point_auroc"):
        assert math.isnan(res[key])
    assert res["n_images"] == 3 and res["n_anomalous"] == (3 if anomalous else 0)
    if anomalous:  # pixels of both classes exist: pixel metrics are defined
        assert 0.0 <= res["pixel_auroc"] <= 1.0 and 0.0 <= res["aupro_30"] <= 1.0
    else:
        assert math.isnan(res["pixel_auroc"]) and math.isnan(res["aupro_30"])


def test_empty_accumulator():
    with pytest.warns(UndefinedMetricWarning):
        res = EvalAccumulator().compute()
    assert res["n_images"] == 0 and math.isnan(res["image_auroc"]) and math.isnan(res["pixel_auroc"])


def test_accumulator_downsamples_large_maps_by_area():
    rng = np.random.default_rng(9)
    small_masks = random_masks(rng, [(8, 6)] * 3, p_good=0.0)
    small_maps = [rng.random((8, 6)).astype(np.float32) for _ in range(3)]
    small_maps[1][0, :3] = np.nan
    block = np.ones((2, 2))
    acc = EvalAccumulator(max_side=8)
    for m, s in zip(small_masks, small_maps):
        # 16 x 12 maps made of 2 x 2 constant blocks: area downsampling must give the small map back
        acc.add(True, 1.0, np.kron(m, block).astype(bool), np.kron(s, block).astype(np.float32))
    acc.add(False, 0.0, np.zeros((8, 6), bool), np.zeros((8, 6), np.float32))  # small: kept as is
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        res = acc.compute()
    ref_masks = small_masks + [np.zeros((8, 6), bool)]
    ref_maps = small_maps + [np.zeros((8, 6), np.float32)]
    assert res["pixel_auroc"] == pytest.approx(pixel_auroc(ref_masks, ref_maps), abs=1e-12)
    assert res["aupro_30"] == pytest.approx(aupro(ref_masks, ref_maps, 0.3), abs=1e-12)
    # without downsampling: exact at full resolution
    full = EvalAccumulator(max_side=None)
    big_masks = [np.kron(m, block).astype(bool) for m in small_masks]
    big_maps = [np.kron(s, block).astype(np.float32) for s in small_maps]
    for m, s in zip(big_masks, big_maps):
        full.add(True, 1.0, m, s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        assert full.compute()["aupro_30"] == pytest.approx(aupro(big_masks, big_maps, 0.3), abs=1e-12)


def test_accumulator_rejects_bad_samples_without_storing_them():
    acc = EvalAccumulator()
    with pytest.raises(ValueError, match="map of sample 0 has shape"):
        acc.add(True, 1.0, np.zeros((4, 4), bool), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="sample 0: 3 point scores but 2 point labels"):
        acc.add(True, 1.0, point_labels=[0, 1], point_scores=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="label of sample 0"):
        acc.add(5, 1.0)
    assert len(acc) == 0
    with pytest.raises(ValueError, match="max_side"):
        EvalAccumulator(max_side=0)


def test_accumulator_add_result_with_samples():
    rng = np.random.default_rng(10)
    acc, ref = EvalAccumulator(), EvalAccumulator()
    for i in range(4):
        anomalous = i % 2 == 1
        pts = rng.random((10, 12, 3)).astype(np.float32)
        pts[0, :4] = np.nan  # missing points
        gt = None
        if anomalous:
            gt = np.zeros((10, 12), bool)
            gt[3:6, 4:8] = True
        sample = Sample(id=str(i), label="hole" if anomalous else "good",
                        rgb=np.zeros((10, 12, 3), np.uint8), points=pts, gt_mask=gt)
        low = rng.random((5, 6)).astype(np.float32)       # detector worked at a lower resolution
        point_scores = rng.random(sample.n_points).astype(np.float32)
        valid = sample.valid_mask()
        result = DetectorResult(components=Components(valid=valid), pixel_map=low,
                                point_scores=point_scores, image_score=float(rng.random()))
        acc.add_result(sample, result, exclude_invalid=True)
        ref.add(anomalous, result.image_score, sample.pixel_gt(), resize_map(low, (10, 12)),
                sample.point_gt(), point_scores, valid=valid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        got, want = acc.compute(), ref.compute()
    assert got["n_pixel_images"] == 4 and got["n_clouds"] == 4
    np.testing.assert_equal([got[k] for k in METRIC_KEYS], [want[k] for k in METRIC_KEYS])
