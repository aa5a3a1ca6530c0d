"""Tests of the built-in demo dataset generator (core/demo/).

Small sizes (64-128 px) and counts keep the whole file fast; every property is checked on the
renderer itself (the same part rendered with and without a defect) or on the written files.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from sklearn.metrics import roc_auc_score

from core import demo
from core.errors import InputError

SMALL = dict(n_train=2, n_val=1, n_test_good=1, n_per_defect=1, size=64)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _pair(class_name: str, kind: str, seed: int, size: int = 96):
    """The same good part rendered without and with a defect of ``kind``."""
    rng = np.random.default_rng(seed)
    part = demo.sample_part(class_name, rng)
    defect = demo.sample_defect(part, kind, rng)
    return demo.render_part(part, None, size), demo.render_part(part, defect, size), defect


def _rgb_change(good, bad) -> np.ndarray:
    return np.abs(bad.rgb.astype(np.float32) - good.rgb.astype(np.float32)).mean(-1)


# ---------------------------------------------------------------------------------- API basics
def test_public_constants():
    assert len(demo.DEMO_CLASSES) >= 3
    assert set(demo.DEFECT_KINDS) == {"dent", "bump", "stain", "scratch", "hole", "crack"}
    assert set(demo.GEOMETRY_DEFECTS) | set(demo.TEXTURE_DEFECTS) | set(demo.MIXED_DEFECTS) == set(demo.DEFECT_KINDS)
    assert isinstance(demo.DEMO_VERSION, int)


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown demo class"):
        demo.generate_demo(tmp_path / "x", classes=["teapot"])
    with pytest.raises(ValueError, match="n_train"):
        demo.generate_demo(tmp_path / "x", n_train=-1)
    with pytest.raises(ValueError, match="size"):
        demo.generate_demo(tmp_path / "x", size=8)
    with pytest.raises(ValueError, match="unknown defect kind"):
        demo.sample_defect(demo.sample_part("cookie", 0), "smudge", 0)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------- the written tree
@pytest.fixture(scope="module")
def small_tree(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    return demo.generate_demo(out, **SMALL)


def test_layout_files_and_manifest(small_tree):
    root = small_tree
    man = json.loads((root / "demo.json").read_text())
    assert man["version"] == demo.DEMO_VERSION
    assert man["classes"] == list(demo.DEMO_CLASSES)
    assert man["defect_kinds"] == list(demo.DEFECT_KINDS)
    assert man["args"]["size"] == 64 and man["args"]["seed"] == 0
    per_class = SMALL["n_train"] + SMALL["n_val"] + SMALL["n_test_good"] + len(demo.DEFECT_KINDS) * SMALL["n_per_defect"]
    assert len(man["samples"]) == per_class * len(demo.DEMO_CLASSES)

    listed = set()
    for s in man["samples"]:
        folder = root / s["class"] / s["split"] / s["label"]
        sid = s["id"]
        assert len(sid) == 3 and sid.isdigit()
        roles = {"rgb", "xyz", "gt"} if s["split"] == "test" else {"rgb", "xyz"}
        assert set(s["files"]) == roles
        ext = {"rgb": "png", "xyz": "tiff", "gt": "png"}
        for role in roles:
            p = folder / role / f"{sid}.{ext[role]}"
            assert s["files"][role] == str(p.relative_to(root)).replace("\\", "/")
            assert p.is_file()
            listed.add(p)
        if s["label"] == "good":
            assert "defect" not in s
        else:
            assert s["defect"]["kind"] == s["label"]
    # nothing on disk that the manifest does not list
    on_disk = {p for p in root.rglob("*") if p.is_file() and p.name != "demo.json"}
    assert on_disk == listed
    # no gt folder for the good training/validation parts, validation present
    assert not (root / "cookie" / "train" / "good" / "gt").exists()
    assert (root / "cookie" / "validation" / "good" / "rgb" / "000.png").is_file()
    assert not list(root.parent.glob(".demo.tmp-*")), "temporary build folder left behind"


def test_file_contents(small_tree):
    root = small_tree
    man = json.loads((root / "demo.json").read_text())
    for s in man["samples"]:
        bgr = cv2.imread(str(root / s["files"]["rgb"]), cv2.IMREAD_UNCHANGED)
        assert bgr.shape == (64, 64, 3) and bgr.dtype == np.uint8
        xyz = tifffile.imread(root / s["files"]["xyz"])
        assert xyz.shape == (64, 64, 3) and xyz.dtype == np.float32
        missing = (xyz == 0).all(-1)
        # missing points are exactly (0, 0, 0), never partial, never NaN
        assert np.isfinite(xyz).all()
        assert not ((xyz[..., 2] == 0) & ~missing).any()
        assert 0 < missing.mean() < 0.3
        z = xyz[..., 2][~missing]
        assert 200 < z.min() and z.max() < 400          # mm, from an organized depth camera
        # the background plane is kept: the image corners lie well below the part's top
        corners = np.concatenate([xyz[:4, :4, 2].ravel(), xyz[-4:, -4:, 2].ravel()])
        assert np.median(corners[corners != 0]) > z.min() + 3
        if "gt" in s["files"]:
            gt = cv2.imread(str(root / s["files"]["gt"]), cv2.IMREAD_UNCHANGED)
            assert gt.shape == (64, 64) and gt.dtype == np.uint8
            assert set(np.unique(gt)) <= {0, 255}
            if s["label"] == "good":
                assert not gt.any()
            else:
                assert gt.any(), f"empty mask for {s['files']['gt']}"
                assert gt.sum() // 255 == s["defect_pixels"]


def test_bgr_order_on_disk(tmp_path):
    """PNGs hold what render_part returns (RGB order after cv2's BGR)."""
    root = demo.generate_demo(tmp_path / "d", classes=["cookie"], n_train=1, n_val=0, n_test_good=0,
                              n_per_defect=0, size=64)
    part = demo.sample_part("cookie", demo.sample_rng(0, "cookie", "train", "good", 0))
    r = demo.render_part(part, None, 64)
    on_disk = cv2.imread(str(root / "cookie/train/good/rgb/000.png"))[..., ::-1]
    assert np.array_equal(on_disk, r.rgb)
    assert r.rgb[r.object_mask, 0].mean() > r.rgb[r.object_mask, 2].mean() + 30   # a brown cookie
    assert np.array_equal(tifffile.imread(root / "cookie/train/good/xyz/000.tiff"), r.xyz)


def test_loader_reads_the_tree(small_tree):
    datasets = pytest.importorskip("core.datasets")
    ds = datasets.open_dataset(small_tree)
    assert sorted(ds.classes) == sorted(demo.DEMO_CLASSES)
    assert len(ds) == len(json.loads((small_tree / "demo.json").read_text())["samples"])
    ref = ds.select(["gasket"], split="test", label="hole")[0]
    s = ds.load(ref)
    assert s.rgb.shape == (64, 64, 3) and s.points.shape == (64, 64, 3)
    assert s.gt_mask.any() and s.is_anomalous
    assert np.isnan(s.points).any()          # on-disk zeros become missing points


# ---------------------------------------------------------------------------------- determinism
def test_deterministic_bytes_and_class_subsets(tmp_path):
    args = dict(n_train=1, n_val=1, n_test_good=1, n_per_defect=1, size=48)
    a = _files(demo.generate_demo(tmp_path / "a", classes=["cookie", "gasket"], **args))
    b = _files(demo.generate_demo(tmp_path / "b", classes=["cookie", "gasket"], **args))
    assert a == b
    # a subset of classes gives the same files for those classes (seeded by class name)
    c = _files(demo.generate_demo(tmp_path / "c", classes=["gasket"], **args))
    assert {k: v for k, v in a.items() if k.startswith("gasket")} == {k: v for k, v in c.items() if k != "demo.json"}
    # another seed gives other images
    d = _files(demo.generate_demo(tmp_path / "d", classes=["gasket"], seed=1, **args))
    assert set(d) == set(c)
    assert all(d[k] != c[k] for k in d if k.endswith((".png", ".tiff")) and "/gt/" not in k)


# ---------------------------------------------------------------------------------- defects
@pytest.mark.parametrize("cls", demo.DEMO_CLASSES)
def test_texture_defects_leave_xyz_unchanged(cls):
    for kind in demo.TEXTURE_DEFECTS:
        for seed in (1, 2):
            good, bad, _ = _pair(cls, kind, seed)
            assert np.array_equal(good.xyz, bad.xyz), f"{cls}/{kind}: a texture defect changed the 3D points"
            assert bad.gt.any()
            change = _rgb_change(good, bad)
            assert change[bad.gt].mean() > 12, f"{cls}/{kind}: not visible in RGB"
            # the change is local: nothing outside a few pixels around the mask
            near = cv2.dilate(bad.gt.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
            assert change[~near].max() <= 2


@pytest.mark.parametrize("cls", demo.DEMO_CLASSES)
def test_geometry_defects_plain_in_3d_faint_in_rgb(cls):
    stain = np.mean([_rgb_change(g, b)[b.gt].mean() for g, b, _ in (_pair(cls, "stain", s) for s in (3, 4, 5))])
    for kind in demo.GEOMETRY_DEFECTS:
        rgb_changes = []
        for seed in (3, 4, 5):
            good, bad, defect = _pair(cls, kind, seed)
            assert bad.gt.any()
            both = good.valid & bad.valid
            dz = bad.xyz[..., 2] - good.xyz[..., 2]      # same noise in both: the pure geometry change
            inside = bad.gt & both
            assert np.abs(dz[inside]).mean() >= 0.3, f"{cls}/{kind}: change inside the mask < 0.3 mm"
            # a dent moves the surface away from the camera, a bump towards it
            assert np.sign(np.median(dz[inside])) == (1 if kind == "dent" else -1)
            # the mask holds the region where the change exceeds ~15 % of its peak
            outside = both & ~bad.gt
            assert np.abs(dz[outside]).max() <= 0.2 * defect.depth + 0.05
            rgb_changes.append(_rgb_change(good, bad)[bad.gt].mean())
        assert np.mean(rgb_changes) < 0.5 * stain, f"{cls}/{kind}: RGB change not faint compared to a stain"


@pytest.mark.parametrize("cls", demo.DEMO_CLASSES)
def test_holes_and_cracks_in_3d_and_dark(cls):
    for kind in demo.MIXED_DEFECTS:
        good, bad, _ = _pair(cls, kind, 6)
        inside = bad.gt & good.valid & bad.valid
        dz = bad.xyz[..., 2] - good.xyz[..., 2]
        assert dz[inside].mean() > 0.15, f"{cls}/{kind}: no cavity in 3D"
        lum_good = good.rgb.astype(np.float32).mean(-1)[bad.gt].mean()
        lum_bad = bad.rgb.astype(np.float32).mean(-1)[bad.gt].mean()
        assert lum_bad < lum_good - 10, f"{cls}/{kind}: not dark in RGB"


def test_defect_sizes_are_realistic():
    """Every kind, every class: ground truth between ~0.3 % and 4 % of the part's area."""
    for cls in demo.DEMO_CLASSES:
        for kind in demo.DEFECT_KINDS:
            for seed in (7, 8):
                _, bad, _ = _pair(cls, kind, seed, size=128)
                frac = bad.gt.sum() / bad.object_mask.sum()
                assert 0.002 <= frac <= 0.045, f"{cls}/{kind}: defect covers {frac:.2%} of the part"
                assert not (bad.gt & ~bad.object_mask).any()


# ---------------------------------------------------------------------------------- good variation
@pytest.mark.parametrize("cls", demo.DEMO_CLASSES)
def test_good_parts_vary_and_fit_in_view(cls):
    parts = [demo.sample_part(cls, s) for s in range(12)]
    renders = [demo.render_part(p, None, 64) for p in parts]
    angles = np.array([p.angle for p in parts])
    assert angles.max() - angles.min() > 15
    assert np.ptp([p.light_azimuth for p in parts]) > 10
    assert np.ptp([p.light_intensity for p in parts]) > 0.15
    assert all(0.05 <= p.depth_noise <= 0.2 for p in parts)
    for r in renders:
        area = r.object_mask.mean()
        assert 0.15 < area < 0.65
        # the part never touches the image border
        assert not (r.object_mask[0].any() or r.object_mask[-1].any()
                    or r.object_mask[:, 0].any() or r.object_mask[:, -1].any())
    # pose changes move the part: object masks of two good parts differ noticeably
    diff = np.mean([(renders[i].object_mask ^ renders[i + 1].object_mask).mean() / renders[i].object_mask.mean()
                    for i in range(0, 12, 2)])
    assert diff > 0.05


@pytest.mark.parametrize("cls", demo.DEMO_CLASSES)
def test_pixel_difference_does_not_solve_it(cls):
    """Good-vs-good differences are as strong as a stain's, over a larger area, so a per-pixel
    difference against the most similar good reference does not separate stains from good parts."""
    size = 80
    refs = [demo.render_part(demo.sample_part(cls, 1000 + i), None, size) for i in range(4)]
    stack = np.stack([r.rgb.astype(np.float32) for r in refs])
    scores, labels, ratios = [], [], []
    for i in range(6):
        good, bad, _ = _pair(cls, "stain", 2000 + i, size)
        for img, lab in ((good, 0), (bad, 1)):
            diffs = np.abs(stack - img.rgb.astype(np.float32)).mean(-1)
            best = diffs[np.argmin(diffs.mean((1, 2)))]
            scores.append(cv2.GaussianBlur(best, (0, 0), 1.5).max())
            labels.append(lab)
        level = _rgb_change(good, bad)[bad.gt].mean()           # how much the stain changes its pixels
        gg = np.abs(good.rgb.astype(np.float32) - refs[i % 4].rgb.astype(np.float32)).mean(-1)
        ratios.append((gg > level).sum() / bad.gt.sum())
    # more good pixels differ by more than the stain's change than there are stain pixels
    assert np.median(ratios) > 2
    assert roc_auc_score(labels, scores) < 0.85


# ---------------------------------------------------------------------------------- atomic writes / cache
def test_refuses_to_overwrite_foreign_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match="not a demo dataset"):
        demo.generate_demo(out, classes=["cookie"], **SMALL)
    assert (out / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_replaces_a_previous_demo_atomically(tmp_path):
    out = tmp_path / "demo"
    demo.generate_demo(out, classes=["tube"], **SMALL)
    first = _files(out)
    demo.generate_demo(out, classes=["tube"], seed=5, **SMALL)
    second = _files(out)
    assert set(first) == set(second) and first != second
    assert json.loads((out / "demo.json").read_text())["args"]["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]    # no temp / old folders left


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("renderer crashed")
    monkeypatch.setattr(demo.writer, "render_part", boom)   # the writer calls it
    with pytest.raises(RuntimeError):
        demo.generate_demo(tmp_path / "demo", classes=["cookie"], **SMALL)
    assert list(tmp_path.iterdir()) == []


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MMAD_CACHE", str(tmp_path / "c"))
    assert demo.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MMAD_CACHE")
    assert demo.default_cache_dir() == Path.home() / ".cache" / "mmad-inspector"


def test_ensure_demo_reuses_complete_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MMAD_CACHE", str(tmp_path))
    kw = dict(classes=["gasket"], **SMALL)
    path = demo.ensure_demo(**kw)
    assert path == tmp_path / f"demo-v{demo.DEMO_VERSION}"
    assert (path / "demo.json").is_file()

    calls = []
    real = demo.generate_demo
    monkeypatch.setattr(demo.writer, "generate_demo", lambda *a, **k: calls.append(1) or real(*a, **k))
    stamp = (path / "demo.json").stat().st_mtime_ns
    assert demo.ensure_demo(**kw) == path
    assert calls == [] and (path / "demo.json").stat().st_mtime_ns == stamp

    # an incomplete tree (a file lost) is regenerated
    victim = next(path.rglob("*.tiff"))
    victim.unlink()
    assert demo.ensure_demo(**kw) == path
    assert calls == [1] and victim.is_file()

    # other arguments: the manifest differs, so the tree is regenerated
    demo.ensure_demo(**{**kw, "seed": 3})
    assert calls == [1, 1]
    assert json.loads((path / "demo.json").read_text())["args"]["seed"] == 3


def test_ensure_demo_concurrent_callers(tmp_path):
    kw = dict(classes=["cookie"], **SMALL)
    results, errors = [], []

    def worker():
        try:
            results.append(demo.ensure_demo(tmp_path, **kw))
        except Exception as e:  # pragma: no cover - reported below  # noqa: BLE001 - must never fail the caller
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(results)) == 1 and demo.is_complete(results[0])
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".demo-v") and not p.name.endswith(".lock")]
    assert leftovers == []


def test_cli(tmp_path, capsys):
    rc = demo.main([str(tmp_path / "cli"), "--classes", "bracket", "--size", "48", "--n-train", "1",
                    "--n-val", "0", "--n-test-good", "1", "--n-per-defect", "1", "-q"])
    assert rc == 0
    assert "wrote 8 samples" in capsys.readouterr().out
    assert (tmp_path / "cli" / "bracket" / "test" / "crack" / "gt" / "000.png").is_file()
    assert demo.main([str(tmp_path / "cli2"), "--size", "4", "-q"]) == 1
