"""Trained detectors: common-grid features, GACM gating and MoE routing maths, training on good
samples only, checkpoints (round trip, refusal of tampered / foreign ones), cancel."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from core.checkpoint import CheckpointError, load_checkpoint, paths_for
from core.detectors.state import FitStateError
from core.detectors import create
from core.errors import Cancelled, InputError
from core.features.grid import D_GEO, D_RGB, FeatureConfig, grid_features, upsample_map
from core.detectors.cross_modal.model import CrossModalNet, GACM
from core.detectors.unified_moe.model import SparseMoE, TopKRouter, UnifiedMoENet, load_balance
from core.training import train

from conftest import MemoryDataset, make_part

CFG = FeatureConfig(working_size=64, stride=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return MemoryDataset(tmp_path_factory.mktemp("mem") / "mem", n_train=3, n_good=1, n_bad=1, size=48)


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory):
    """One model per detector on both classes of the tiny dataset (a few epochs)."""
    out = {}
    d = tmp_path_factory.mktemp("ck")
    for det in ("cross-modal", "unified-moe"):
        losses = []
        r = train(tiny, det, epochs=6, out=d / det, features=CFG, batch_size=128,
                  on_epoch=lambda e, l, losses=losses: losses.append(l))
        out[det] = (r, losses)
    return out


# ---------------------------------------------------------------------- features
def test_grid_features_shapes_and_mask():
    s = make_part(3, size=48)
    f = grid_features(s, CFG)
    assert f.grid == (16, 16)
    assert f.rgb.shape == (256, D_RGB) and f.geo.shape == (256, D_GEO) and f.valid.shape == (256,)
    # valid patches lie on the disc (the object), not on the background plane
    yy, xx = np.divmod(np.arange(256), 16)
    r = np.hypot(yy + 0.5 - 8, xx + 0.5 - 8)
    assert f.valid.any() and not f.valid[r > 16 * 0.35 + 1].any() and f.valid[r < 2].all()
    assert np.all(f.geo[~f.valid] == 0) and np.isfinite(f.geo).all()


def test_grid_features_rgb_only_and_refusal():
    f = grid_features(make_part(1, size=48, points=False), CFG)
    assert f.rgb is not None and f.geo is None and f.valid is None
    s = make_part(1, size=48, rgb=False)
    s.points = s.points.reshape(-1, 3)     # unorganized, no image: nothing to put on the grid
    with pytest.raises(InputError, match="neither"):
        grid_features(s, CFG)


def test_upsample_map_keeps_undefined():
    v = np.array([1.0, np.nan, 2.0, 3.0], np.float32)
    m = upsample_map(v, (2, 2), (8, 8))
    assert m.shape == (8, 8) and np.isnan(m[0, 7]) and np.isfinite(m[7, 0])


# ---------------------------------------------------------------------- maths
def test_gacm_gating_is_convex_mix_of_branches():
    torch.manual_seed(0)
    g = GACM(5, 4, 6, n_classes=1)
    x = torch.randn(7, 5)
    gate, f_geo, f_sem = g.gate(x)
    assert torch.allclose(gate, torch.sigmoid(g.w_g(g.phi_g(x))))
    assert bool(((gate > 0) & (gate < 1)).all())
    # forcing the gate to 1 makes the fused feature the geometric branch alone
    with torch.no_grad():
        g.w_g.weight.zero_()
        g.w_g.bias.fill_(50.0)
    cls = torch.zeros(7, dtype=torch.long)
    want = g.residual(x) + g.out(torch.nn.functional.gelu(g.ln(g.phi_g(x))))
    assert torch.allclose(g(x, cls), want, atol=1e-5)


def test_cross_modal_loss_masked_to_valid_points():
    torch.manual_seed(0)
    net = CrossModalNet(3, 2, 1, hidden=4)
    b = {"rgb": torch.randn(6, 3), "geo": torch.randn(6, 2), "has_rgb": torch.ones(6, dtype=torch.bool),
         "has_geo": torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool), "cls": torch.zeros(6, dtype=torch.long)}
    l1, _ = net.loss(b)
    b2 = dict(b, geo=b["geo"].clone())
    b2["geo"][3:] = 1e3               # garbage at invalid locations changes nothing
    l2, _ = net.loss(b2)
    assert torch.allclose(l1, l2)
    d = net.discrepancies(b)
    assert torch.isnan(d["rgb"][3:]).all() and torch.isfinite(d["geometry"][:3]).all()


def test_topk_router_selects_k_experts_and_gates_sum_to_one():
    torch.manual_seed(0)
    r = TopKRouter(4, n_experts=5, top_k=2)
    x = torch.randn(9, 4)
    gates, idx, probs = r(x)
    assert idx.shape == (9, 2) and gates.shape == (9, 2)
    assert torch.allclose(gates.sum(-1), torch.ones(9))
    assert all(len(set(row.tolist())) == 2 for row in idx)
    assert torch.equal(idx, r.lin(x).topk(2, -1).indices)
    with pytest.raises(ValueError):
        TopKRouter(4, 3, 4)


def test_sparse_moe_runs_only_selected_experts():
    torch.manual_seed(0)
    moe = SparseMoE(3, 2, 4, n_experts=4, top_k=1, d_route=3)
    x = torch.randn(5, 3)
    out, idx, _ = moe(x, x)
    want = torch.stack([moe.experts[int(idx[i, 0])](x[i:i + 1])[0] for i in range(5)])
    assert torch.allclose(out, want, atol=1e-6)


def test_load_balance_term():
    e = 4
    uniform = torch.full((8, e), 1 / e)
    balanced = torch.arange(8).reshape(8, 1) % e
    assert float(load_balance(balanced, uniform, e)) == pytest.approx(1.0)
    collapsed = torch.zeros(8, 1, dtype=torch.long)
    peaked = torch.tensor([[1.0, 0, 0, 0]]).repeat(8, 1)
    assert float(load_balance(collapsed, peaked, e)) == pytest.approx(e)


def test_unified_moe_handles_any_modality_combination():
    torch.manual_seed(0)
    net = UnifiedMoENet(3, 2, 2, width=8, bottleneck=4, n_experts=3, top_k=2)
    n = 6
    for has_rgb, has_geo in ((1, 0), (0, 1), (1, 1)):
        b = {"rgb": torch.randn(n, 3), "geo": torch.randn(n, 2), "has_rgb": torch.full((n,), bool(has_rgb)),
             "has_geo": torch.full((n,), bool(has_geo)), "cls": torch.tensor([0, 1] * 3)}
        d = net.discrepancies(b)
        assert bool(torch.isfinite(d["rgb"]).all()) == bool(has_rgb)
        assert bool(torch.isfinite(d["geometry"]).all()) == bool(has_geo)
        loss, stats = net.loss(b)
        assert torch.isfinite(loss) and "balance" in stats


# ---------------------------------------------------------------------- training
@pytest.mark.parametrize("det", ["cross-modal", "unified-moe"])
def test_training_lowers_loss_and_scores_defect_above_good(trained, tiny, det):
    r, losses = trained[det]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]
    d = create(det, checkpoint=str(r.path))
    d.fit([tiny.load(x) for x in tiny.support_refs("disc", 3)], class_name="disc")
    bad = tiny.load(tiny.select(["disc"], split="test", label="blob")[0])
    good = tiny.load(tiny.select(["disc"], split="test", label="good")[0])
    rb, rg = d.score(bad), d.score(good)
    assert rb.image_score > rg.image_score
    on_obj = bad.valid_mask() & ~bad.gt_mask
    assert np.nanmean(rb.pixel_map[bad.gt_mask]) > 2 * np.nanmean(rb.pixel_map[on_obj])
    assert "off" in rb.params["text_term"] and "off" in rb.components.extra["text_term"]
    # fusion is pure and cheap: a slider changes the map without extract
    half = d.fuse(rb.components, {"alpha": 0.25} if det == "cross-modal" else {"rgb_weight": 1.0})
    assert not np.allclose(half.pixel_map, rb.pixel_map)


def test_training_is_reproducible_and_resumable(tiny, tmp_path):
    a = train(tiny, "unified-moe", classes=["disc"], epochs=2, out=tmp_path / "a", features=CFG, batch_size=128)
    b = train(tiny, "unified-moe", classes=["disc"], epochs=1, out=tmp_path / "b", features=CFG, batch_size=128)
    b = train(tiny, "unified-moe", classes=["disc"], epochs=2, out=tmp_path / "b", features=CFG, batch_size=128,
              resume=True)
    ta, tb = load_checkpoint(a.path).tensors, load_checkpoint(b.path).tensors
    assert set(ta) == set(tb)
    for k in ta:
        if k.startswith("net."):
            np.testing.assert_allclose(ta[k], tb[k], rtol=1e-5, atol=1e-6)


def test_cross_modal_refuses_rgb_only(trained, tiny):
    d = create("cross-modal", checkpoint=str(trained["cross-modal"][0].path))
    d.fit([], class_name="disc")          # no support: the training-data calibration is used
    assert d.state.meta["calibrated_on"]["rgb"] == "training data"
    s = make_part(9, size=48, points=False)
    with pytest.raises(InputError, match="needs a point cloud"):
        d.score(s)
    u = create("unified-moe", checkpoint=str(trained["unified-moe"][0].path))
    u.fit([], class_name="disc")
    res = u.score(s)                        # unified-moe: RGB alone
    assert set(res.components.maps) == {"rgb"} and np.isfinite(res.image_score)


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_state_round_trip(trained, tiny, tmp_path):
    r = trained["unified-moe"][0]
    ck = load_checkpoint(r.path, detector="unified-moe", class_name="ring")
    meta = json.loads(paths_for(r.path)[1].read_text())
    for k in ("detector", "model", "features", "classes", "versions", "training_data_sha256", "tensors_sha256"):
        assert k in meta
    assert ck.classes == ["disc", "ring"]
    d = create("unified-moe", checkpoint=str(r.path))
    st = d.fit([tiny.load(x) for x in tiny.support_refs("ring", 2)], class_name="ring")
    st.save(tmp_path / "fit")
    from core.detectors.state import FitState
    d2 = create("unified-moe", checkpoint=str(r.path))
    d2.load_state(FitState.load(tmp_path / "fit"))
    s = tiny.load(tiny.select(["ring"], split="test")[0])
    np.testing.assert_allclose(d.score(s).pixel_map, d2.score(s).pixel_map, rtol=1e-5, atol=1e-6)


def test_refuses_tampered_foreign_and_missing_checkpoints(trained, tmp_path):
    src = trained["cross-modal"][0].path
    with pytest.raises(CheckpointError, match="not 'unified-moe'"):
        load_checkpoint(src, detector="unified-moe")
    with pytest.raises(CheckpointError, match="not on 'cookie'"):
        create("cross-modal", checkpoint=str(src)).fit([], class_name="cookie")
    with pytest.raises(CheckpointError, match="needs a trained checkpoint"):
        create("cross-modal").fit([], class_name="disc")
    # tampered tensors
    t, j = paths_for(tmp_path / "x")
    t.write_bytes(src.read_bytes())
    j.write_text(paths_for(src)[1].read_text())
    raw = bytearray(t.read_bytes())
    raw[-5] ^= 0xFF
    t.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(t)
    # other features
    meta = json.loads(paths_for(src)[1].read_text())
    meta["features"]["version"] = "clip-vit/1"
    t.write_bytes(src.read_bytes())
    j.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="other features"):
        create("cross-modal", checkpoint=str(t)).fit([], class_name="disc")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing")


def _rewrite_tensors(src, dst, change):
    """A copy of checkpoint ``src`` at ``dst`` with ``change(tensors)`` applied and a *valid* SHA-256."""
    from safetensors.numpy import load_file, save_file
    from core.checkpoint import file_sha256
    t, j = paths_for(dst)
    tensors = load_file(str(src))
    change(tensors)
    save_file(tensors, str(t))
    meta = json.loads(paths_for(src)[1].read_text())
    meta["tensors_sha256"] = file_sha256(t)
    j.write_text(json.dumps(meta))
    return t


def _first_weight(tensors):
    return sorted(k for k in tensors if k.startswith("net.") and tensors[k].ndim == 2)[0]


def test_checkpoint_with_nan_or_inf_weights_is_refused_on_load(trained, tmp_path):
    src = trained["cross-modal"][0].path
    for bad in (np.nan, np.inf):
        name = {}

        def poison(t, bad=bad, name=name):
            k = name["k"] = _first_weight(t)
            t[k] = t[k].copy()
            t[k][0, 0] = bad
        t = _rewrite_tensors(src, tmp_path / "nan", poison)
        with pytest.raises(CheckpointError) as ei:
            load_checkpoint(t)
        msg = str(ei.value)
        assert str(t) in msg and f"'{name['k']}'" in msg and "1 NaN or infinite" in msg
        with pytest.raises(CheckpointError, match="NaN or infinite"):
            create("cross-modal", checkpoint=str(t)).fit([], class_name="disc")


def test_checkpoint_tensors_of_the_wrong_shape_are_named(trained, tmp_path):
    src = trained["unified-moe"][0].path
    name = {}

    def shrink(t):
        k = name["k"] = _first_weight(t)
        t[k] = t[k][:, :3].copy()
    t = _rewrite_tensors(src, tmp_path / "shape", shrink)
    with pytest.raises(CheckpointError) as ei:
        create("unified-moe", checkpoint=str(t)).fit([], class_name="disc")
    msg = str(ei.value)
    assert str(t) in msg and f"'{name['k']}' has shape" in msg and "model needs" in msg
    t = _rewrite_tensors(src, tmp_path / "std", lambda t: t.__setitem__("std.rgb.std", np.zeros(7, np.float32)))
    with pytest.raises(CheckpointError, match="std.rgb.std"):
        create("unified-moe", checkpoint=str(t)).fit([], class_name="disc")


def test_cli_score_and_eval_with_a_nan_checkpoint_exit_non_zero_and_name_it(trained, tiny, tmp_path, capsys):
    """Was: ``image score nan  ok`` and exit 0."""
    from core import cli, io
    root = tmp_path / "tree"
    for ref in tiny.select(["disc"]):                  # the tiny set as an MVTec 3D-AD tree on disk
        smp = tiny.load(ref)
        where = root / "disc" / ref.split / ref.label
        io.write_rgb(where / "rgb" / f"{ref.id}.png", smp.rgb)
        io.write_xyz_tiff(where / "xyz" / f"{ref.id}.tiff", smp.points)
    t = _rewrite_tensors(trained["cross-modal"][0].path, tmp_path / "nan",
                         lambda t: t.__setitem__(_first_weight(t), np.full_like(t[_first_weight(t)], np.nan)))
    test_rgb = sorted((root / "disc" / "test" / "blob" / "rgb").glob("*.png"))[0]
    rc = cli.main(["score", str(test_rgb), "--detector", "cross-modal", "--checkpoint", str(t),
                   "--out", str(tmp_path / "o")])
    out, err = capsys.readouterr()
    assert rc == cli.EXIT_USER and "image score" not in out and " ok" not in out
    assert str(t) in err and "NaN or infinite" in err
    rc = cli.main(["eval", "--data", str(root), "--detector", "cross-modal", "--checkpoint", str(t), "--quiet"])
    out, err = capsys.readouterr()
    assert rc == cli.EXIT_USER and "class not evaluated" in err and str(t) in err and "NaN or infinite" in err


def test_trained_fit_state_with_wrong_weights_is_refused_and_refitted(trained, tiny, tmp_path):
    """A saved fit of a trained detector holds the weights: wrong shapes or NaN there are a
    FitStateError naming the fit (the session refits from the checkpoint), not an unexpected error."""
    from core.detectors.state import FitState, FitStore, arrays_hash
    from core.session import Session
    r = trained["unified-moe"][0]
    store = FitStore(tmp_path / "fits")
    s = Session(tiny, "unified-moe", params={"checkpoint": str(r.path)}, fit_store=store)
    s.fit("disc")
    st = s.fit_state("disc")
    k = _first_weight(st.arrays)
    for change in (lambda a: a.__setitem__(k, a[k][:, :3].copy()), lambda a: a.__setitem__(k, np.full_like(a[k], np.nan))):
        arrays = dict(st.arrays)
        change(arrays)
        bad = FitState(**{**st.__dict__, "arrays": arrays})
        path = bad.save(store.path_for("unified-moe", st.key))
        loaded = FitState.load(path)
        assert arrays_hash(loaded.arrays) == json.loads(path.read_text())["arrays_sha256"]
        with pytest.raises(FitStateError) as ei:
            create("unified-moe", checkpoint=str(r.path)).load_state(loaded)
        assert str(path.with_suffix(".npz")) in str(ei.value) and k in str(ei.value)
        again = Session(tiny, "unified-moe", params={"checkpoint": str(r.path)}, fit_store=store)
        again.fit("disc")
        assert again.fit_sources["disc"] == "fitted"


def test_cancel_within_a_second(tiny, tmp_path):
    flag = threading.Event()
    out = {}

    def run():
        t = time.perf_counter()
        try:
            train(tiny, "unified-moe", epochs=10_000, out=tmp_path / "c", features=CFG, batch_size=16, cancel=flag.is_set)
        except Cancelled:
            out["dt"] = time.perf_counter() - t
    th = threading.Thread(target=run)
    th.start()
    time.sleep(1.5)
    t_cancel = time.perf_counter()
    flag.set()
    th.join(5)
    assert "dt" in out and not th.is_alive()
    assert time.perf_counter() - t_cancel < 1.0


# ---------------------------------------------------------------------- threshold calibration
def test_training_holds_parts_out_and_the_detector_calibrates_its_threshold_on_them(tmp_path):
    """Without validation/good, a fifth of each class's training parts stay out of training (the
    last ones, never the default support); the session calibrates the decision threshold on them:
    threshold 0 = the tolerance bound of their fused image scores, a typed threshold wins."""
    from core.calibration import tolerance_threshold
    from core.session import Session
    from core.training import split_held_out

    ds = MemoryDataset(tmp_path / "mem", classes=("disc",), n_train=10, n_good=1, n_bad=1, size=48)
    refs = ds.select(["disc"], split="train")
    kept, held = split_held_out(ds, refs)
    assert [r.id for r in held] == ["005", "009"] and len(kept) == 8
    assert not {r.id for r in held} & {r.id for r in ds.support_refs("disc", 5)}
    assert split_held_out(ds, refs[:4])[1] == [] and split_held_out(ds, refs, 0.0)[1] == []

    r = train(ds, "unified-moe", epochs=2, out=tmp_path / "moe", features=CFG, batch_size=128)
    meta = load_checkpoint(r.path).meta
    assert meta["held_out"] == [h.key for h in held] and r.n_samples == 8

    s = Session(detector="unified-moe", params={"checkpoint": str(r.path)}, fit_store=None)
    s.set_dataset(ds)
    assert [c.key for c in s.calibration_items("disc")] == [h.key for h in held]
    s.fit("disc")
    det = s.instance("disc")
    assert det.state.meta["n_validation"] == 2 and "val.rgb" in det.state.arrays
    scores = det.calibration_scores()
    assert len(scores) == 2 and np.isfinite(scores).all()
    p = det.merged_params(None)
    expect = tolerance_threshold(scores, p["false_alarm_rate"], p["calibration_confidence"])
    assert det.decision_threshold() == pytest.approx(expect)
    res = det.score(ds.load(ds.select(["disc"], split="test", label="good")[0]))
    assert res.threshold == pytest.approx(expect)
    assert det.fuse(res.components, {"threshold": 3.5}).threshold == 3.5
    # a looser target rate gives a lower threshold
    assert det.decision_threshold({"false_alarm_rate": 0.3, "calibration_confidence": 0.5}) < expect


def test_cross_modal_on_rgb_only_data_is_refused_before_any_feature_is_computed(tmp_path):
    ds = MemoryDataset(tmp_path / "rgbonly", classes=("disc",), n_train=3, points=False, size=48)
    with pytest.raises(InputError, match="needs training samples with a point cloud.*unified-moe"):
        train(ds, "cross-modal", epochs=1, out=tmp_path / "cm", features=CFG)
    assert ds.loads == 0
