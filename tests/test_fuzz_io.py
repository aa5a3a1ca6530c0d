"""Bad input files built on the fly: every reader must answer with ONE InputError whose message names
the file and the problem, refuse oversized inputs from their headers, and print nothing to stderr."""
from __future__ import annotations

import os
import resource
import struct
import sys
import zlib

import numpy as np
import pytest
import tifffile

from core import io
from core.errors import InputError

PLY_HEAD = "ply\nformat ascii 1.0\nelement vertex {n}\nproperty float x\nproperty float y\nproperty float z\nend_header\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path, w: int, h: int) -> None:
    """A tiny PNG whose IHDR declares w x h 8-bit gray pixels (the data is a few zero rows)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))


def _cloud(n=200, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 3))


def _refused(capfd, fn, path, *words, exc=InputError, **kw):
    """Call fn(path, **kw); assert one ``exc`` naming the file and every word, and silence on stderr."""
    capfd.readouterr()
    with pytest.raises(exc) as ei:
        fn(path, **kw)
    msg = str(ei.value)
    out, err = capfd.readouterr()
    assert path.name in msg, msg
    for w in words:
        assert w in msg, msg
    assert err == "", f"stderr was not quiet: {err!r}"
    assert "Traceback" not in msg
    return msg


# ====================================================================== decode limits
def test_png_decompression_bomb_refused_from_header(tmp_path, capfd):
    p = tmp_path / "bomb.png"
    _bomb_png(p, 30000, 30000)
    assert p.stat().st_size < 10_000
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    msg = _refused(capfd, io.read_rgb, p, "too large", "30,000 x 30,000", "900,000,000 pixels", "50,000,000")
    assert "MMAD_MAX_PIXELS" in msg
    _refused(capfd, io.read_mask, p, "too large")
    # refused before decoding: a decode would need ~900 MB
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0
    assert grew_kb < 100_000, f"peak memory grew by {grew_kb} kB"


def test_pixel_limit_from_env_and_module(tmp_path, capfd, monkeypatch):
    p = tmp_path / "img.png"
    io.write_rgb(p, np.zeros((40, 50, 3), np.uint8))
    assert io.image_size(p) == (50, 40)
    monkeypatch.setenv("MMAD_MAX_PIXELS", "1999")
    _refused(capfd, io.read_rgb, p, "50 x 40 = 2,000 pixels", "limit is 1,999")
    monkeypatch.delenv("MMAD_MAX_PIXELS")
    assert io.read_rgb(p).shape == (40, 50, 3)
    monkeypatch.setattr(io, "MAX_PIXELS", 100)
    _refused(capfd, io.read_rgb, p, "too large", "limit is 100 pixels")


def test_jpeg_and_bmp_sizes_from_header(tmp_path, capfd, monkeypatch):
    img = np.random.default_rng(1).integers(0, 255, (30, 70, 3), dtype=np.uint8)
    for ext in (".jpg", ".bmp", ".tiff"):
        p = io.write_rgb(tmp_path / f"i{ext}", img) if ext != ".tiff" else tmp_path / "i.tiff"
        if ext == ".tiff":
            tifffile.imwrite(p, img, photometric="rgb")
        assert io.image_size(p) == (70, 30), ext
    monkeypatch.setenv("MMAD_MAX_PIXELS", "1000")
    for ext in (".jpg", ".bmp", ".tiff"):
        _refused(capfd, io.read_rgb, tmp_path / f"i{ext}", "70 x 30 = 2,100 pixels")


def test_tiff_with_huge_declared_shape_refused_before_decoding(tmp_path, capfd):
    # 8000 x 8000 zlib TIFF of zeros: small on disk, 64 MP > the 50 MP default limit
    p = tmp_path / "big.tiff"
    tifffile.imwrite(p, np.zeros((8000, 8000), np.uint8), compression="zlib")
    assert p.stat().st_size < 2_000_000
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _refused(capfd, io.read_rgb, p, "too large", "8,000 x 8,000 = 64,000,000 pixels")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0 < 40_000  # 64 MB never allocated


def test_tiff_header_claiming_huge_shape(tmp_path, capfd):
    # a valid tiny TIFF whose ImageWidth/ImageLength tags are patched to 100000 x 100000
    p = tmp_path / "liar.tif"
    tifffile.imwrite(p, np.zeros((4, 4), np.uint8))
    data = bytearray(p.read_bytes())
    n_tags = struct.unpack_from("<H", data, struct.unpack_from("<I", data, 4)[0])[0]
    off = struct.unpack_from("<I", data, 4)[0] + 2
    for i in range(n_tags):
        tag, typ = struct.unpack_from("<HH", data, off + 12 * i)
        if tag in (256, 257):  # ImageWidth, ImageLength
            if typ == 3:
                struct.pack_into("<H", data, off + 12 * i + 8, 60000)
            else:
                struct.pack_into("<I", data, off + 12 * i + 8, 100000)
    p.write_bytes(bytes(data))
    _refused(capfd, io.read_rgb, p, "too large")
    _refused(capfd, io.read_xyz_tiff, p, "too large")


def test_max_side_downscales_for_display(tmp_path):
    p = io.write_rgb(tmp_path / "w.png", np.full((300, 600, 3), 77, np.uint8))
    small = io.read_rgb(p, max_side=100)
    assert small.shape == (50, 100, 3) and small.dtype == np.uint8 and (small == 77).all()
    assert io.read_rgb(p, max_side=1000).shape == (300, 600, 3)


# ====================================================================== images: tiny, mismatched
def test_tiny_rgb_refused(tmp_path, capfd):
    p = io.write_rgb(tmp_path / "one.png", np.zeros((1, 1, 3), np.uint8))
    _refused(capfd, io.read_rgb, p, "too small", "1 x 1 pixels")
    p = io.write_rgb(tmp_path / "thin.png", np.zeros((5, 40, 3), np.uint8))
    _refused(capfd, io.read_rgb, p, "too small", "40 x 5")


def test_mask_of_another_size(tmp_path, capfd):
    p = io.write_mask(tmp_path / "gt.png", np.ones((10, 20), bool))
    _refused(capfd, io.read_mask, p, "mask size 20 x 10", "image size 30 x 15", shape=(15, 30))


def test_png_ihdr_lies_about_size(tmp_path, capfd):
    # IHDR says 64 x 64 but the data holds 4096 bytes: a corrupt, not a huge, image
    p = tmp_path / "lie.png"
    _bomb_png(p, 64, 64)
    _refused(capfd, io.read_rgb, p, "lie.png")


# ====================================================================== not regular files
def test_directory_named_like_an_image(tmp_path, capfd):
    d = tmp_path / "002.png"
    d.mkdir()
    _refused(capfd, io.read_rgb, d, "is a directory")
    (tmp_path / "x.ply").mkdir()
    _refused(capfd, io.read_cloud, tmp_path / "x.ply", "is a directory")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_not_a_regular_file(tmp_path, capfd):
    f = tmp_path / "003.png"
    os.mkfifo(f)
    _refused(capfd, io.read_rgb, f, "is not a regular file")  # and it does not block on open


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links on this platform")
def test_symbolic_link_loop_and_broken_link_are_named(tmp_path, capfd):
    loop = tmp_path / "000.png"
    os.symlink("001.png", tmp_path / "000.png")
    os.symlink("000.png", tmp_path / "001.png")
    _refused(capfd, io.read_rgb, loop, "symbolic link loop")
    _refused(capfd, io.read_mask, tmp_path / "001.png", "symbolic link loop")
    os.symlink("gone.tiff", tmp_path / "002.tiff")
    _refused(capfd, io.read_xyz_tiff, tmp_path / "002.tiff", "broken symbolic link", "gone.tiff")
    # listing a folder never drops them: the sample's load then says what is wrong
    assert [p.name for p in io.list_dir(tmp_path, (".png", ".tiff"))] == ["000.png", "001.png", "002.tiff"]
    assert io.list_dir(tmp_path, dirs=True) == []


# ====================================================================== PLY / PCD bodies
@pytest.mark.parametrize("body,words", [
    ("garbage here\nand more\nand more\n", ["malformed PLY", "garbage"]),
    ("0 0 0\n1 1 1 1\n2 2 2\n", ["malformed PLY"]),        # a row with an extra token
    ("0 0 0\n1 1\n2 2 2\n", ["malformed PLY"]),            # a row with a missing token
    ("0 0 0\n1 nan_x 1\n2 2 2\n", ["malformed PLY"]),
])
def test_ascii_ply_with_bad_rows(tmp_path, capfd, body, words):
    p = tmp_path / "bad.ply"
    p.write_text(PLY_HEAD.format(n=3) + body)
    _refused(capfd, io.read_cloud, p, *words)


def test_ascii_ply_wrong_column_count_everywhere(tmp_path, capfd):
    p = tmp_path / "four.ply"
    p.write_text(PLY_HEAD.format(n=3) + "0 0 0 9\n1 1 1 9\n2 2 2 9\n")
    _refused(capfd, io.read_cloud, p, "4 values", "3 properties")


def test_binary_ply_with_truncated_face_element_before_vertices(tmp_path, capfd):
    head = ("ply\nformat binary_little_endian 1.0\nelement face 1000\nproperty list uchar int vertex_indices\n"
            "element vertex 100\nproperty float x\nproperty float y\nproperty float z\nend_header\n").encode()
    face = bytes([3]) + struct.pack("<3i", 0, 1, 2)
    p = tmp_path / "faces.ply"
    p.write_bytes(head + face * 20)  # 20 of the 1000 faces, and no vertices
    _refused(capfd, io.read_cloud, p, "truncated PLY", "face")
    # ascii: the face rows run out before the vertex rows
    q = tmp_path / "faces_ascii.ply"
    q.write_text("ply\nformat ascii 1.0\nelement face 50\nproperty list uchar int vertex_indices\n"
                 "element vertex 20\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
                 + "3 0 1 2\n" * 10)
    _refused(capfd, io.read_cloud, q, "truncated PLY")


def test_binary_ply_faces_first_then_vertices_is_read(tmp_path):
    pts = _cloud(50, 3).astype(np.float32)
    head = ("ply\nformat binary_little_endian 1.0\nelement face 2\nproperty list uchar int vertex_indices\n"
            "element vertex 50\nproperty float x\nproperty float y\nproperty float z\nend_header\n").encode()
    faces = bytes([3]) + struct.pack("<3i", 0, 1, 2) + bytes([4]) + struct.pack("<4i", 0, 1, 2, 3)
    (tmp_path / "ok.ply").write_bytes(head + faces + pts.tobytes())
    got, colors, organized = io.read_cloud(tmp_path / "ok.ply")
    np.testing.assert_array_equal(got, pts)
    assert colors is None and not organized


def test_ascii_pcd_of_letters(tmp_path, capfd):
    p = tmp_path / "letters.pcd"
    p.write_text("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 3\nHEIGHT 1\n"
                 "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 3\nDATA ascii\nabc def ghi\njkl mno pqr\nstu vwx yz!\n")
    _refused(capfd, io.read_cloud, p, "malformed PCD")


def test_ply_and_pcd_round_trip_through_numpy_readers(tmp_path):
    pts = _cloud(300, 4)
    cols = np.random.default_rng(5).integers(0, 256, (300, 3), dtype=np.uint8)
    for ext in (".ply", ".pcd"):
        p = io.write_cloud(tmp_path / f"c{ext}", pts, cols)  # written by open3d
        got, gc, organized = io.read_cloud(p)
        np.testing.assert_allclose(got, pts.astype(np.float32), atol=1e-6)
        np.testing.assert_array_equal(gc, cols)
        assert not organized


# ====================================================================== implausible / degenerate clouds
def test_one_absurd_point_among_normal_ones(tmp_path, capfd):
    pts = _cloud(500, 6)
    pts[123, 2] = 1e38
    for ext in (".ply", ".npy", ".txt"):
        p = io.write_cloud(tmp_path / f"far{ext}", pts)
        _refused(capfd, io.read_cloud, p, "point 123", "corrupt")
    pts[123, 2] = 1e16
    _refused(capfd, io.read_cloud, io.write_cloud(tmp_path / "abs.npy", pts), "absurd coordinate")


def test_a_real_outlier_is_kept(tmp_path):
    pts = _cloud(500, 7)
    pts[7] = (30.0, 0.0, 0.0)  # 30 m from a 1 m part: far, but a measurement, not garbage
    got, _, _ = io.read_cloud(io.write_cloud(tmp_path / "ok.npy", pts))
    assert got.shape == (500, 3)


def test_organized_xyz_tiff_with_absurd_value(tmp_path, capfd):
    xyz = np.random.default_rng(8).uniform(1, 2, (20, 20, 3)).astype(np.float32)
    xyz[3, 4, 2] = 5e8
    p = tmp_path / "xyz.tiff"
    tifffile.imwrite(p, xyz, photometric="rgb")
    _refused(capfd, io.read_xyz_tiff, p, "absurdly far")
    xyz[3, 4, 2] = 3e37
    tifffile.imwrite(p, xyz, photometric="rgb")
    _refused(capfd, io.read_cloud, p, "absurd coordinate")


# ====================================================================== xyz TIFF data types / channels
@pytest.mark.parametrize("dtype", ["int32", "uint32", "int64", "int16", "uint16", "int8", "uint8", "float16",
                                   "bool", "complex64"])
def test_xyz_tiff_that_is_not_float32_or_float64_is_refused(tmp_path, capfd, dtype):
    """An MVTec 3D-AD xyz TIFF holds 32-bit float coordinates.  Integer data (coordinates truncated
    to whole units, an RGB or depth image saved in the xyz folder) and half floats (3 significant
    digits) would silently change the geometry: refused, naming the file and the data type."""
    xyz = np.random.default_rng(11).uniform(1.0, 90.0, (16, 20, 3))
    p = tmp_path / f"c_{dtype}.tiff"
    tifffile.imwrite(p, xyz.astype(dtype), photometric="rgb")
    _refused(capfd, io.read_xyz_tiff, p, f"data type {dtype}", "32- or 64-bit floating point")
    _refused(capfd, io.read_cloud, p, f"data type {dtype}")


@pytest.mark.parametrize("shape", [(16, 20), (16, 20, 1), (16, 20, 2), (16, 20, 4), (2, 16, 20), (4, 16, 20)])
def test_xyz_tiff_with_other_than_three_channels_is_refused(tmp_path, capfd, shape):
    p = tmp_path / "c.tiff"
    tifffile.imwrite(p, np.random.default_rng(12).uniform(1.0, 2.0, shape).astype(np.float32), photometric="minisblack")
    _refused(capfd, io.read_xyz_tiff, p, "expected an H x W x 3 xyz TIFF")


def test_xyz_tiff_float64_is_read_as_float32(tmp_path):
    xyz = np.random.default_rng(13).uniform(1.0, 2.0, (6, 8, 3))
    p = tmp_path / "d.tiff"
    tifffile.imwrite(p, xyz, photometric="rgb")
    got = io.read_xyz_tiff(p)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, xyz, rtol=1e-6)


@pytest.mark.parametrize("pts,words", [
    (np.ones((100, 3)), ["all points are identical"]),
    (np.repeat(np.arange(3.0)[:, None], 3, 1).repeat(40, 0), ["only 3 distinct points"]),
    (np.arange(15.0).reshape(5, 3), ["only 5 distinct points"]),
])
def test_degenerate_clouds(tmp_path, capfd, pts, words):
    for ext in (".npy", ".ply"):
        p = io.write_cloud(tmp_path / f"deg{ext}", pts)
        msg = _refused(capfd, io.read_cloud, p, "degenerate point cloud", *words, exc=io.DegenerateCloudError)
        assert isinstance(io.DegenerateCloudError(p, msg), InputError)


# ====================================================================== quiet libraries
def test_open3d_compressed_pcd_failure_is_quiet(tmp_path, capfd):
    head = (b"VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 10\nHEIGHT 1\n"
            b"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 10\nDATA binary_compressed\n")
    p = tmp_path / "lzf.pcd"
    p.write_bytes(head + (40).to_bytes(4, "little") + (120).to_bytes(4, "little") + b"\xff" * 40)
    _refused(capfd, io.read_cloud, p, "lzf.pcd")


def test_corrupt_tiff_is_quiet(tmp_path, capfd):
    p = tmp_path / "cut.tiff"
    tifffile.imwrite(p, np.random.default_rng(0).random((64, 64, 3)).astype(np.float32), compression="zlib",
                     photometric="rgb")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2] + b"\x00" * (len(data) - len(data) // 2))
    capfd.readouterr()
    with pytest.raises(InputError) as ei:
        io.read_xyz_tiff(p)
    assert "cut.tiff" in str(ei.value)
    assert capfd.readouterr().err == ""


def test_captured_library_output_becomes_a_log_record(caplog, capfd):
    import logging

    from core.io._common import capture_stderr

    with caplog.at_level(logging.INFO, logger="core.io"):
        with capture_stderr("x.ply"):
            os.write(2, b"Read PLY failed: unable to read file\n")
    assert capfd.readouterr().err == ""
    assert any("Read PLY failed" in r.getMessage() and "x.ply" in r.getMessage() for r in caplog.records)
    os.write(2, b"")  # fd 2 restored and writable
    print("after", file=sys.stderr)
    assert "after" in capfd.readouterr().err
