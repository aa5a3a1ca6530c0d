"""Tests of core.datasets: layout detection, lazy listing, loading and errors on bad samples."""
from __future__ import annotations

import contextlib
import os
import sys

import cv2
import numpy as np
import pytest
import tifffile

from core import io
from core.datasets import (EyecandiesDataset, FolderDataset, MVTec3DDataset, Real3DDataset, detect_layout,
                           iter_samples, load_pair, load_sample, open_dataset)
from core.datasets.real3d import label_from_stem
from core.errors import EmptyDatasetError, InputError, SampleLoadError
from core.sample import GOOD

H, W = 12, 16


def _rng(seed=0):
    return np.random.default_rng(seed)


def _tiff(path, arr, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr, **kw)


# ====================================================================== "no file is opened" guard
_WATCH: list[str] = []
_OPENED: list[str] = []


def _audit(event, args):  # pragma: no cover - runs inside the interpreter's audit machinery
    if event == "open" and _WATCH and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        if path.startswith(_WATCH[0]):
            _OPENED.append(path)


sys.addaudithook(_audit)  # audit hooks cannot be removed: it only records while _WATCH is set


@contextlib.contextmanager
def no_file_opened(root, monkeypatch):
    """Fail if any file under ``root`` is opened (Python-level open/os.open, or any reader)."""
    def boom(*a, **k):
        raise AssertionError("a file was read while listing")

    with monkeypatch.context() as m:
        for name in ("read_rgb", "read_mask", "read_xyz_tiff", "read_cloud", "read_image_raw",
                     "read_point_labels", "read_simple_yaml", "tiff_is_xyz"):
            m.setattr(io, name, boom)
        m.setattr(cv2, "imread", boom)
        m.setattr(cv2, "imdecode", boom)
        m.setattr(tifffile, "imread", boom)
        m.setattr(tifffile, "TiffFile", boom)
        m.setattr(np, "load", boom)
        _OPENED.clear()
        _WATCH[:] = [str(root)]
        try:
            yield
        finally:
            _WATCH.clear()
    assert _OPENED == [], f"files opened while listing: {_OPENED[:5]}"


# ====================================================================== builders
def _xyz(seed, h=H, w=W, missing=((0, 0), (3, 5))):
    xyz = _rng(seed).normal(size=(h, w, 3)).astype(np.float32)
    xyz[..., 2] += 300.0
    for (i, j) in missing:
        xyz[i, j] = 0.0
    return xyz


def make_mvtec(root, classes=("cookie", "tire"), n=2):
    """A tiny MVTec 3D-AD tree; returns {key: (rgb, xyz, mask or None)}."""
    truth = {}
    seed = 0
    for cls in classes:
        for split, label, has_gt in (("train", "good", False), ("validation", "good", False),
                                     ("test", "good", False), ("test", "crack", True)):
            for i in range(n if split != "validation" else 1):
                seed += 1
                d = root / cls / split / label
                rgb = _rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)
                xyz = _xyz(seed)
                io.write_rgb(d / "rgb" / f"{i:03d}.png", rgb)
                _tiff(d / "xyz" / f"{i:03d}.tiff", xyz, photometric="rgb")
                mask = None
                if has_gt:
                    mask = np.zeros((H, W), bool)
                    mask[2 + i: 6 + i, 4:9] = True
                    io.write_mask(d / "gt" / f"{i:03d}.png", mask)
                truth[f"{cls}/{split}/{label}/{i:03d}"] = (rgb, xyz, mask)
    return truth


def make_eyecandies(root, cls="CandyCane"):
    """Tiny Eyecandies tree: train 000-001, val 000, test_public 00 (defect) and 01 (good)."""
    info = {}
    specs = [("train", "000", False), ("train", "001", False), ("val", "000", False),
             ("test_public", "00", True), ("test_public", "01", False)]
    for k, (split, sid, defect) in enumerate(specs):
        d = root / cls / split / "data"
        d.mkdir(parents=True, exist_ok=True)
        r = _rng(100 + k)
        rgb = r.integers(0, 256, (H, W, 3), dtype=np.uint8)
        raw = r.integers(1000, 64000, (H, W)).astype(np.uint16)
        lo, hi = 0.4 + 0.1 * k, 1.3 + 0.05 * k
        ang = 0.3 + 0.1 * k
        rot = np.array([[1, 0, 0], [0, np.cos(ang), -np.sin(ang)], [0, np.sin(ang), np.cos(ang)]])
        pose = np.eye(4)
        pose[:3, :3] = rot
        pose[:3, 3] = (0.05 * k, -0.1, 0.8)
        io.write_rgb(d / f"{sid}_image_4.png", rgb)
        io.write_rgb(d / f"{sid}_image_0.png", rgb // 2)  # other lights exist too and are ignored
        cv2.imwrite(str(d / f"{sid}_depth.png"), raw)
        (d / f"{sid}_info_depth.yaml").write_text(f"normalization:\n  max: {hi}\n  min: {lo}\n")
        np.savetxt(d / f"{sid}_pose.txt", pose)
        if split.startswith("test"):
            mask = np.zeros((H, W), bool)
            if defect:
                mask[3:6, 7:10] = True
            io.write_mask(d / f"{sid}_mask.png", mask)
        info[(split, sid)] = dict(rgb=rgb, raw=raw, lo=lo, hi=hi, pose=pose, defect=defect)
    return info


def _write_pcd(path, pts):
    io.write_cloud(path, pts)


def make_real3d(root, cls="duck"):
    base = root / cls
    r = _rng(7)
    clouds = {}
    for name in ("1_template", "2_template"):
        pts = r.normal(size=(300, 3)).astype(np.float32)
        _write_pcd(base / "train" / f"{name}.pcd", pts)
    for name in ("1_bulge", "2_good", "3_sink", "4_template"):
        pts = r.normal(size=(400, 3)).astype(np.float32)
        _write_pcd(base / "test" / f"{name}.pcd", pts)
        clouds[name] = pts
    (base / "gt").mkdir(parents=True)
    lab1 = np.zeros(400, int)
    lab1[:30] = 1
    np.savetxt(base / "gt" / "1_bulge.txt", np.c_[clouds["1_bulge"], lab1], fmt="%.6f,%.6f,%.6f,%d")
    lab3 = (r.random(400) > 0.9).astype(int)
    perm = r.permutation(400)  # rows in a different order than the cloud: matched by nearest neighbour
    np.savetxt(base / "gt" / "3_sink.txt", np.c_[clouds["3_sink"], lab3][perm], fmt="%.6f %.6f %.6f %d")
    return clouds, {"1_bulge": lab1.astype(bool), "3_sink": lab3.astype(bool)}


# ====================================================================== MVTec 3D-AD
def test_mvtec_listing_and_loading(tmp_path):
    truth = make_mvtec(tmp_path)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, MVTec3DDataset) and ds.layout == "mvtec3d"
    assert ds.classes == ["cookie", "tire"]
    assert sorted(r.key for r in ds) == sorted(truth)
    assert {r.split for r in ds} == {"train", "validation", "test"}
    assert len(ds.select(["cookie"], split="test", label="crack")) == 2
    assert [r.id for r in ds.support_refs("tire", 5)] == ["000", "001"]

    for ref in ds:
        s = ds.load(ref)
        rgb, xyz, mask = truth[ref.key]
        assert s.key == ref.key and s.split == ref.split and s.label == ref.label
        np.testing.assert_array_equal(s.rgb, rgb)
        assert s.points.shape == (H, W, 3) and s.points.dtype == np.float32
        missing = ~np.isfinite(s.points).all(-1)
        np.testing.assert_array_equal(missing, (xyz == 0).all(-1))  # on-disk zeros -> NaN
        np.testing.assert_array_equal(s.points[~missing], xyz[~missing])
        if mask is None:
            assert s.gt_mask is None
            assert not s.pixel_gt().any() and s.pixel_gt().shape == (H, W)  # good without gt: zeros
        else:
            np.testing.assert_array_equal(s.gt_mask, mask)
            assert s.is_anomalous and s.point_gt().sum() == mask[~missing].sum()


def test_mvtec_single_class_root_and_partial_samples(tmp_path):
    make_mvtec(tmp_path, classes=("cookie",))
    cdir = tmp_path / "cookie"
    (cdir / "test" / "crack" / "xyz" / "001.tiff").unlink()   # RGB-only sample
    (cdir / "train" / "good" / "rgb" / "000.png").unlink()    # xyz-only sample
    ds = open_dataset(cdir)
    assert ds.layout == "mvtec3d" and ds.classes == ["cookie"]
    rgb_only = ds.load(next(r for r in ds if r.key == "cookie/test/crack/001"))
    assert rgb_only.rgb is not None and rgb_only.points is None and rgb_only.gt_mask.any()
    xyz_only = ds.load(next(r for r in ds if r.key == "cookie/train/good/000"))
    assert xyz_only.rgb is None and xyz_only.organized and xyz_only.pixel_gt().shape == (H, W)


def test_mvtec_size_mismatch_and_all_missing(tmp_path):
    make_mvtec(tmp_path, classes=("cookie",), n=1)
    d = tmp_path / "cookie" / "test" / "crack"
    _tiff(d / "xyz" / "000.tiff", _xyz(1, w=W + 2), photometric="rgb")
    ds = open_dataset(tmp_path)
    ref = ds.select(label="crack")[0]
    with pytest.raises(SampleLoadError) as ei:
        ds.load(ref)
    msg = str(ei.value)
    assert "000.tiff" in msg and f"{W + 2}x{H}" in msg and f"{W}x{H}" in msg and "does not match" in msg

    _tiff(d / "xyz" / "000.tiff", np.zeros((H, W, 3), np.float32), photometric="rgb")
    with pytest.raises(SampleLoadError, match="all points are missing") as ei:
        ds.load(ref)
    assert "000.tiff" in str(ei.value)


def test_listing_1000_samples_opens_no_file(tmp_path, monkeypatch):
    """Listing is lazy: zero-byte placeholder files are listed without being opened."""
    root = tmp_path / "big"
    n = 0
    for cls in ("c1", "c2"):
        for split, label, count in (("train", "good", 300), ("test", "good", 100), ("test", "hole", 100)):
            d = root / cls / split / label
            for sub in ("rgb", "xyz", "gt"):
                (d / sub).mkdir(parents=True)
            for i in range(count):
                (d / "rgb" / f"{i:03d}.png").touch()
                (d / "xyz" / f"{i:03d}.tiff").touch()
                (d / "gt" / f"{i:03d}.png").touch()
                n += 1
    assert n == 1000
    with no_file_opened(root, monkeypatch):
        assert detect_layout(root) == "mvtec3d"
        ds = open_dataset(root)
        folder = open_dataset(root, layout="folder")
    assert len(ds) == 1000 and len(folder) == 1000
    assert {r.key for r in folder} == {r.key for r in ds}  # the generic layout infers the same names
    with pytest.raises(SampleLoadError, match="empty"):
        ds.load(ds[0])  # the placeholders really are unreadable: nothing checked them while listing


# ====================================================================== Eyecandies
def test_eyecandies_points_reproject_to_their_pixels(tmp_path):
    info = make_eyecandies(tmp_path)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, EyecandiesDataset) and ds.classes == ["CandyCane"]
    assert sorted((r.split, r.id) for r in ds) == sorted(
        ({"val": "validation", "test_public": "test"}.get(s, s), i) for s, i in info)
    assert all(r.label == GOOD for r in ds if r.split != "test")
    assert all(r.label == "" for r in ds if r.split == "test")  # unknown until the mask is read

    f = 711.11
    for ref in ds:
        split = {"validation": "val", "test": "test_public"}.get(ref.split, ref.split)
        t = info[(split, ref.id)]
        s = ds.load(ref)
        np.testing.assert_array_equal(s.rgb, t["rgb"])
        assert s.points.shape == (H, W, 3) and np.isfinite(s.points).all()
        # project the points back with K4 @ pose: they must land on their own pixel at their depth
        k4 = np.array([[f, 0, W / 2, 0], [0, f, H / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
        hom = np.concatenate([s.points.astype(np.float64), np.ones((H, W, 1))], -1) @ (k4 @ t["pose"]).T
        depth = t["raw"] / 65535.0 * (t["hi"] - t["lo"]) + t["lo"]
        v, u = np.mgrid[0:H, 0:W]
        np.testing.assert_allclose(hom[..., 2], depth, rtol=1e-5)
        np.testing.assert_allclose(hom[..., 0] / hom[..., 2], u, atol=1e-3)
        np.testing.assert_allclose(hom[..., 1] / hom[..., 2], v, atol=1e-3)
        if ref.split == "test":
            assert s.label == ("defect" if t["defect"] else GOOD)
            assert s.gt_mask.any() == t["defect"]

    ds.resolve_labels()
    assert sorted(r.label for r in ds if r.split == "test") == ["defect", GOOD]


def test_eyecandies_bad_files(tmp_path):
    make_eyecandies(tmp_path)
    data = tmp_path / "CandyCane" / "train" / "data"
    ds = open_dataset(tmp_path)
    ref = next(r for r in ds if r.split == "train" and r.id == "000")
    (data / "000_info_depth.yaml").unlink()
    ds = open_dataset(tmp_path)
    with pytest.raises(SampleLoadError, match="not found") as ei:
        ds.load(next(r for r in ds if r.split == "train" and r.id == "000"))
    assert "000_info_depth.yaml" in str(ei.value)

    (data / "001_pose.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(SampleLoadError, match="4 x 4") as ei:
        ds.load(next(r for r in ds if r.split == "train" and r.id == "001"))
    assert "001_pose.txt" in str(ei.value)

    vdata = tmp_path / "CandyCane" / "val" / "data"
    cv2.imwrite(str(vdata / "000_depth.png"), np.full((H, W), 9, np.uint8))
    with pytest.raises(SampleLoadError, match="16-bit") as ei:
        ds.load(next(r for r in ds if r.split == "validation"))
    assert "000_depth.png" in str(ei.value)
    assert ref.paths["points"].name == "000_depth.png"


# ====================================================================== Real3D-AD
def test_real3d_labels_and_point_ground_truth(tmp_path):
    clouds, labels = make_real3d(tmp_path)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, Real3DDataset) and ds.classes == ["duck"]
    train = ds.select(split="train")
    assert [r.id for r in train] == ["1_template", "2_template"] and all(r.is_good for r in train)
    test = {r.id: r for r in ds.select(split="test")}
    assert set(test) == {"1_bulge", "2_good", "3_sink"}  # the stray template in test/ is skipped
    assert (test["1_bulge"].label, test["2_good"].label, test["3_sink"].label) == ("bulge", GOOD, "sink")

    for name in ("1_bulge", "3_sink"):
        s = ds.load(test[name])
        assert s.rgb is None and not s.organized and s.points.shape == (400, 3)
        np.testing.assert_allclose(s.points, clouds[name], atol=1e-5)
        np.testing.assert_array_equal(s.point_gt(), labels[name])
    good = ds.load(test["2_good"])
    assert good.point_labels is None and not good.point_gt().any() and len(good.point_gt()) == 400


def test_real3d_label_from_stem():
    assert label_from_stem("1_bulge") == "bulge"
    assert label_from_stem("482_bulge_cut") == "bulge_cut"
    assert label_from_stem("7_good") == GOOD
    assert label_from_stem("12") == ""


def test_real3d_gt_count_mismatch_is_reported(tmp_path):
    make_real3d(tmp_path)
    np.savetxt(tmp_path / "duck" / "gt" / "1_bulge.txt", np.ones(10, int), fmt="%d")
    ds = open_dataset(tmp_path)
    with pytest.raises(SampleLoadError) as ei:
        ds.load(next(r for r in ds if r.id == "1_bulge"))
    assert "1_bulge.txt" in str(ei.value) and "400" in str(ei.value)


# ====================================================================== plain folders
def test_folder_pairing_roles_and_names(tmp_path):
    r = _rng(3)
    rgb = r.integers(0, 256, (H, W, 3), dtype=np.uint8)
    io.write_rgb(tmp_path / "a.png", rgb)
    pts = r.normal(size=(50, 3)).astype(np.float32)
    io.write_cloud(tmp_path / "a.ply", pts)
    io.write_rgb(tmp_path / "b.jpg", rgb)                             # image only
    np.save(tmp_path / "c.npy", pts)                                   # cloud only
    io.write_rgb(tmp_path / "part" / "rgb" / "001.png", rgb)           # role folders
    _tiff(tmp_path / "part" / "xyz" / "001.tiff", _xyz(4), photometric="rgb")
    mask = np.zeros((H, W), bool)
    mask[1:3, 1:3] = True
    io.write_mask(tmp_path / "part" / "gt" / "001.png", mask)
    io.write_rgb(tmp_path / "lot" / "good" / "g1.png", rgb)      # (a good/ at the top would make the
    io.write_rgb(tmp_path / "d.png", rgb)                              #  loose files test parts)
    io.write_mask(tmp_path / "d_mask.png", mask)                       # mask next to it
    _tiff(tmp_path / "t.tiff", rgb[..., 0])                # a gray TIFF image
    io.write_rgb(tmp_path / "kit" / "test" / "scratch" / "x.png", rgb)
    (tmp_path / "README.txt").write_text("not a cloud")
    (tmp_path / "notes.md").write_text("ignored")

    ds = open_dataset(tmp_path)
    assert isinstance(ds, FolderDataset) and ds.layout == "folder"
    root = tmp_path.name
    by_key = {ref.key: ref for ref in ds}
    assert set(by_key) == {f"{root}/a", f"{root}/b", f"{root}/c", "part/001", "lot/good/g1", f"{root}/d",
                           f"{root}/t", "kit/test/scratch/x"}

    s = ds.load(by_key[f"{root}/a"])
    np.testing.assert_array_equal(s.rgb, rgb)
    np.testing.assert_allclose(s.points, pts, atol=1e-5)
    assert s.label == ""  # nothing tells whether it is good
    assert ds.load(by_key[f"{root}/b"]).points is None
    assert ds.load(by_key[f"{root}/c"]).rgb is None
    part = ds.load(by_key["part/001"])
    assert part.organized and part.points.shape == (H, W, 3)
    np.testing.assert_array_equal(part.gt_mask, mask)
    assert part.label == "defect"  # read from the mask when loaded
    assert by_key["lot/good/g1"].label == GOOD
    assert ds.load(by_key[f"{root}/d"]).label == "defect"
    t = ds.load(by_key[f"{root}/t"])
    assert t.points is None and t.rgb.shape == (H, W, 3) and "rgb" in t.paths
    kit = by_key["kit/test/scratch/x"]
    assert (kit.class_name, kit.split, kit.label) == ("kit", "test", "scratch")


def test_folder_organized_cloud_must_match_image(tmp_path):
    io.write_rgb(tmp_path / "a.png", np.zeros((H, W, 3), np.uint8))
    _tiff(tmp_path / "a.tiff", _xyz(5, w=W - 3), photometric="rgb")
    ds = open_dataset(tmp_path)
    with pytest.raises(SampleLoadError) as ei:
        ds.load(ds[0])
    assert "a.tiff" in str(ei.value) and "does not match" in str(ei.value)


def test_folder_listing_is_lazy(tmp_path, monkeypatch):
    io.write_rgb(tmp_path / "x" / "a.png", np.zeros((4, 4, 3), np.uint8))
    _tiff(tmp_path / "x" / "a.tiff", _xyz(6, 4, 4, missing=((0, 0),)), photometric="rgb")
    make_real3d(tmp_path / "r3d")
    make_eyecandies(tmp_path / "eye")
    with no_file_opened(tmp_path, monkeypatch):
        assert len(open_dataset(tmp_path / "x")) == 1
        assert open_dataset(tmp_path / "r3d").layout == "real3d"
        assert open_dataset(tmp_path / "eye").layout == "eyecandies"


# ====================================================================== single files, pairs, errors
def test_single_file_and_pair(tmp_path):
    rgb = _rng(8).integers(0, 256, (H, W, 3), dtype=np.uint8)
    xyz = _xyz(8)
    io.write_rgb(tmp_path / "cookie" / "test" / "crack" / "rgb" / "005.png", rgb)
    _tiff(tmp_path / "cookie" / "test" / "crack" / "xyz" / "005.tiff", xyz, photometric="rgb")
    io.write_mask(tmp_path / "cookie" / "test" / "crack" / "gt" / "005.png", np.eye(H, W, dtype=bool))

    ds = open_dataset(tmp_path / "cookie" / "test" / "crack" / "rgb" / "005.png")
    assert len(ds) == 1 and ds.layout == "folder"
    s = load_sample(tmp_path / "cookie" / "test" / "crack" / "rgb" / "005.png")
    assert (s.class_name, s.split, s.label) == ("cookie", "test", "crack")
    np.testing.assert_array_equal(s.rgb, rgb)
    assert s.gt_mask is not None and s.gt_mask.sum() == min(H, W)

    pair = load_pair(tmp_path / "cookie" / "test" / "crack" / "rgb" / "005.png",
                     tmp_path / "cookie" / "test" / "crack" / "xyz" / "005.tiff")
    assert pair.organized and pair.key == "cookie/test/crack/005"
    assert np.isnan(pair.points[0, 0]).all()

    with pytest.raises(SampleLoadError, match="file not found") as ei:
        load_pair(tmp_path / "cookie" / "test" / "crack" / "rgb" / "005.png", tmp_path / "nope.ply")
    assert "nope.ply" in str(ei.value)
    with pytest.raises(InputError, match="unsupported file type"):
        (tmp_path / "x.doc").write_text("x")
        open_dataset(tmp_path / "x.doc")


def test_open_dataset_errors(tmp_path):
    with pytest.raises(InputError, match="not found") as ei:
        open_dataset(tmp_path / "missing")
    assert not isinstance(ei.value, EmptyDatasetError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDatasetError, match="no samples found: expected") as ei:
        open_dataset(tmp_path / "empty")
    assert "empty" in str(ei.value)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "README.txt").write_text("hello")
    (tmp_path / "docs" / "a.pdf").write_bytes(b"%PDF")
    with pytest.raises(EmptyDatasetError):
        open_dataset(tmp_path / "docs")
    with pytest.raises(InputError, match="unknown dataset layout"):
        open_dataset(tmp_path / "docs", layout="kitti")


def test_folder_listing_refuses_huge_trees(tmp_path, monkeypatch):
    import core.datasets.folder as folder

    for i in range(30):
        (tmp_path / f"{i}.png").touch()
    monkeypatch.setattr(folder, "MAX_LISTED_FILES", 20)
    with pytest.raises(InputError, match="too many files") as ei:
        open_dataset(tmp_path)
    assert not isinstance(ei.value, EmptyDatasetError)


# ====================================================================== batch helper
def test_iter_samples_skips_bad_samples_and_goes_on(tmp_path):
    truth = make_mvtec(tmp_path, classes=("cookie",), n=2)
    bad = tmp_path / "cookie" / "test" / "crack" / "rgb" / "001.png"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated PNG
    ds = open_dataset(tmp_path)
    errors = []
    got = list(iter_samples(ds, on_error=lambda ref, err: errors.append((ref.key, err))))
    assert len(got) == len(truth) - 1
    assert [k for k, _ in errors] == ["cookie/test/crack/001"]
    err = errors[0][1]
    assert isinstance(err, SampleLoadError) and "001.png" in str(err) and "truncated" in str(err)
    assert all(s.key == r.key for r, s in got)

    # an unexpected failure inside a loader is reported the same way (wrapped), not raised
    refs = ds.select(split="train")
    original = ds.load

    def flaky(ref):
        if ref.id == "000":
            raise RuntimeError("boom")
        return original(ref)

    ds.load = flaky
    errors.clear()
    got = list(iter_samples(ds, refs, on_error=lambda ref, err: errors.append(err)))
    assert [r.id for r, _ in got] == ["001"]
    assert len(errors) == 1 and isinstance(errors[0], SampleLoadError) and "boom" in str(errors[0])
