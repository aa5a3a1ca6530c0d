"""Tests of core.io: readers/writers and their error messages on bad input."""
from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
import tifffile

from core import io
from core.errors import InputError, SampleLoadError


def _rng(seed=0):
    return np.random.default_rng(seed)


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _err(fn, *args, **kw) -> str:
    with pytest.raises(SampleLoadError) as ei:
        fn(*args, **kw)
    return str(ei.value)


# ====================================================================== RGB
@pytest.mark.parametrize("ext", [".png", ".bmp", ".tiff"])
def test_read_rgb_lossless_roundtrip_keeps_rgb_order(tmp_path, ext):
    rgb = _rng().integers(0, 256, (17, 23, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)  # pure red must stay in channel 0
    p = tmp_path / f"img{ext}"
    if ext == ".tiff":
        tifffile.imwrite(p, rgb, photometric="rgb")
    else:
        cv2.imwrite(str(p), rgb[:, :, ::-1])  # OpenCV writes BGR
    out = io.read_rgb(p)
    assert out.dtype == np.uint8 and out.shape == (17, 23, 3)
    np.testing.assert_array_equal(out, rgb)


def test_read_rgb_jpeg_is_close(tmp_path):
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200  # flat red-ish image survives JPEG nearly exactly
    rgb[..., 2] = 40
    p = tmp_path / "a.jpg"
    cv2.imwrite(str(p), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = io.read_rgb(p)
    assert np.abs(out.astype(int) - rgb).max() <= 3


def test_gray_rgba_16bit_and_planar_tiff_conversions(tmp_path):
    g = _rng(1).integers(0, 256, (9, 11), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), g)
    out = io.read_rgb(tmp_path / "g.png")
    assert out.shape == (9, 11, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)

    rgba = _rng(2).integers(0, 256, (9, 11, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgba[..., [2, 1, 0, 3]])  # BGRA on disk
    np.testing.assert_array_equal(io.read_rgb(tmp_path / "a.png"), rgba[..., :3])

    v16 = np.array([[0, 257 * 100, 65535, 257 * 7 + 200]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), v16)
    out = io.read_rgb(tmp_path / "d.png", min_side=1)[..., 0]  # a 4 x 1 strip of values
    np.testing.assert_array_equal(out, np.round(v16 / 257.0).astype(np.uint8))

    planar = _rng(3).integers(0, 256, (3, 10, 12), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "p.tiff", planar, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(io.read_rgb(tmp_path / "p.tiff"), np.moveaxis(planar, 0, -1))


def test_read_rgb_bad_files_have_plain_messages(tmp_path):
    img = _rng().integers(0, 256, (40, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "t.png"), img)
    cv2.imwrite(str(tmp_path / "t.jpg"), img)
    cv2.imwrite(str(tmp_path / "t.bmp"), img)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("this is not an image")
    (tmp_path / "dir.png").mkdir()

    msg = _err(io.read_rgb, tmp_path / "missing.png")
    assert "missing.png" in msg and "file not found" in msg
    msg = _err(io.read_rgb, tmp_path / "empty.png")
    assert "empty.png" in msg and "empty (0 bytes)" in msg
    msg = _err(io.read_rgb, _truncate(tmp_path / "t.png"))
    assert "t.png" in msg and "truncated or corrupt PNG" in msg
    msg = _err(io.read_rgb, _truncate(tmp_path / "t.jpg"))
    assert "t.jpg" in msg and "truncated or corrupt JPEG" in msg
    msg = _err(io.read_rgb, _truncate(tmp_path / "t.bmp"))
    assert "t.bmp" in msg and "truncated or corrupt BMP" in msg
    msg = _err(io.read_rgb, tmp_path / "text.png")
    assert "text.png" in msg and "not a valid PNG" in msg
    msg = _err(io.read_rgb, tmp_path / "dir.png")
    assert "folder" in msg


def test_truncated_and_garbage_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "t.tiff", _rng().random((30, 30, 3)).astype(np.float32), photometric="rgb")
    msg = _err(io.read_rgb, _truncate(tmp_path / "t.tiff"))
    assert "t.tiff" in msg and ("truncated" in msg or "corrupt" in msg)
    (tmp_path / "g.tiff").write_bytes(b"II*\x00" + b"\xff" * 40)
    msg = _err(io.read_xyz_tiff, tmp_path / "g.tiff")
    assert "g.tiff" in msg and ("corrupt" in msg or "not a valid TIFF" in msg)


# ====================================================================== masks
def test_read_mask_any_positive_value_is_defect_and_size_mismatch(tmp_path):
    ids = np.zeros((4, 6), np.uint8)
    ids[1, 2], ids[3, 5], ids[0, 0] = 2, 7, 255
    cv2.imwrite(str(tmp_path / "m.png"), ids)
    m = io.read_mask(tmp_path / "m.png")
    assert m.dtype == bool
    np.testing.assert_array_equal(m, ids > 0)
    # a mask of another size than the image is an error naming both sizes ...
    with pytest.raises(SampleLoadError, match=r"m.png: mask size 6 x 4 \(W x H\) does not match the image size 18 x 12"):
        io.read_mask(tmp_path / "m.png", shape=(12, 18))
    # ... unless an explicit resize is asked for: integer upscaling by 3 with nearest neighbour ==
    # Kronecker product with a 3x3 block
    np.testing.assert_array_equal(io.read_mask(tmp_path / "m.png", shape=(12, 18), resize=True),
                                  np.kron(ids > 0, np.ones((3, 3), bool)))
    # colour mask: red-only pixels count, black does not
    col = np.zeros((4, 6, 3), np.uint8)
    col[2, 3] = (0, 0, 9)
    cv2.imwrite(str(tmp_path / "c.png"), col)
    assert io.read_mask(tmp_path / "c.png").sum() == 1 and io.read_mask(tmp_path / "c.png")[2, 3]


def test_write_rgb_and_mask_roundtrip(tmp_path):
    rgb = _rng(5).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    np.testing.assert_array_equal(io.read_rgb(io.write_rgb(tmp_path / "sub" / "a.png", rgb)), rgb)
    m = _rng(6).random((8, 9)) > 0.5
    np.testing.assert_array_equal(io.read_mask(io.write_mask(tmp_path / "m.png", m)), m)


# ====================================================================== xyz tiff
def test_xyz_tiff_zero_and_nonfinite_points_become_nan(tmp_path):
    xyz = _rng(7).normal(size=(6, 8, 3)).astype(np.float32) + 5
    xyz[0, 0] = 0.0                      # missing on disk
    xyz[1, 1] = (1.0, np.inf, 2.0)       # non-finite coordinate -> whole point missing
    xyz[2, 2] = (0.0, 0.0, 3.0)          # a zero coordinate alone is a valid point
    tifffile.imwrite(tmp_path / "x.tiff", xyz, photometric="rgb")
    out = io.read_xyz_tiff(tmp_path / "x.tiff")
    assert out.dtype == np.float32 and out.shape == (6, 8, 3)
    missing = ~np.isfinite(out).all(-1)
    assert set(zip(*np.nonzero(missing))) == {(0, 0), (1, 1)}
    assert np.isnan(out[0, 0]).all() and np.isnan(out[1, 1]).all()
    ok = ~missing
    np.testing.assert_array_equal(out[ok], xyz[ok])


def test_write_xyz_tiff_stores_nan_as_zero(tmp_path):
    xyz = _rng(8).random((5, 7, 3)).astype(np.float32) + 1
    xyz[3, 4] = np.nan
    p = io.write_xyz_tiff(tmp_path / "w.tiff", xyz)
    raw = tifffile.imread(p)
    assert raw.dtype == np.float32 and raw.shape == (5, 7, 3)
    assert (raw[3, 4] == 0).all()
    back = io.read_xyz_tiff(p)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(xyz))
    with pytest.raises(InputError):
        io.write_xyz_tiff(tmp_path / "bad.tiff", np.zeros((5, 7)))


def test_xyz_tiff_planar_wrong_shape_and_all_missing(tmp_path):
    xyz = _rng(9).random((3, 6, 8)).astype(np.float32) + 1
    tifffile.imwrite(tmp_path / "p.tiff", xyz, photometric="minisblack")
    np.testing.assert_array_equal(io.read_xyz_tiff(tmp_path / "p.tiff"), np.moveaxis(xyz, 0, -1))

    tifffile.imwrite(tmp_path / "d.tiff", np.ones((6, 8), np.float32))
    msg = _err(io.read_xyz_tiff, tmp_path / "d.tiff")
    assert "d.tiff" in msg and "expected an H x W x 3 xyz TIFF, got shape (6, 8)" in msg

    tifffile.imwrite(tmp_path / "z.tiff", np.zeros((6, 8, 3), np.float32), photometric="rgb")
    msg = _err(io.read_xyz_tiff, tmp_path / "z.tiff")
    assert "z.tiff" in msg and "all points are missing" in msg
    assert np.isnan(io.read_xyz_tiff(tmp_path / "z.tiff", require_points=False)).all()


# ====================================================================== point clouds
def _cloud(n=500, seed=0):
    r = _rng(seed)
    return r.normal(size=(n, 3)).astype(np.float32), r.integers(0, 256, (n, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext", [".ply", ".pcd", ".npy", ".txt", ".xyz", ".csv"])
def test_cloud_roundtrip_with_colours(tmp_path, ext):
    pts, cols = _cloud()
    p = io.write_cloud(tmp_path / f"c{ext}", pts, cols)
    out, colors, organized = io.read_cloud(p)
    assert not organized and out.dtype == np.float32 and out.shape == pts.shape
    np.testing.assert_allclose(out, pts, atol=1e-5)
    assert colors is not None and colors.dtype == np.uint8
    np.testing.assert_array_equal(colors, cols)


def test_ascii_ply_and_pcd_are_read(tmp_path):
    import open3d as o3d

    pts, _ = _cloud(200, 1)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
    for name in ("a.ply", "a.pcd"):
        o3d.io.write_point_cloud(str(tmp_path / name), pc, write_ascii=True)
        out, colors, organized = io.read_cloud(tmp_path / name)
        np.testing.assert_allclose(out, pts, atol=1e-5)
        assert colors is None and not organized
    o3d.io.write_point_cloud(str(tmp_path / "z.pcd"), pc, compressed=True)
    np.testing.assert_allclose(io.read_cloud(tmp_path / "z.pcd")[0], pts, atol=1e-5)


@pytest.mark.parametrize("name,ascii_,compressed", [("b.ply", False, False), ("a.ply", True, False),
                                                    ("b.pcd", False, False), ("a.pcd", True, False),
                                                    ("z.pcd", False, True)])
def test_truncated_ply_pcd_are_rejected(tmp_path, name, ascii_, compressed):
    """open3d pads truncated files with zeros instead of failing: the header check must catch it."""
    import open3d as o3d

    pts, _ = _cloud(1000, 2)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts.astype(np.float64)))
    p = tmp_path / name
    o3d.io.write_point_cloud(str(p), pc, write_ascii=ascii_, compressed=compressed)
    msg = _err(io.read_cloud, _truncate(p, 0.6))
    assert name in msg and "truncated" in msg


def test_corrupt_and_empty_ply(tmp_path):
    (tmp_path / "g.ply").write_bytes(b"garbage that is not a ply file")
    msg = _err(io.read_cloud, tmp_path / "g.ply")
    assert "g.ply" in msg and "not a PLY file" in msg
    (tmp_path / "e.ply").write_text("ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\n"
                                    "property float y\nproperty float z\nend_header\n")
    msg = _err(io.read_cloud, tmp_path / "e.ply")
    assert "e.ply" in msg and "no points" in msg
    (tmp_path / "g.pcd").write_text("hello\nworld\n")
    msg = _err(io.read_cloud, tmp_path / "g.pcd")
    assert "g.pcd" in msg and "corrupt" in msg
    (tmp_path / "empty.pcd").write_bytes(b"")
    assert "empty (0 bytes)" in _err(io.read_cloud, tmp_path / "empty.pcd")

    def pcd_header(size, data):
        return (f"VERSION 0.7\nFIELDS x y z\nSIZE {size} {size} {size}\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 10\n"
                f"HEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS 10\nDATA {data}\n").encode()

    # compressed block of the announced size whose content is garbage: open3d reads nothing
    (tmp_path / "c.pcd").write_bytes(pcd_header(4, "binary_compressed") + (40).to_bytes(4, "little")
                                     + (120).to_bytes(4, "little") + b"\xff" * 40)
    msg = _err(io.read_cloud, tmp_path / "c.pcd")
    assert "c.pcd" in msg and "could not read point cloud (corrupt, truncated or unsupported format)" in msg
    # float16 coordinates: open3d would return zeros, so they are refused up front
    (tmp_path / "h.pcd").write_bytes(pcd_header(2, "binary") + np.ones((10, 3), np.float16).tobytes())
    msg = _err(io.read_cloud, tmp_path / "h.pcd")
    assert "h.pcd" in msg and "unsupported PCD coordinate type F16" in msg


def test_nan_rows_dropped_and_all_nan_rejected(tmp_path):
    pts, _ = _cloud(50, 3)
    pts[[3, 7, 11]] = np.nan
    pts[20, 1] = np.inf
    io.write_cloud(tmp_path / "n.npy", pts)
    out, _, _ = io.read_cloud(tmp_path / "n.npy")
    keep = np.isfinite(pts).all(1)
    assert out.shape == (keep.sum(), 3)
    np.testing.assert_array_equal(out, pts[keep])

    lines = "\n".join("nan nan nan" for _ in range(5))
    (tmp_path / "allnan.xyz").write_text(lines + "\n")
    msg = _err(io.read_cloud, tmp_path / "allnan.xyz")
    assert "allnan.xyz" in msg and "all points are missing" in msg
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), np.float32))
    assert "point cloud is empty" in _err(io.read_cloud, tmp_path / "empty.npy")


def test_organized_pcd_and_npy(tmp_path):
    h, w = 3, 4
    grid = np.arange(h * w * 3, dtype=np.float32).reshape(h, w, 3) + 1
    grid[0, 1] = np.nan
    grid[2, 3] = 0.0
    rows = "\n".join(" ".join("nan" if np.isnan(v) else f"{v:g}" for v in pt) for pt in grid.reshape(-1, 3))
    (tmp_path / "o.pcd").write_text(f"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH {w}\n"
                                    f"HEIGHT {h}\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {h * w}\nDATA ascii\n{rows}\n")
    np.save(tmp_path / "o.npy", grid)
    for name in ("o.pcd", "o.npy"):
        out, colors, organized = io.read_cloud(tmp_path / name)
        assert organized and out.shape == (h, w, 3)
        missing = ~np.isfinite(out).all(-1)
        assert set(zip(*np.nonzero(missing))) == {(0, 1), (2, 3)}
        np.testing.assert_array_equal(out[~missing], grid[~missing])


def test_npy_variants_and_errors(tmp_path):
    pts, _ = _cloud(40, 4)
    normals = _rng(4).normal(size=(40, 3))  # negative values: not colours
    np.save(tmp_path / "n6.npy", np.concatenate([pts, normals], 1))
    out, colors, _ = io.read_cloud(tmp_path / "n6.npy")
    assert colors is None
    np.testing.assert_allclose(out, pts)

    rec = np.zeros(40, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("intensity", "f4")])
    rec["x"], rec["y"], rec["z"] = pts.T
    np.save(tmp_path / "rec.npy", rec)
    np.testing.assert_allclose(io.read_cloud(tmp_path / "rec.npy")[0], pts)

    with open(tmp_path / "obj.npy", "wb") as f:
        np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    msg = _err(io.read_cloud, tmp_path / "obj.npy")
    assert "obj.npy" in msg and "pickled" in msg

    np.save(tmp_path / "t.npy", np.ones((1000, 3), np.float32))
    msg = _err(io.read_cloud, _truncate(tmp_path / "t.npy"))
    assert "t.npy" in msg and "truncated" in msg

    np.save(tmp_path / "two.npy", np.ones((10, 2)))
    msg = _err(io.read_cloud, tmp_path / "two.npy")
    assert "two.npy" in msg and "got shape (10, 2)" in msg

    (tmp_path / "pk.npy").write_bytes(pickle.dumps([1, 2, 3]))
    assert "pk.npy" in _err(io.read_cloud, tmp_path / "pk.npy")


def test_text_clouds_headers_delimiters_and_errors(tmp_path):
    pts, cols = _cloud(30, 5)
    lab = (_rng(5).random(30) > 0.5).astype(int)
    body = "\n".join(f"{x:.6f},{y:.6f},{z:.6f},{l}" for (x, y, z), l in zip(pts, lab))
    (tmp_path / "h.csv").write_text("x,y,z,label\n" + body + "\n")
    out, colors, _ = io.read_cloud(tmp_path / "h.csv")
    np.testing.assert_allclose(out, pts, atol=1e-5)
    assert colors is None

    (tmp_path / "bad.txt").write_text("1 2 3\n4 5 6\n7 8\n")
    msg = _err(io.read_cloud, tmp_path / "bad.txt")
    assert "bad.txt" in msg and ("malformed" in msg or "truncated" in msg)
    (tmp_path / "words.txt").write_text("hello world\nno numbers here\n")
    msg = _err(io.read_cloud, tmp_path / "words.txt")
    assert "words.txt" in msg and "no numeric rows" in msg
    (tmp_path / "two.txt").write_text("1 2\n3 4\n")
    assert "at least 3 columns" in _err(io.read_cloud, tmp_path / "two.txt")


def test_unsupported_extension(tmp_path):
    (tmp_path / "c.obj").write_text("v 1 2 3\n")
    msg = _err(io.read_cloud, tmp_path / "c.obj")
    assert "c.obj" in msg and "unsupported point cloud format" in msg


def test_huge_inputs_are_refused_before_loading(tmp_path, monkeypatch):
    pts, _ = _cloud(100, 6)
    files = [io.write_cloud(tmp_path / f"c{e}", pts) for e in (".ply", ".pcd", ".npy", ".txt")]
    files.append(io.write_xyz_tiff(tmp_path / "c.tiff", pts.reshape(10, 10, 3) + 10))
    monkeypatch.setattr(io, "MAX_POINTS", 50)
    for p in files:
        msg = _err(io.read_cloud, p)
        assert p.name in msg and "too large" in msg


# ====================================================================== per-point labels
def test_point_labels_row_order_and_nearest_neighbour(tmp_path):
    pts, _ = _cloud(300, 7)
    lab = _rng(7).random(300) > 0.8
    rows = np.concatenate([pts, lab[:, None]], 1)
    np.savetxt(tmp_path / "same.txt", rows, fmt="%.6f,%.6f,%.6f,%d")
    xyz, labels = io.read_point_labels(tmp_path / "same.txt")
    np.testing.assert_array_equal(labels, lab)
    np.testing.assert_array_equal(io.align_point_labels(tmp_path / "same.txt", pts, xyz, labels), lab)

    # shuffled and a subset: nearest neighbour must match a brute-force search
    perm = _rng(8).permutation(300)[:250]
    np.savetxt(tmp_path / "shuf.txt", rows[perm], fmt="%.6f %.6f %.6f %d")
    xyz, labels = io.read_point_labels(tmp_path / "shuf.txt")
    got = io.align_point_labels(tmp_path / "shuf.txt", pts, xyz, labels)
    d = ((pts[:, None, :].astype(np.float64) - xyz[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(got, labels[d.argmin(1)])

    np.save(tmp_path / "only.npy", lab[:100].astype(np.uint8))
    xyz, labels = io.read_point_labels(tmp_path / "only.npy")
    assert xyz is None
    msg = _err(io.align_point_labels, tmp_path / "only.npy", pts, xyz, labels)
    assert "only.npy" in msg and "100" in msg and "300" in msg


# ====================================================================== misc
def test_simple_yaml_block_and_flow(tmp_path):
    (tmp_path / "a.yaml").write_text("# depth info\nnormalization:\n  max: 1.25  # metres\n  min: 0.5\nname: 'x'\n")
    (tmp_path / "b.yaml").write_text("normalization: {min: -2, max: 3.5e-1}\nflags: [1, 2]\n")
    assert io.read_simple_yaml(tmp_path / "a.yaml") == {"normalization": {"max": 1.25, "min": 0.5}, "name": "x"}
    assert io.read_simple_yaml(tmp_path / "b.yaml") == {"normalization": {"min": -2, "max": 0.35}, "flags": [1, 2]}


def test_tiff_is_xyz(tmp_path):
    tifffile.imwrite(tmp_path / "x.tiff", np.ones((4, 5, 3), np.float32), photometric="rgb")
    tifffile.imwrite(tmp_path / "g.tiff", np.ones((4, 5), np.uint8))
    tifffile.imwrite(tmp_path / "c.tiff", np.ones((4, 5, 3), np.uint8), photometric="rgb")
    assert io.tiff_is_xyz(tmp_path / "x.tiff")
    assert not io.tiff_is_xyz(tmp_path / "g.tiff") and not io.tiff_is_xyz(tmp_path / "c.tiff")


def test_write_cloud_rejects_bad_shapes(tmp_path):
    with pytest.raises(InputError, match="expected N x 3"):
        io.write_cloud(tmp_path / "a.ply", np.zeros((5, 2)))
    with pytest.raises(InputError, match="colours shape"):
        io.write_cloud(tmp_path / "a.ply", np.zeros((5, 3)), np.zeros((4, 3), np.uint8))
