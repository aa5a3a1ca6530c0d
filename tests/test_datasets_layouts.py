"""Tests of the RGB dataset layouts (MVTec AD, VisA, anomalib Folder), the plain-folder conventions,
layout detection and override, stem pairing and the listing / loading errors."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core import io
from core.datasets import (AnomalibFolderDataset, FolderDataset, MVTecADDataset, Real3DDataset, VisADataset,
                           available_layouts, detect_layout, layout_options, open_dataset)
from core.datasets.base import hold_out
from core.errors import EmptyDatasetError, InputError, SampleLoadError
from core.sample import GOOD
from test_datasets import make_mvtec, make_real3d, no_file_opened

H, W = 8, 10
GRID = Path("/work/shared/data/real/mvtec_ad/grid")


def _img(path, seed=0, h=H, w=W):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    io.write_rgb(path, rgb)
    return rgb


def _mask(path, box=(1, 4, 2, 6), h=H, w=W, value=255):
    m = np.zeros((h, w), np.uint8)
    m[box[0]:box[1], box[2]:box[3]] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    io.write_mask(path, m > 0) if value == 255 else _write_gray(path, m)
    return m > 0


def _write_gray(path, m):
    import cv2
    assert cv2.imwrite(str(path), m)


def _cloud(path, seed=0, n=40):
    pts = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    io.write_cloud(path, pts)
    return pts


def _counts(ds):
    return Counter((r.class_name, r.split, r.label) for r in ds)


# ====================================================================== MVTec AD
def make_mvtec_ad(root, classes=("bottle", "screw"), n_train=3, n_good=2, defects=(("crack", 2), ("hole", 1))):
    truth = {}
    seed = 0
    for cls in classes:
        for split, label, n in [("train", "good", n_train), ("test", "good", n_good)] + \
                               [("test", d, k) for d, k in defects]:
            for i in range(n):
                seed += 1
                rgb = _img(root / cls / split / label / f"{i:03d}.png", seed)
                mask = None
                if label != "good":
                    mask = _mask(root / cls / "ground_truth" / label / f"{i:03d}_mask.png", (i, i + 3, 2, 7))
                truth[f"{cls}/{split}/{label}/{i:03d}"] = (rgb, mask)
    (root / "license.txt").write_text("CC BY-NC-SA")
    return truth


def test_mvtec_ad_listing_loading_and_describe(tmp_path):
    truth = make_mvtec_ad(tmp_path / "mvtec")
    ds = open_dataset(tmp_path / "mvtec")
    assert isinstance(ds, MVTecADDataset) and ds.layout == "mvtec-ad"
    assert sorted(r.key for r in ds) == sorted(truth)
    assert ds.describe() == "MVTec AD, 2 classes, 16 samples"
    assert _counts(ds)[("bottle", "train", GOOD)] == 3 and _counts(ds)[("screw", "test", "crack")] == 2
    assert all(("gt" in r.paths) == (not r.is_good) for r in ds)
    for ref in ds:
        s = ds.load(ref)
        rgb, mask = truth[ref.key]
        np.testing.assert_array_equal(s.rgb, rgb)
        assert s.points is None and s.label == ref.label and s.split == ref.split
        if mask is None:
            assert s.gt_mask is None
        else:
            np.testing.assert_array_equal(s.gt_mask, mask)

    one = open_dataset(tmp_path / "mvtec" / "screw")  # a single class folder
    assert one.layout == "mvtec-ad" and one.classes == ["screw"] and one.describe() == "MVTec AD, 1 class, 8 samples"


def test_calibration_parts_are_held_out_good_parts_never_the_support(tmp_path):
    """Threshold calibration takes good parts the bank never saw: validation/good first, then the
    train/good parts the support left out, evenly spread up to the limit; never a test part."""
    make_mvtec_ad(tmp_path / "ad", classes=("grid",), n_train=9)
    ds = open_dataset(tmp_path / "ad")
    sup = ds.support_refs("grid", 3)
    cal = ds.calibration_refs("grid", sup)
    assert [r.id for r in cal] == ["003", "004", "005", "006", "007", "008"]
    assert all(r.split == "train" and r.is_good for r in cal)
    assert [r.id for r in ds.calibration_refs("grid", sup, limit=3)] == ["003", "005", "008"]
    assert ds.calibration_refs("grid", ds.support_refs("grid", 9)) == []      # all shots: nothing held out
    assert ds.calibration_refs("grid", sup, limit=0) == []
    # a set with validation/good: those come first, then the held-out train parts
    make_mvtec(tmp_path / "m3d", classes=("cookie",), n=3)
    d3 = open_dataset(tmp_path / "m3d")
    cal = d3.calibration_refs("cookie", d3.support_refs("cookie", 2))
    assert [(r.split, r.id) for r in cal] == [("validation", "000"), ("train", "002")]
    assert [(r.split, r.id) for r in d3.calibration_refs("cookie", d3.support_refs("cookie", 2), limit=1)] == \
        [("validation", "000")]


def test_mvtec_ad_listing_is_lazy_and_a_defect_without_mask_loads(tmp_path, monkeypatch):
    make_mvtec_ad(tmp_path, classes=("bottle",))
    (tmp_path / "bottle" / "ground_truth" / "hole" / "000_mask.png").unlink()
    with no_file_opened(tmp_path, monkeypatch):
        assert detect_layout(tmp_path) == "mvtec-ad"
        ds = open_dataset(tmp_path)
    ref = ds.select(label="hole")[0]
    assert "gt" not in ref.paths
    s = ds.load(ref)
    assert s.gt_mask is None and s.label == "hole"


def test_mvtec_ad_mask_of_another_size_is_an_error(tmp_path):
    make_mvtec_ad(tmp_path, classes=("bottle",))
    _mask(tmp_path / "bottle" / "ground_truth" / "crack" / "001_mask.png", h=H * 2, w=W * 2)
    ds = open_dataset(tmp_path)
    ref = next(r for r in ds if r.label == "crack" and r.id == "001")
    with pytest.raises(SampleLoadError) as ei:
        ds.load(ref)
    msg = str(ei.value)
    assert "001_mask.png" in msg and f"{2 * W}x{2 * H}" in msg and f"{W}x{H}" in msg and "001.png" in msg


def test_mvtec_ad_folder_named_like_an_image_is_reported(tmp_path):
    make_mvtec_ad(tmp_path, classes=("bottle",))
    fake = tmp_path / "bottle" / "test" / "good" / "007.png"
    fake.mkdir()
    ds = open_dataset(tmp_path)
    assert any("007.png" in w and "is a folder" in w for w in ds.warnings)
    ref = next(r for r in ds if r.id == "007")
    with pytest.raises(SampleLoadError, match="folder") as ei:
        ds.load(ref)
    assert "007.png" in str(ei.value)


def test_mvtec_ad_not_detected_when_only_part_of_the_folder_matches(tmp_path):
    """One MVTec-like sub-folder among other files must not hide the rest of the folder."""
    make_mvtec_ad(tmp_path / "kit", classes=("bottle",))
    _img(tmp_path / "loose.png")
    _img(tmp_path / "other" / "x.png")
    ds = open_dataset(tmp_path)
    assert isinstance(ds, FolderDataset)
    assert {"loose", "x"} <= {r.id for r in ds} and len(ds) == 10
    # the user can still ask for the layout on the class folder itself
    assert open_dataset(tmp_path / "kit", layout="mvtec-ad").layout == "mvtec-ad"


@pytest.mark.skipif(not GRID.is_dir(), reason="real MVTec AD grid folder not present")
def test_real_mvtec_ad_grid_folder():
    ds = open_dataset(GRID)
    assert ds.layout == "mvtec-ad" and ds.classes == ["grid"]
    assert len(ds.select(split="train", label=GOOD)) == 25
    assert len(ds.select(split="test", label=GOOD)) == 3
    defects = [r for r in ds.select(split="test") if not r.is_good]
    assert len(defects) == 11 and len({r.label for r in defects}) == 5
    assert all("gt" in r.paths for r in defects)
    assert ds.describe() == "MVTec AD, 1 class, 39 samples"
    s = ds.load(defects[0])
    assert s.gt_mask is not None and s.gt_mask.shape == s.rgb.shape[:2] and s.gt_mask.any()


# ====================================================================== VisA
def make_visa(root, classes=("candle", "pcb1"), n_normal=10, n_anomaly=3, csv=True):
    rows = ["object,split,label,image,mask"]
    seed = 0
    for cls in classes:
        for i in range(n_normal):
            seed += 1
            rel = f"{cls}/Data/Images/Normal/{i:04d}.JPG"
            _img(root / rel, seed)
            rows.append(f"{cls},{'train' if i < n_normal - 2 else 'test'},normal,{rel},")
        for i in range(n_anomaly):
            seed += 1
            rel = f"{cls}/Data/Images/Anomaly/{i:03d}.JPG"
            mrel = f"{cls}/Data/Masks/Anomaly/{i:03d}.png"
            _img(root / rel, seed)
            _mask(root / mrel, (i, i + 2, 1, 5), value=i + 1)  # VisA masks hold small class indices
            rows.append(f"{cls},test,anomaly,{rel},{mrel}")
    if csv:
        (root / "split_csv").mkdir(parents=True, exist_ok=True)
        (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return rows


def test_visa_split_csv(tmp_path):
    make_visa(tmp_path)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, VisADataset) and ds.layout == "visa"
    assert ds.describe() == "VisA, 2 classes, 26 samples"
    c = _counts(ds)
    assert c[("candle", "train", GOOD)] == 8 and c[("candle", "test", GOOD)] == 2
    assert c[("pcb1", "test", "defect")] == 3
    ref = next(r for r in ds if r.class_name == "candle" and r.label == "defect" and r.id == "002")
    s = ds.load(ref)
    expected = np.zeros((H, W), bool)
    expected[2:4, 1:5] = True
    np.testing.assert_array_equal(s.gt_mask, expected)  # any value > 0 is anomalous
    assert s.rgb.shape == (H, W, 3)

    one = open_dataset(tmp_path / "pcb1")  # a class folder: its rows of the parent's CSV
    assert one.layout == "visa" and one.classes == ["pcb1"] and len(one) == 13
    assert _counts(one)[("pcb1", "train", GOOD)] == 8


def test_visa_raw_tree_without_csv_holds_out_the_last_tenth(tmp_path, monkeypatch):
    make_visa(tmp_path, classes=("fryum",), n_normal=20, csv=False)
    with no_file_opened(tmp_path, monkeypatch):
        ds = open_dataset(tmp_path)
    assert ds.layout == "visa"
    train = [r.id for r in ds.select(split="train")]
    test_good = [r.id for r in ds.select(split="test", label=GOOD)]
    assert train == [f"{i:04d}" for i in range(18)] and test_good == ["0018", "0019"]
    assert all("gt" in r.paths for r in ds.select(label="defect"))
    assert len(open_dataset(tmp_path, layout="visa", test_ratio=0.5).select(split="train")) == 10


def test_visa_bad_csv(tmp_path):
    make_visa(tmp_path, classes=("candle",))
    csv = tmp_path / "split_csv" / "1cls.csv"
    csv.write_text("object,split,image\ncandle,train,x.JPG\n")
    with pytest.raises(InputError, match="missing column") as ei:
        open_dataset(tmp_path)
    assert "1cls.csv" in str(ei.value) and "label" in str(ei.value)
    csv.write_text("object,split,label,image,mask\ncandle,train,weird,a.JPG,\n")
    with pytest.raises(InputError, match="line 2: unknown label 'weird'"):
        open_dataset(tmp_path)
    with pytest.raises(InputError, match="split CSV not found"):
        open_dataset(tmp_path, layout="visa", split_csv="2cls_fewshot.csv")


def test_hold_out():
    assert hold_out(range(10), 0.1) == (list(range(9)), [9])
    assert hold_out(range(3), 0.1) == ([0, 1], [2])      # at least one test image
    assert hold_out([7], 0.5) == ([7], [])               # never all of them
    assert hold_out(range(4), 0.0) == (list(range(4)), [])


# ====================================================================== anomalib Folder
def make_folder_ad(root, n_normal=10, n_bad=3):
    for i in range(n_normal):
        _img(root / "normal" / f"{i:03d}.png", i)
    for i in range(n_bad):
        _img(root / "abnormal" / f"{i:03d}.png", 100 + i)
        if i < n_bad - 1:
            _mask(root / "mask" / (f"{i:03d}.png" if i % 2 == 0 else f"{i:03d}_mask.png"), (0, 2 + i, 0, 3))
    _mask(root / "mask" / "099.png")  # a mask without an image


def test_anomalib_folder_layout(tmp_path):
    make_folder_ad(tmp_path / "cubes")
    assert detect_layout(tmp_path / "cubes") == "folder"  # never guessed
    ds = open_dataset(tmp_path / "cubes", layout="folder-ad", normal_dir="normal", abnormal_dir="abnormal",
                      mask_dir="mask")
    assert isinstance(ds, AnomalibFolderDataset) and ds.describe() == "anomalib Folder, 1 class, 13 samples"
    assert [r.id for r in ds.select(split="train")] == [f"{i:03d}" for i in range(8)]
    assert [r.id for r in ds.select(split="test", label=GOOD)] == ["008", "009"]  # normal_split_ratio 0.2
    bad = {r.id: r for r in ds.select(label="abnormal")}
    assert set(bad) == {"000", "001", "002"} and all(r.split == "test" for r in bad.values())
    assert bad["000"].paths["gt"].name == "000.png" and bad["001"].paths["gt"].name == "001_mask.png"
    assert "gt" not in bad["002"].paths
    assert any("002.png" in w and "no mask" in w for w in ds.warnings)
    assert any("099.png" in w and "without an abnormal image" in w for w in ds.warnings)
    s = ds.load(bad["001"])
    assert s.gt_mask.sum() == 3 * 3 and s.label == "abnormal"

    # a normal_dir option alone selects the layout; normal_test_dir replaces the ratio split
    for i in range(2):
        _img(tmp_path / "cubes" / "normal_test" / f"t{i}.png", 50 + i)
    ds2 = open_dataset(tmp_path / "cubes", normal_dir="normal", normal_test_dir="normal_test")
    assert ds2.layout == "folder-ad"
    assert len(ds2.select(split="train")) == 10 and [r.id for r in ds2.select(split="test")] == ["t0", "t1"]


def test_anomalib_folder_errors(tmp_path):
    make_folder_ad(tmp_path)
    with pytest.raises(InputError, match="needs normal_dir"):
        open_dataset(tmp_path, layout="folder-ad")
    with pytest.raises(InputError, match="abnormal_dir folder not found") as ei:
        open_dataset(tmp_path, normal_dir="normal", abnormal_dir="defects")
    assert "defects" in str(ei.value)
    with pytest.raises(InputError, match="normal_split_ratio"):
        open_dataset(tmp_path, normal_dir="normal", normal_split_ratio=1.5)
    with pytest.raises(InputError, match="does not apply to the MVTec AD layout"):
        open_dataset(tmp_path, layout="mvtec-ad", mask_dir="mask")


# ====================================================================== plain-folder conventions
def test_train_good_and_test_with_clouds_is_a_plain_folder_not_real3d(tmp_path):
    """train/good/*.png|ply + test/*.png|ply: nothing vanishes, PNG + PLY of a stem are one sample."""
    for i in range(3):
        _img(tmp_path / "train" / "good" / f"g{i}.png", i)
        _cloud(tmp_path / "train" / "good" / f"g{i}.ply", i)
    for i in range(2):
        _img(tmp_path / "test" / f"p{i}.png", 10 + i)
        _cloud(tmp_path / "test" / f"p{i}.ply", 10 + i)
    _img(tmp_path / "test" / "crack" / "c0.png", 20)
    _cloud(tmp_path / "test" / "crack" / "c0.ply", 20)
    assert detect_layout(tmp_path) == "folder"
    ds = open_dataset(tmp_path)
    assert len(ds) == 6 and ds.classes == [tmp_path.name]
    assert all(set(r.paths) == {"rgb", "points"} for r in ds)   # one sample per stem, both modalities
    c = _counts(ds)
    assert c[(tmp_path.name, "train", GOOD)] == 3 and c[(tmp_path.name, "test", "")] == 2
    assert c[(tmp_path.name, "test", "crack")] == 1
    assert [r.id for r in ds.support_refs(tmp_path.name, 5)] == ["g0", "g1", "g2"]
    s = ds.load(ds.select(label="crack")[0])
    assert s.rgb is not None and s.points.shape == (40, 3)


def test_train_good_test_defect_with_ground_truth_and_clouds(tmp_path):
    """MVTec AD's shape with clouds is read as a plain folder, masks from ground_truth/<defect>/."""
    _img(tmp_path / "train" / "good" / "000.png")
    _cloud(tmp_path / "train" / "good" / "000.ply")
    _img(tmp_path / "test" / "crack" / "000.png", 1)
    _cloud(tmp_path / "test" / "crack" / "000.ply", 1)
    mask = _mask(tmp_path / "ground_truth" / "crack" / "000_mask.png")
    ds = open_dataset(tmp_path)
    assert ds.layout == "folder" and len(ds) == 2
    crack = ds.select(label="crack")[0]
    assert crack.paths["gt"].name == "000_mask.png"
    assert "gt" not in ds.select(split="train")[0].paths
    np.testing.assert_array_equal(ds.load(crack).gt_mask, mask)


def test_good_and_unknown_subfolders_are_one_class(tmp_path):
    for i in range(2):
        _img(tmp_path / "good" / f"{i}.png", i)
        _img(tmp_path / "unknown" / f"u{i}.png", 10 + i)
        _cloud(tmp_path / "unknown" / f"u{i}.ply", 10 + i)
    _img(tmp_path / "batch2" / "b.png", 30)
    ds = open_dataset(tmp_path)
    assert ds.classes == [tmp_path.name]
    c = _counts(ds)
    assert c == {(tmp_path.name, "", GOOD): 2, (tmp_path.name, "test", ""): 3}  # no folder name becomes a label
    assert all(set(r.paths) == {"rgb", "points"} for r in ds if r.id.startswith("u"))
    assert len(ds.support_refs(tmp_path.name, 5)) == 2
    assert ds.describe() == "Plain folder, 1 class, 5 samples"


def test_good_and_parts_at_the_top_level(tmp_path):
    for i in range(2):
        _img(tmp_path / "good" / f"g{i}.png", i)
        _cloud(tmp_path / "good" / f"g{i}.ply", i)
    _img(tmp_path / "p1.png", 5)
    _cloud(tmp_path / "p1.ply", 5)
    _cloud(tmp_path / "p2.ply", 6)
    ds = open_dataset(tmp_path)
    root = tmp_path.name
    assert {r.key for r in ds} == {f"{root}/good/g0", f"{root}/good/g1", f"{root}/test/p1", f"{root}/test/p2"}
    assert set(next(r for r in ds if r.id == "p1").paths) == {"rgb", "points"}


def test_good_bad_and_mask_folders(tmp_path):
    """anomalib's usual names read as a plain folder: masks match bad/ by stem, never good/."""
    _img(tmp_path / "good" / "000.png", 1)
    _img(tmp_path / "bad" / "000.png", 2)
    mask = _mask(tmp_path / "mask" / "000.png")
    ds = open_dataset(tmp_path)
    good = ds.select(label=GOOD)[0]
    bad = ds.select(label="bad")[0]
    assert bad.split == "test" and bad.paths["gt"].name == "000.png" and "gt" not in good.paths
    np.testing.assert_array_equal(ds.load(bad).gt_mask, mask)


def test_several_classes_with_good_folders(tmp_path):
    _img(tmp_path / "cookie" / "good" / "a.png")
    _img(tmp_path / "cookie" / "new" / "b.png")
    _img(tmp_path / "tire" / "good" / "c.png")
    _img(tmp_path / "tire" / "d.png")
    ds = open_dataset(tmp_path)
    assert {r.key for r in ds} == {"cookie/good/a", "cookie/test/b", "tire/good/c", "tire/test/d"}


def test_flat_folder(tmp_path):
    _img(tmp_path / "a.png")
    _cloud(tmp_path / "a.ply")
    _img(tmp_path / "b.png", 1)
    _cloud(tmp_path / "c.pcd", 2)
    ds = open_dataset(tmp_path)
    assert ds.layout == "folder" and sorted(r.id for r in ds) == ["a", "b", "c"]
    assert all((r.split, r.label) == ("", "") for r in ds)
    assert set(ds.select(where=lambda r: r.id == "a")[0].paths) == {"rgb", "points"}


def test_plain_folder_named_like_a_file_and_mask_size(tmp_path):
    _img(tmp_path / "rgb" / "001.png")
    (tmp_path / "rgb" / "002.png").mkdir()
    (tmp_path / "rgb" / "002.png" / "junk.png").write_bytes(b"x")  # not walked into
    for i in (1, 2):
        io.write_xyz_tiff(tmp_path / "xyz" / f"00{i}.tiff",
                          np.random.default_rng(i).normal(size=(H, W, 3)).astype(np.float32) + 5)
    _mask(tmp_path / "gt" / "001.png", h=H + 1)
    ds = open_dataset(tmp_path)
    assert sorted(r.id for r in ds) == ["001", "002"]
    assert any("002.png" in w and "is a folder" in w for w in ds.warnings)
    r2 = next(r for r in ds if r.id == "002")
    assert set(r2.paths) == {"rgb", "points"}  # not silently xyz-only
    with pytest.raises(SampleLoadError, match="folder"):
        ds.load(r2)
    with pytest.raises(SampleLoadError, match=f"mask size {W}x{H + 1} .* image size {W}x{H}") as ei:
        ds.load(next(r for r in ds if r.id == "001"))
    assert "001.png" in str(ei.value)


def test_mvtec3d_folder_named_like_an_image_and_mask_size(tmp_path):
    make_mvtec(tmp_path, classes=("cookie",), n=2)
    d = tmp_path / "cookie" / "test" / "crack"
    (d / "rgb" / "001.png").unlink()
    (d / "rgb" / "001.png").mkdir()
    ds = open_dataset(tmp_path)
    assert ds.layout == "mvtec3d" and any("001.png" in w for w in ds.warnings)
    ref = next(r for r in ds if r.key == "cookie/test/crack/001")
    assert "rgb" in ref.paths
    with pytest.raises(SampleLoadError, match="folder"):
        ds.load(ref)
    io.write_mask(d / "gt" / "000.png", np.ones((3, 3), bool))
    with pytest.raises(SampleLoadError, match="mask size 3x3") as ei:
        ds.load(next(r for r in ds if r.key == "cookie/test/crack/000"))
    assert "000.png" in str(ei.value)


# ====================================================================== Real3D-AD signature
def test_real3d_needs_its_signature(tmp_path):
    make_real3d(tmp_path / "r")
    assert detect_layout(tmp_path / "r") == "real3d"
    # without templates, test clouds + gt/*.txt still are Real3D-AD
    for p in (tmp_path / "r" / "duck" / "train").iterdir():
        p.unlink()
    assert detect_layout(tmp_path / "r") == "real3d"
    assert isinstance(open_dataset(tmp_path / "r"), Real3DDataset)
    # clouds in train/ and test/ without templates or gt: a plain folder
    _cloud(tmp_path / "u" / "train" / "a.pcd")
    _cloud(tmp_path / "u" / "test" / "b.pcd")
    assert detect_layout(tmp_path / "u") == "folder"


# ====================================================================== override and listing of layouts
def test_layout_override_and_available_layouts(tmp_path):
    ids = [k for k, _ in available_layouts()]
    assert ids[0] == "auto" and {"mvtec3d", "eyecandies", "real3d", "mvtec-ad", "visa", "folder-ad",
                                 "folder"} <= set(ids)
    assert dict(available_layouts())["mvtec-ad"] == "MVTec AD"
    assert "normal_dir" in layout_options("folder-ad") and layout_options("mvtec-ad") == {}

    make_mvtec_ad(tmp_path, classes=("bottle",))
    assert open_dataset(tmp_path, layout="auto").layout == "mvtec-ad"
    assert open_dataset(tmp_path, layout="MVTec_AD").layout == "mvtec-ad"   # spelling variants
    forced = open_dataset(tmp_path, layout="folder")
    assert forced.layout == "folder" and len(forced) == 8   # masks in ground_truth/ are not samples
    assert {r.key for r in forced} == {r.key for r in open_dataset(tmp_path)}
    with pytest.raises(EmptyDatasetError, match="no samples found in the VisA layout"):
        open_dataset(tmp_path, layout="visa")
    with pytest.raises(InputError, match="unknown dataset layout 'kitti'"):
        open_dataset(tmp_path, layout="kitti")
    with pytest.raises(InputError, match="does not apply"):
        open_dataset(tmp_path, split_csv="x.csv")
