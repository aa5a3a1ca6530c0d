"""The shared post-processing (core.detectors.postprocess), the one smoothing unit, and the renamed
fusion parameters (core.detectors.aliases).

Each detector's refactored ``fuse`` is checked against its pre-refactor formula written out here
with numpy / OpenCV, on random components, with the old parameter names and units read through
the alias table: the same meaning gives the same result."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from core import cli
from core.detectors import create
from core.detectors.aliases import CLIP_INPUT, migrate_params
from core.detectors.base import STAGE_FIT, Components
from core.detectors.postprocess import finish, sample_points, sigma_px, smooth_fill
from core.errors import InvalidParameterError
from core.project import Project, restore_session
from core.session import Session, ThreadBackend

H = W = 48


# ---------------------------------------------------------------------- the pre-refactor formulas
def old_smooth_fill(m: np.ndarray, sigma: float) -> np.ndarray:
    """Normalized convolution with an exact Gaussian (sigma in pixels); pixels without a defined
    neighbour get the smallest defined value."""
    m = np.asarray(m, np.float32)
    ok = np.isfinite(m)
    if sigma <= 0:
        out = m.copy()
    else:
        def blur(x):
            return cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
        num, den = blur(np.where(ok, m, 0)), blur(ok)
        out = np.where(den > 1e-3, num / np.maximum(den, 1e-12), np.nan).astype(np.float32)
    out[~np.isfinite(out)] = np.nanmin(m)
    return out


def old_result(fused: np.ndarray, sigma: float, top: float, valid: np.ndarray):
    sm = old_smooth_fill(fused, sigma)
    v = np.sort(sm[np.isfinite(fused)])
    score = v[-1] if top <= 0 else v[v.size - max(1, int(round(v.size * top))):].mean()
    near = cv2.resize(sm, (valid.shape[1], valid.shape[0]), interpolation=cv2.INTER_NEAREST)
    return sm, near[valid], float(score)


def nan_mean(maps: dict, w: dict) -> np.ndarray:
    num = sum(np.where(np.isfinite(m), m, 0) * w[k] for k, m in maps.items())
    den = sum(np.isfinite(m) * w[k] for k, m in maps.items())
    return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)


def random_maps(seed: int, hole: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rgb = cv2.GaussianBlur(rng.normal(0.3, 1.0, (H, W)).astype(np.float32), (0, 0), 1.5)
    geo = cv2.GaussianBlur(rng.normal(0.2, 1.2, (H, W)).astype(np.float32), (0, 0), 1.5)
    geo[:, 20:23] = np.nan          # missing points: a narrow band, smoothing fills it
    if hole:
        geo[36:, 36:] = np.nan      # and a hole wider than the smoothing reaches
    valid = np.zeros((24, 24), bool)   # the organized cloud's own (coarser) grid
    valid[2:22, 3:20] = True
    return rgb, geo, valid


def fuse_only(detector_id: str, saved: dict) -> dict:
    """Old saved / typed params -> today's fusion params (the fit-stage ones dropped)."""
    fit = {p.name for p in create(detector_id).params if p.stage == STAGE_FIT}
    return {k: v for k, v in migrate_params(detector_id, saved).items() if k not in fit}


# ---------------------------------------------------------------------- the module
def test_sigma_is_a_percentage_of_the_longer_side():
    assert sigma_px(1.5, (800, 600)) == pytest.approx(12.0)
    assert sigma_px(1.5, (64, 64)) == pytest.approx(0.96)
    assert sigma_px(3.0, None) == 0.0


def test_finish_fills_scores_defined_pixels_and_samples_points():
    m = np.full((30, 40), np.nan, np.float32)
    m[:, :20] = np.linspace(0.2, 1, 20, dtype=np.float32)[None, :]
    m[5, 5] = 9.0
    valid = np.zeros((15, 20), bool)
    valid[::2, ::3] = True
    done = finish(m, 5.0, 0.0, valid)
    assert np.isfinite(done.pixel_map).all() and done.pixel_map.dtype == np.float32
    # far from any defined pixel: the least anomalous defined value, not 0 or NaN
    assert done.pixel_map[:, -1] == pytest.approx(np.full(30, 0.2))
    # the score only reads pixels the fused map defines
    assert done.image_score == pytest.approx(float(done.pixel_map[:, :20].max()))
    near = cv2.resize(done.pixel_map, (20, 15), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(done.point_scores, near[valid])
    assert finish(m, 5.0, 0.0, None).point_scores is None
    np.testing.assert_array_equal(smooth_fill(np.full((4, 4), np.nan), 2.0), 0.0)
    # bilinear sampling reads undefined pixels as 0
    pts = sample_points(np.where(m > 0.5, np.nan, m), valid, cv2.INTER_LINEAR)
    assert np.isfinite(pts).all() and pts.shape == (int(valid.sum()),)


# ---------------------------------------------------------------------- same meaning, same result
@pytest.mark.parametrize("alpha, beta, gamma, sigma, top", [
    (0.5, 0.0, 0.5, 4.0, 0.0), (0.8, 0.3, 0.2, 8.0, 0.01), (0.3, 0.7, 1.0, 0.0, 0.05), (0.6, 0.0, 0.0, 2.0, 0.0)])
def test_memory_bank_fuse_equals_the_old_formula(alpha, beta, gamma, sigma, top):
    rgb, geo, valid = random_maps(1)
    ws = 128
    comps = Components(maps={"rgb": rgb, "geometry": geo}, shape=(H, W), valid=valid)
    p = fuse_only("memory-bank", dict(alpha=alpha, beta=beta, gamma=gamma, sigma=sigma, working_size=ws,
                                      image_top_fraction=top))
    assert set(p) == {"rgb_weight", "agreement_weight", "max_weight", "sigma_pct", "image_top_fraction"}
    r = create("memory-bank").fuse(comps, p)

    w = {"rgb": alpha, "geometry": 1 - alpha}
    both = np.isfinite(rgb) & np.isfinite(geo)
    fused = nan_mean({"rgb": rgb, "geometry": geo}, w)
    wmax = max(w.values())
    mx = np.fmax(rgb * w["rgb"] / wmax, geo * w["geometry"] / wmax)
    fused = np.where(both, (1 - gamma) * fused + gamma * mx, fused)
    agree = np.maximum(rgb, 0) ** alpha * np.maximum(geo, 0) ** (1 - alpha)
    fused = np.where(both, (1 - beta) * fused + beta * agree, fused)
    pixel, points, score = old_result(fused, sigma * max(H, W) / ws, top, valid)
    np.testing.assert_allclose(r.pixel_map, pixel, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r.point_scores, points, rtol=1e-4, atol=1e-4)
    assert r.image_score == pytest.approx(score, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("detector, fusion", [("cross-modal", "product"), ("cross-modal", "sum"),
                                              ("unified-moe", "mean"), ("unified-moe", "max")])
@pytest.mark.parametrize("weight, sigma, top", [(0.5, 1.0, 0.0), (0.3, 2.5, 0.02), (0.8, 0.0, 0.0)])
def test_trained_fuse_equals_the_old_formula(detector, fusion, weight, sigma, top):
    # no hole the smoothing cannot reach: the trained detectors filled one with the least value of
    # the smoothed map, the shared rule (memory-bank's) with the least value of the fused map
    rgb, geo, valid = random_maps(2, hole=False)
    grid = 32                      # the feature grid of every checkpoint the train command makes
    comps = Components(maps={"rgb": rgb, "geometry": geo}, shape=(H, W), valid=valid,
                       extra={"patch_grid": (grid, grid)})
    saved = dict(fusion=fusion, rgb_weight=weight, sigma=sigma, image_top_fraction=top, threshold=1.0,
                 checkpoint="")
    r = create(detector).fuse(comps, fuse_only(detector, saved))

    if detector == "cross-modal":
        cross = (np.maximum(rgb, 0) * np.maximum(geo, 0) if fusion == "product"
                 else weight * rgb + (1 - weight) * geo)
        fused = 0.5 * cross                      # alpha (default 0.5) * the cross-modal term
    else:
        w = {"rgb": weight, "geometry": 1 - weight}
        maps = {"rgb": rgb, "geometry": geo}
        fused = (nan_mean(maps, w) if fusion == "mean"
                 else np.fmax(rgb * w["rgb"] / max(w.values()), geo * w["geometry"] / max(w.values())))
    pixel, points, score = old_result(fused, sigma * H / grid, top, valid)   # old sigma: patches
    np.testing.assert_allclose(r.pixel_map, pixel, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(r.point_scores, points, rtol=1e-4, atol=1e-4)
    assert r.image_score == pytest.approx(score, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("detector", ["clip-zero-shot", "clip-few-shot"])
@pytest.mark.parametrize("fusion", ["weighted", "product"])
@pytest.mark.parametrize("organized", [True, False])
@pytest.mark.parametrize("w_rgb, w_3d, alpha, beta, lam", [(0.5, 0.5, 0.5, 0.5, 0.5), (0.9, 0.3, 0.2, 0.8, 0.3),
                                                           (0.2, 0.6, 0.3, 0.3, 0.0)])
def test_clip_fuse_equals_the_old_formula(detector, fusion, organized, w_rgb, w_3d, alpha, beta, lam):
    rng = np.random.default_rng(3)
    maps = {f"{m}_{k}": rng.random((H, W)).astype(np.float32) for m in ("rgb", "3d") for k in ("text", "visual")}
    for k in ("3d_text", "3d_visual"):
        maps[k][:, :4] = np.nan
    pm = {f"3d_{k}": rng.random(200).astype(np.float32) for k in ("text", "visual")}
    valid = np.zeros((20, 24), bool)
    valid[3:17, 2:20] = True
    comps = Components(maps=maps if organized else {k: v for k, v in maps.items() if k.startswith("rgb")},
                       point_maps=pm, image={"rgb_global": 0.7, "3d_global": 0.4}, shape=(H, W),
                       valid=valid if organized else None, extra={"organized": organized})
    saved = dict(fusion=fusion, w_rgb=w_rgb, w_3d=w_3d, alpha=alpha, beta=beta)
    if detector == "clip-few-shot":
        saved["text_weight"] = lam
    else:
        lam = 1.0
    r = create(detector).fuse(comps, fuse_only(detector, saved))

    def combine(store):
        t = {m: store[f"{m}_text"] for m in ("rgb", "3d") if f"{m}_text" in store}
        v = {m: store[f"{m}_visual"] for m in t}
        if fusion == "product":
            return alpha * np.prod(list(v.values()), 0) + beta * np.prod(list(t.values()), 0)
        mix = {m: lam * t[m] + (1 - lam) * v[m] for m in t}
        return next(iter(mix.values())) if len(mix) == 1 else nan_mean(mix, {"rgb": w_rgb, "3d": w_3d})

    pixel = combine(comps.maps)
    if organized:
        points = cv2.resize(np.nan_to_num(pixel).astype(np.float32), (24, 20), interpolation=cv2.INTER_LINEAR)[valid]
    else:
        points = combine(pm)
    g = (0.7 * w_rgb + 0.4 * w_3d) / (w_rgb + w_3d)
    np.testing.assert_allclose(r.pixel_map, pixel, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r.point_scores, points, rtol=1e-5, atol=1e-6)
    assert r.image_score == pytest.approx(0.5 * np.nanmax(pixel) + 0.5 * g, rel=1e-5)


# ---------------------------------------------------------------------- the alias table
def test_alias_table_converts_names_and_sigma_units():
    mb = migrate_params("memory-bank", {"alpha": 0.3, "beta": 0.1, "gamma": 1.0, "sigma": 8, "working_size": 128})
    assert mb == {"rgb_weight": 0.3, "agreement_weight": 0.1, "max_weight": 1.0, "sigma_pct": 6.25,
                  "working_size": 128}
    assert migrate_params("memory-bank", {"sigma": 4})["sigma_pct"] == pytest.approx(100 * 4 / 256)
    for det in ("cross-modal", "unified-moe"):     # old unit: patches of the 32 x 32 feature grid
        assert migrate_params(det, {"sigma": 2, "rgb_weight": 0.4}) == {"sigma_pct": 6.25, "rgb_weight": 0.4}
    for backbone, side in CLIP_INPUT.items():      # old unit: pixels of the CLIP input
        p = migrate_params("clip-zero-shot", {"sigma": 4, "backbone": backbone})
        assert sigma_px(p["sigma_pct"], (side, side)) == pytest.approx(4.0)
    assert migrate_params("clip-few-shot", {"sigma": 6, "image_size": 300})["sigma_pct"] == pytest.approx(2.0)
    # w_rgb / w_3d were normalised by their sum; one of them alone leaves the other at its 0.5
    assert migrate_params("clip-few-shot", {"w_rgb": 0.9, "w_3d": 0.3})["rgb_weight"] == pytest.approx(0.75)
    assert migrate_params("clip-zero-shot", {"w_3d": 0.0}) == {"rgb_weight": 1.0}
    # today's name wins over an old one; other detectors' names are theirs
    assert migrate_params("memory-bank", {"alpha": 0.3, "rgb_weight": 0.9}) == {"rgb_weight": 0.9}
    assert migrate_params("fake-test", {"alpha": 0.3, "sigma": 2}) == {"alpha": 0.3, "sigma": 2}
    # a value that is no number: dropped from a saved file, an error when typed
    assert migrate_params("memory-bank", {"sigma": "wide"}) == {}
    with pytest.raises(InvalidParameterError, match="'sigma' \\(now 'sigma_pct'\\)"):
        migrate_params("memory-bank", {"sigma": "wide"}, strict=True)


def test_old_project_values_are_read_into_the_new_names(memory_dataset):
    with Project.open(memory_dataset.root) as p:
        p.set_detector("memory-bank", {"alpha": 0.3, "gamma": 0.2, "sigma": 8.0, "working_size": 128})
    fresh = Session(memory_dataset, backend=ThreadBackend(), fit_store=None)
    with Project.open(memory_dataset.root) as p:
        assert p.detector().params == {"rgb_weight": 0.3, "max_weight": 0.2, "sigma_pct": 6.25, "working_size": 128}
        restore_session(p, fresh)
    assert fresh.detector_id == "memory-bank"
    assert (fresh.params["rgb_weight"], fresh.params["max_weight"], fresh.params["sigma_pct"]) == (0.3, 0.2, 6.25)


def test_old_settings_values_are_read_into_the_new_names(tmp_path):
    pytest.importorskip("PySide6")
    from app.settings import Settings
    s = Settings(tmp_path / "settings.ini")     # as the version before the rename saved them
    import json
    s.set_value("params/clip-few-shot", json.dumps({"w_rgb": 0.9, "w_3d": 0.3, "sigma": 4.0,
                                                    "backbone": "ViT-L-14-336", "text_weight": 0.4}))
    assert s.sync()
    again = Settings(tmp_path / "settings.ini").legacy_detector_params("clip-few-shot")
    assert again == {"rgb_weight": pytest.approx(0.75), "sigma_pct": pytest.approx(100 * 4 / 336),
                     "backbone": "ViT-L-14-336", "text_weight": 0.4}


def test_cli_reads_an_old_typed_name_as_the_new_one(capsys):
    params = cli._parse_params(["alpha=0.7", "sigma=8", "threshold=2"], None, "memory-bank")
    assert params == {"rgb_weight": "0.7", "sigma_pct": pytest.approx(3.125), "threshold": "2"}
    err = capsys.readouterr().err
    assert "alpha=0.7 is now rgb_weight=0.7" in err and "sigma=8 is now sigma_pct=3.125" in err
