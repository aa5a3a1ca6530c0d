"""CLIP detectors: the maths on small tensors, the V-V dual path against a direct re-implementation,
the shared backbone cache, and end to end with the tiny random CLIP (no downloads; random weights
mean no claim on detection quality)."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from core import backbones  # noqa: E402
from core.backbones import clip_dense  # noqa: E402
from core.detectors import registry  # noqa: E402
from core.detectors.clip import prompting, scoring  # noqa: E402
from core.detectors.clip.text import PromptCache, l2n, text_pair  # noqa: E402
from core.detectors.postprocess import smooth_maps  # noqa: E402
from core.errors import MissingWeightsError  # noqa: E402

from conftest import MemoryDataset, make_part  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    """The tiny random model in float32 (the parity tests compare against float32 references)."""
    return backbones.get_clip(backbones.TINY_TEST, weights="random", dtype="float32")


# ---------------------------------------------------------------------- prompts and text
def test_winclip_prompt_lists_give_147_normal_and_84_anomalous_prompts():
    n = prompting.build_prompts(prompting.NORMAL_STATES, prompting.TEMPLATES, "cookie")
    a = prompting.build_prompts(prompting.ANOMALOUS_STATES, prompting.TEMPLATES, "cookie")
    assert (len(n), len(a)) == (147, 84)
    assert "a cropped photo of the flawless cookie." in n
    assert "a photo of a cookie with defect for anomaly detection." in a
    assert prompting.object_name("", "cable_gland") == "cable gland"
    assert prompting.object_name("gland", "cable_gland") == "gland"
    assert prompting.object_name("", "") == "object"


def test_text_pair_is_the_normalised_mean_of_unnormalised_embeddings():
    rng = np.random.default_rng(0)
    table = {}

    def enc(ps):
        return np.stack([table.setdefault(p, rng.normal(size=8) * (1 + len(p))) for p in ps])

    t = text_pair(enc, ("{}", "good {}"), ("bad {}",), ("a {}.", "the {}."), "x")
    normal = np.mean([table[p] for p in ("a x.", "a good x.", "the x.", "the good x.")], 0)
    anom = np.mean([table[p] for p in ("a bad x.", "the bad x.")], 0)
    assert np.allclose(t[0], normal / np.linalg.norm(normal), atol=1e-6)
    assert np.allclose(t[1], anom / np.linalg.norm(anom), atol=1e-6)
    with pytest.raises(ValueError):
        text_pair(enc, (), ("bad {}",), ("a {}.",), "x")


def test_prompt_cache_encodes_only_new_prompts():
    calls = []

    def enc(ps):
        calls.append(list(ps))
        return np.ones((len(ps), 4))

    run = PromptCache().encoder(enc)
    run(["a", "b"])
    out = run(["b", "c", "a"])
    assert calls == [["a", "b"], ["c"]] and out.shape == (3, 4)


def test_softmax_map_matches_a_manual_softmax_and_anomalyclip_formula():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(2, 5, 6)).astype(np.float32)
    t = l2n(rng.normal(size=(2, 6)))
    p = scoring.anomaly_prob(f, t, 0.07)
    fn = f / np.linalg.norm(f, axis=-1, keepdims=True)
    logits = fn @ t.T / 0.07
    e = np.exp(logits - logits.max(-1, keepdims=True))
    sm = e / e.sum(-1, keepdims=True)
    assert np.allclose(p, sm[..., 1], atol=1e-6)
    assert np.allclose(p, (sm[..., 1] + 1 - sm[..., 0]) / 2, atol=1e-6)
    # over layers: the mean of the per-layer maps, on the patch grid
    m = scoring.layer_text_maps({3: f[:, :4], 6: f[:, 1:]}, t, (2, 2), 0.07)
    assert m.shape == (2, 2, 2)
    assert np.allclose(m.reshape(2, 4), (sm[:, :4, 1] + sm[:, 1:, 1]) / 2, atol=1e-6)


def test_discrepancy_is_half_one_minus_max_cosine_to_the_memory():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(3, 7, 5)).astype(np.float32)
    mem = rng.normal(size=(11, 5)).astype(np.float32)
    got = scoring.discrepancy(q, mem, chunk=4)
    exp = np.empty((3, 7))
    for i in range(3):
        for j in range(7):
            cos = [q[i, j] @ m / np.linalg.norm(q[i, j]) / np.linalg.norm(m) for m in mem]
            exp[i, j] = 0.5 * (1 - max(cos))
    assert np.allclose(got, exp, atol=1e-6)
    assert np.allclose(scoring.discrepancy(mem[:2], mem), 0, atol=1e-6)   # a support token itself: 0


def test_upsample_and_smooth_keep_a_constant_and_spread_a_peak():
    m = np.zeros((1, 4, 4), np.float32)
    m[0, 1, 1] = 1
    up = scoring.upsample(m, (16, 16))
    assert up.shape == (1, 16, 16)
    sm = smooth_maps(up, 100 * 2.0 / 16)          # sigma 2 px of the 16 px map
    assert sm.max() < up.max() and abs(sm.sum() - up.sum()) / up.sum() < 0.05
    assert np.allclose(smooth_maps(np.full((1, 8, 8), 0.3), 50.0), 0.3, atol=1e-6)
    # the shared smoothing is the Gaussian the CLIP detectors used before (scipy's, reflect border)
    from scipy.ndimage import gaussian_filter
    rng = np.random.default_rng(0)
    maps = scoring.upsample(rng.random((2, 14, 14)).astype(np.float32), (224, 224))
    for px in (1.0, 4.0, 6.0):
        expected = np.stack([gaussian_filter(m, px) for m in maps])
        np.testing.assert_allclose(smooth_maps(maps, 100 * px / 224), expected, atol=1e-6)


# ---------------------------------------------------------------------- dense features
def _reference_dual_path(model, x, layers, vv_start):
    """A direct re-implementation of the V-V dual path (core.backbones.clip_dense) with explicit per-head loops."""
    vis = model.visual
    t = vis.conv1(x).flatten(2).transpose(1, 2)
    t = torch.cat([vis.class_embedding.view(1, 1, -1).expand(len(t), 1, -1), t], 1) + vis.positional_embedding
    x_ori = vis.ln_pre(t)
    x_vv = None
    out = {}
    for i, blk in enumerate(vis.transformer.resblocks, 1):
        a = blk.attn
        c = x_ori.shape[-1]
        hds = a.num_heads
        d = c // hds
        y = blk.ln_1(x_ori)
        q, k, v = (y @ a.in_proj_weight[j * c:(j + 1) * c].T + a.in_proj_bias[j * c:(j + 1) * c] for j in range(3))
        heads_qk, heads_vv = [], []
        for h in range(hds):
            sl = slice(h * d, (h + 1) * d)
            qh, kh, vh = q[..., sl], k[..., sl], v[..., sl]
            heads_qk.append(torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), -1) @ vh)
            heads_vv.append(torch.softmax(vh @ vh.transpose(1, 2) / math.sqrt(d), -1) @ vh)
        qk = torch.cat(heads_qk, -1) @ a.out_proj.weight.T + a.out_proj.bias
        vvo = torch.cat(heads_vv, -1) @ a.out_proj.weight.T + a.out_proj.bias
        if i >= vv_start:
            x_vv = (x_ori if x_vv is None else x_vv) + vvo
        x_ori = x_ori + qk
        x_ori = x_ori + blk.mlp(blk.ln_2(x_ori))
        if i in layers:
            src = x_vv if x_vv is not None else x_ori
            out[i] = vis.ln_post(src[:, 1:]) @ vis.proj
    return out, vis.ln_post(x_ori[:, 0]) @ vis.proj


def test_vv_dual_path_matches_a_direct_reimplementation(tiny):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    got = clip_dense.encode_dense(tiny.model, x, layers=(1, 2, 3, 4), vv_start=2)
    with torch.no_grad():
        ref, g = _reference_dual_path(tiny.model, x, (1, 2, 3, 4), 2)
    assert got.grid == (8, 8)
    for layer in (1, 2, 3, 4):
        assert got.tokens[layer].shape == (2, 64, 64)
        assert (got.tokens[layer] - ref[layer]).abs().max().item() < 1e-4
    assert (got.global_emb - g).abs().max().item() < 1e-4
    # V-V really changes the tokens of the replaced blocks, not those before
    plain = clip_dense.encode_dense(tiny.model, x, layers=(1, 4), vv=False)
    assert (plain.tokens[1] - got.tokens[1]).abs().max().item() < 1e-6
    assert (plain.tokens[4] - got.tokens[4]).abs().max().item() > 1e-3


def test_plain_path_equals_open_clip_own_forward(tiny):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 64, 64)
    out = clip_dense.encode_dense(tiny.model, x, layers=(4,), vv=False, project=False)
    vis = tiny.model.visual
    vis.output_tokens = True
    try:
        with torch.no_grad():
            pooled, toks = vis(x)
    finally:
        vis.output_tokens = False
    assert (out.tokens[4] - toks).abs().max().item() < 1e-5
    assert (out.global_emb - pooled).abs().max().item() < 1e-5
    # another input size: the positional embedding is resized, the grid follows
    assert clip_dense.encode_dense(tiny.model, torch.randn(1, 3, 96, 96), layers=(4,)).grid == (12, 12)


def test_trimmed_text_encoder_equals_open_clip_encode_text(tiny):
    ps = ["a photo of a disc.", "a blurry photo of the damaged disc with a long scratch on its left side."]
    with torch.no_grad():
        ref = tiny.model.encode_text(tiny.tokenizer(ps)).float()
    assert (clip_dense.encode_text(tiny.model, tiny.tokenizer, ps) - ref).abs().max().item() < 1e-5
    # length-sorted chunks keep the prompts' order
    many = prompting.build_prompts(("{}", "damaged {} with a long deep scratch"), prompting.TEMPLATES[:4], "disc")
    with torch.no_grad():
        ref = tiny.model.encode_text(tiny.tokenizer(many)).float()
    got = clip_dense.encode_text(tiny.model, tiny.tokenizer, many, chunk=3)
    assert got.shape == ref.shape and (got - ref).abs().max().item() < 1e-5


def test_default_layers_follow_anomalyclip_quarters():
    assert clip_dense.default_layers(24) == (6, 12, 18, 24)
    assert clip_dense.default_layers(12) == (3, 6, 9, 12)
    assert clip_dense.default_vv_start(24) == 6


# ---------------------------------------------------------------------- backbone cache and weights
def test_backbone_cache_shares_one_model_and_release_drops_it():
    backbones.release()
    n = backbones.BUILD_COUNT["clip"]
    a = backbones.get_clip(backbones.TINY_TEST, weights="random")
    b = backbones.get_clip(backbones.TINY_TEST, weights="random")
    assert a is b and backbones.BUILD_COUNT["clip"] == n + 1 and a.random
    backbones.release()
    assert backbones.loaded() == []
    c = backbones.get_clip(backbones.TINY_TEST, weights="random")
    assert c is not a
    for p, q in zip(a.model.parameters(), c.model.parameters()):   # seeded: the same random weights
        assert torch.equal(p, q)


def test_missing_pretrained_weights_say_what_and_how(tmp_path, monkeypatch):
    for var in ("HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("MMAD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MMAD_CLIP_WEIGHTS", raising=False)
    n = backbones.BUILD_COUNT["clip"]
    with pytest.raises(MissingWeightsError) as e:
        backbones.get_clip("ViT-B-16", "openai")
    msg = str(e.value)
    assert "ViT-B/16" in msg and "MB" in msg and "--weights" in msg
    assert backbones.BUILD_COUNT["clip"] == n     # nothing was built
    det = registry.create("clip-zero-shot")
    assert det.weight_specs(det.get_params())[0].open_clip == ("ViT-B-16", "openai")
    assert det.weight_specs({"weights": "random"}) == ()
    with pytest.raises(MissingWeightsError):
        det.fit([], class_name="cookie")


# ---------------------------------------------------------------------- detectors end to end
def _det(did, **kw):
    return registry.create(did, backbone="tiny-test", weights="random", **kw)


@pytest.mark.parametrize("dtype", ["bfloat16"])
def test_reduced_precision_gives_the_float32_maps(dtype):
    """precision=bfloat16 (the CPU default where bf16 is native) runs the backbone in bf16; the maps
    stay those of float32 up to bf16 rounding, and float16 on the CPU is refused with a clear message."""
    s = make_part(3, 48, defect=True)
    maps = {}
    for p in ("float32", dtype):
        det = _det("clip-zero-shot", precision=p)
        det.fit([], class_name="disc")
        assert det._handle().dtype == p
        maps[p] = det.fuse(det.extract(s)).pixel_map
    a, b = maps["float32"], maps[dtype]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99 and np.nanmax(np.abs(a - b)) < 0.05
    from core.errors import InvalidParameterError
    det = _det("clip-zero-shot", precision="float16")
    with pytest.raises(InvalidParameterError, match="CUDA only"):
        det.fit([], class_name="disc")


def test_zero_shot_scores_rgb_organized_and_cloud_only_samples():
    det = _det("clip-zero-shot")
    det.fit([], class_name="disc")
    s = make_part(5, 48, defect=True)
    c = det.extract(s)
    assert set(c.maps) == {"rgb_text", "3d_text"} and set(c.point_maps) == {"3d_text"}
    assert c.maps["rgb_text"].shape == (48, 48) and c.point_maps["3d_text"].shape == (s.n_points,)
    strip = c.extra["views"]
    assert strip.images.shape == (9, 96, 96, 3) and strip.images.dtype == np.uint8
    assert strip.masks.shape == (9, 96, 96) and strip.masks.any(axis=(1, 2)).all() and not strip.masks.all()
    assert len(strip.labels) == 9 and strip.labels[2] == "front"
    assert c.extra["weights"] == "random"
    r = det.fuse(c)
    # the strip the GUI shows: each view's map, on the part only
    assert r.views is not None and r.views.maps.shape == (9, 96, 96)
    assert r.modalities == "RGB ✓ 3D ✓ (9 views)"
    assert np.isfinite(r.views.maps[strip.masks]).all() and np.isnan(r.views.maps[~strip.masks]).all()
    assert r.pixel_map.shape == (48, 48) and r.point_scores.shape == (s.n_points,)
    assert np.isfinite(r.image_score) and r.params["weights"] == "random"
    assert 0 <= np.nanmin(r.pixel_map) and np.nanmax(r.pixel_map) <= 1
    # fusion weights: all on RGB gives the RGB map
    r1 = det.fuse(c, {"rgb_weight": 1.0})
    assert np.allclose(r1.pixel_map, c.maps["rgb_text"], equal_nan=True)
    rp = det.fuse(c, {"fusion": "product", "alpha": 0.0, "beta": 1.0})
    assert np.allclose(rp.pixel_map, c.maps["rgb_text"] * c.maps["3d_text"], equal_nan=True)
    # RGB only, 3D only (organized), unorganized cloud only
    rgb_only = make_part(6, 48, points=False)
    assert det.fuse(det.extract(rgb_only)).point_scores is None
    d3 = make_part(7, 48, rgb=False)
    r3 = det.fuse(det.extract(d3))
    assert r3.pixel_map.shape == (48, 48) and np.isnan(r3.pixel_map[0, 0])   # a missing point stays missing
    cloud = make_part(8, 48, rgb=False)
    cloud.points = cloud.valid_points()
    rc = det.fuse(det.extract(cloud))
    assert rc.pixel_map is None and rc.point_scores.shape == (len(cloud.points),)


def test_prompt_edit_rescore_reencodes_text_only_and_changes_the_maps():
    det = _det("clip-zero-shot")
    det.fit([], class_name="disc")
    c = det.extract(make_part(9, 48))
    before = c.maps["rgb_text"].copy()
    views_before = det.fuse(c).views.maps.copy()
    n_img, n_txt = clip_dense.CALLS["image"], clip_dense.CALLS["text"]
    det.set_params(anomalous_states=("broken {}",), templates=("a photo of a {}.",))
    c2 = det.rescore(c)
    assert clip_dense.CALLS["image"] == n_img and clip_dense.CALLS["text"] == n_txt + 1
    assert not np.allclose(c2.maps["rgb_text"], before)
    # the rendered views' maps in the GUI strip follow the prompt edit too
    assert not np.allclose(det.fuse(c2).views.maps, views_before, equal_nan=True)
    # back to the defaults: the text pair comes from the cache (no encoder call), maps as at first
    det.set_params(anomalous_states=prompting.ANOMALOUS_STATES, templates=prompting.TEMPLATES)
    c3 = det.rescore(c2)
    assert np.allclose(c3.maps["rgb_text"], before, atol=1e-6)
    assert clip_dense.CALLS["image"] == n_img


def test_few_shot_memory_gives_zero_discrepancy_on_a_support_sample():
    det = _det("clip-few-shot")
    sup = [make_part(i, 48) for i in range(2)]
    st = det.fit(sup, class_name="disc")
    assert {k.split("_")[1] for k in st.arrays} == {"rgb", "3d"}
    c = det.extract(sup[0])
    assert np.nanmax(np.abs(c.maps["rgb_visual"])) < 1e-3    # its own tokens are in the memory
    c_other = det.extract(make_part(20, 48, defect=True))
    assert np.nanmax(c_other.maps["rgb_visual"]) > 1e-3
    r = det.fuse(c_other, {"text_weight": 0.0, "rgb_weight": 1.0})
    assert np.allclose(r.pixel_map, c_other.maps["rgb_visual"], equal_nan=True)
    # a saved-and-restored state gives the same maps
    other = _det("clip-few-shot")
    other.load_state(st)
    assert np.allclose(other.extract(sup[0]).maps["rgb_visual"], c.maps["rgb_visual"], atol=1e-6)


def test_through_session_fit_analyze_and_prompt_edit_without_backbone(tmp_path):
    from core.session import Session
    ds = MemoryDataset(tmp_path / "mem", classes=("disc",), n_train=2, n_good=1, n_bad=1, size=48)
    s = Session(ds, "clip-few-shot", params={"backbone": "tiny-test", "weights": "random"}, fit_store=None)
    ref = [r for r in ds.refs if r.split == "test"][0]
    a = s.analyze(ref)
    assert a.result.params["weights"] == "random" and np.isfinite(a.result.image_score)
    n_img = clip_dense.CALLS["image"]
    assert s.set_params(object_name="washer") == {"text"}
    b = s.analyze(ref)
    assert clip_dense.CALLS["image"] == n_img           # rescored from cached tokens
    assert not np.allclose(a.result.pixel_map, b.result.pixel_map)


def test_cli_score_with_random_weights(tmp_path, capsys):
    import cv2
    from core import cli
    img = make_part(3, 48).rgb
    p = tmp_path / "part.png"
    cv2.imwrite(str(p), img)
    out = tmp_path / "heat"
    rc = cli.main(["score", str(p), "--detector", "clip-zero-shot", "--param", "backbone=tiny-test",
                   "--param", "weights=random", "--out", str(out)])
    assert rc == 0
    assert len(list(out.glob("*_heatmap.png"))) == 1


def test_zuma_mode_uses_hybrid_view_maps_and_weighted_global_scores():
    det = _det("clip-zero-shot", mode="zuma")
    det.fit([], class_name="disc")
    s = make_part(11, 48, defect=True)
    c = det.extract(s)
    assert c.extra["zuma_hybrid"].shape[0] == 9                  # one hybrid token set per view
    assert {"rgb_global", "3d_global", "hybrid_global"} <= set(c.image)
    r = det.fuse(c)
    w = {"hybrid_global": 0.4, "3d_global": 0.3, "rgb_global": 0.3}
    assert r.image_score == pytest.approx(sum(c.image[k] * v for k, v in w.items()), rel=1e-6)
    plain = _det("clip-zero-shot")
    plain.fit([], class_name="disc")
    cp = plain.extract(s)
    assert np.allclose(cp.maps["rgb_text"], c.maps["rgb_text"], equal_nan=True)   # RGB branch unchanged
    assert not np.allclose(cp.point_maps["3d_text"], c.point_maps["3d_text"])      # 3D branch is ZUMA's
    # a prompt edit re-derives from the cached hybrid tokens (no image pass), and changes the 3D map
    n_img = clip_dense.CALLS["image"]
    before = c.point_maps["3d_text"].copy()
    det.set_params(anomalous_states=("broken {}",))
    c2 = det.rescore(c)
    assert clip_dense.CALLS["image"] == n_img and not np.allclose(c2.point_maps["3d_text"], before)
    # one modality missing: the branch that exists
    r_rgb = det.fuse(det.extract(make_part(12, 48, points=False)))
    assert np.isfinite(r_rgb.image_score) and r_rgb.point_scores is None
    c3 = det.extract(make_part(13, 48, rgb=False))
    assert "rgb_global" not in c3.image
    assert det.fuse(c3).image_score == pytest.approx(
        (0.4 * c3.image["hybrid_global"] + 0.3 * c3.image["3d_global"]) / 0.7, rel=1e-6)


@pytest.mark.parametrize("detector,extra", [("clip-zero-shot", ["--param", "mode=zuma"]), ("clip-few-shot", [])])
def test_eval_end_to_end_with_the_tiny_random_clip(tmp_path, capsys, detector, extra):
    import json
    from core import cli
    from core.demo import generate_demo
    root = generate_demo(tmp_path / "demo", classes=None, n_train=2, n_val=0, n_test_good=1, n_per_defect=1,
                         size=48, seed=4)
    from core.datasets import open_dataset
    cls = open_dataset(root).classes[0]
    out = tmp_path / "m.json"
    rc = cli.main(["eval", "--data", str(root), "--classes", cls, "--detector", detector, "--shots", "1",
                   "--param", "backbone=tiny-test", "--weights", "random", "--device", "cpu",
                   "--json", str(out), "--quiet", *extra])
    assert rc == 0, capsys.readouterr().err
    m = json.loads(out.read_text())["per_class"][cls]
    for k in ("image_auroc", "pixel_auroc", "seconds_per_sample"):
        assert m[k] is not None and np.isfinite(m[k]), k    # computed; no claim on quality (random weights)


# ---------------------------------------------------------------------- WinCLIP path (parity: benchmarks/)
def test_winclip_windows_and_harmonic_aggregation_against_loops():
    from core.detectors.clip import winclip
    m = winclip.window_masks((4, 5), 2)
    unfold = torch.nn.functional.unfold(torch.arange(20.).view(1, 1, 4, 5), kernel_size=2).int()[0].T
    assert np.array_equal(m, unfold.numpy())                        # anomalib's make_masks order
    cov = winclip.coverage((4, 5), m)
    s = torch.rand(2, len(m), dtype=torch.float64) + 0.1
    got = winclip.harmonic_aggregation(s, cov).numpy()
    for b in range(2):
        for p in range(20):
            ws = [w for w in range(len(m)) if p in m[w]]
            assert got[b, p] == pytest.approx(len(ws) / sum(1 / s[b, w].item() for w in ws))
    assert winclip.prompts_state_major(("{}", "bad {}"), ("a {}.", "the {}."), "x") == [
        "a x.", "the x.", "a bad x.", "the bad x."]


def test_winclip_scores_on_the_tiny_clip(tiny):
    from core.detectors.clip import winclip
    wc = winclip.WinClip(tiny.model, tiny.tokenizer)
    wc.set_class("disc")
    x = clip_dense.preprocess([make_part(i, 64).rgb for i in range(3)], 64, "cpu", torch.float32)
    r0 = wc.score(x)
    assert r0["pixel_map"].shape == (3, 64, 64) and "fs_map" not in r0
    wc.set_references(x[:1])
    r = wc.score(x)
    assert np.abs(r["fs_patch"][0]).max() < 1e-5                  # a reference is its own nearest neighbour
    assert r["fs_patch"][1:].max() > 1e-4
    assert np.allclose(r["pixel_map"].mean((1, 2)), ((r["zs_map"] + r["fs_map"]) / 2).mean((1, 2)), atol=1e-2)
    assert np.allclose(r["image_score"], (r["image_zero_shot"] + r["fs_map"].max((1, 2))) / 2, atol=1e-6)
    # window embeddings differ between windows (the bug anomalib #2571 makes them identical)
    enc = wc.encode(x)
    assert (enc.windows[0] - enc.windows[0][:, :1]).abs().max().item() > 1e-3
