"""Point cloud readers and writers: PLY/PCD (open3d), NPY, text tables, organized xyz TIFF."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError, OutputWriteError, SampleLoadError
from ._common import (CLOUD_EXTS, TEXT_CLOUD_EXTS, TIFF_EXTS, DegenerateCloudError, PathLike, as_path, check_file,
                      first_line, fmt_shape, guard, max_points, quiet_o3d, too_many_points)
from .atomic import atomic_open, atomic_path
from .probe import check_pcd_header, check_ply_header
from .plypcd import read_pcd_arrays, read_ply_arrays
from .images import read_tiff_array
from .text import read_text_table

# ====================================================================== organized xyz (TIFF)
def _organized_missing_to_nan(xyz: np.ndarray) -> np.ndarray:
    """float32 copy with non-finite points and all-zero points set to NaN (all three coordinates)."""
    xyz = np.array(xyz, dtype=np.float32, copy=True)
    bad = ~np.isfinite(xyz).all(axis=-1) | (xyz == 0).all(axis=-1)
    xyz[bad] = np.nan
    return xyz


#: Data types of the coordinates of an xyz TIFF.  Integers are refused: an integer TIFF in an
#: ``xyz`` folder is an RGB or depth image, or coordinates truncated to whole units, and read as
#: coordinates it silently wrecks every geometric score; so is float16 (3 significant digits: a
#: part 400 mm away is quantised in 0.25 mm steps, about its point spacing).
XYZ_DTYPES = ("float32", "float64")
_INTEGER_HINT = " (integers: an image or depth map, or coordinates rounded to whole units, not xyz coordinates)"
_XYZ_KIND_HINT = {"i": _INTEGER_HINT, "u": _INTEGER_HINT, "b": " (booleans: a mask, not xyz coordinates)"}
_HALF_HINT = " (half precision keeps about 3 significant digits: too coarse for point coordinates)"


def read_xyz_tiff(path: PathLike, require_points: bool = True) -> np.ndarray:
    """Read an organized point cloud TIFF (MVTec 3D-AD ``xyz/*.tiff``) as ``H x W x 3`` float32.

    On disk a missing point is stored as ``(0, 0, 0)``; here it becomes NaN, as does any point with
    a non-finite coordinate.  Planar ``3 x H x W`` files are accepted.  With ``require_points`` an
    all-missing cloud raises ("all points are missing").  Coordinates must be float32 or float64
    (:data:`XYZ_DTYPES`); any other data type is refused, naming it.
    """
    p = as_path(path)
    a = read_tiff_array(p, points=True)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = np.moveaxis(a, 0, -1)
    if a.ndim != 3 or a.shape[2] != 3:
        hint = " (a single-channel TIFF is a depth map or a gray image, not xyz)" if a.ndim == 2 else ""
        raise SampleLoadError(p, f"expected an H x W x 3 xyz TIFF, got shape {fmt_shape(a.shape)}{hint}")
    if a.dtype.kind != "f" or a.dtype.itemsize not in (4, 8):   # any byte order
        raise SampleLoadError(p, f"xyz coordinates must be 32- or 64-bit floating point, this TIFF holds data type "
                                 f"{a.dtype}{_HALF_HINT if a.dtype == np.float16 else _XYZ_KIND_HINT.get(a.dtype.kind, '')}")
    if a.shape[0] * a.shape[1] > max_points():
        raise too_many_points(p, a.shape[0] * a.shape[1])
    xyz = _organized_missing_to_nan(a)
    valid = np.isfinite(xyz).all(axis=-1)
    if require_points and not valid.any():
        raise SampleLoadError(p, "all points are missing (NaN or zero)")
    if valid.any():
        check_points(p, xyz[valid].astype(np.float64))
    return xyz


def write_xyz_tiff(path: PathLike, xyz: np.ndarray) -> Path:
    """Write an organized ``H x W x 3`` cloud as a float32 TIFF, NaN stored as 0 (MVTec 3D-AD convention)."""
    import tifffile

    p = as_path(path)
    a = np.asarray(xyz, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(p, f"expected an H x W x 3 organized cloud, got shape {fmt_shape(a.shape)}")
    a = np.where(np.isfinite(a).all(axis=-1, keepdims=True), a, 0.0).astype(np.float32)
    with atomic_open(p) as fh:
        tifffile.imwrite(fh, a, photometric="rgb")
    return p


# ====================================================================== point clouds
def _colors_to_uint8(c: np.ndarray) -> np.ndarray:
    c = np.nan_to_num(np.asarray(c, dtype=np.float64))
    if c.size and c.max() <= 1.0:
        c = c * 255.0
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


def _looks_like_colors(c: np.ndarray) -> bool:
    """True when 3 extra columns look like colours (0..1 or 0..255 integers), not normals."""
    if c.size == 0 or not np.isfinite(c).all() or c.min() < 0:
        return False
    return bool(c.max() <= 1.0 or (c.max() <= 255.0 and np.all(c == np.round(c))))


#: Coordinates beyond this magnitude are refused outright (no sensor measures 1e15 mm).
ABSURD_COORDINATE = 1e15
#: A point farther from the cloud's median than this many robust spreads is refused as corrupt.
OUTLIER_SPREADS = 1e4
#: Fewer distinct points than this is a degenerate cloud.
MIN_DISTINCT_POINTS = 10


def _count_distinct(pts: np.ndarray, stop: int) -> int:
    """Number of distinct rows, exact when below ``stop`` (a sample first: cheap for big clouds)."""
    if pts.shape[0] > 4096:
        sample = pts[:: max(1, pts.shape[0] // 4096)]
        k = np.unique(sample, axis=0).shape[0]
        if k >= stop:
            return k
    return int(np.unique(pts, axis=0).shape[0])


def check_points(path: Path, pts: np.ndarray) -> None:
    """Refuse finite points (``N x 3``) that cannot be a real scan.

    * any ``|coordinate| > ABSURD_COORDINATE``;
    * any point farther than ``OUTLIER_SPREADS`` robust spreads from the median (the spread is the
      largest per-axis 1st-to-99th percentile range, so a flat part still has one);
      e.g. one point at z = 1e38 among points within 1 m: uninitialised memory, not a measurement;
    * fewer than ``MIN_DISTINCT_POINTS`` distinct points (:class:`DegenerateCloudError`).
    """
    n = pts.shape[0]
    big = np.abs(pts) > ABSURD_COORDINATE
    if big.any():
        i = int(np.flatnonzero(big.any(axis=1))[0])
        x = pts[i]
        raise SampleLoadError(path, f"point {i:,} has an absurd coordinate ({x[0]:.4g}, {x[1]:.4g}, {x[2]:.4g}; "
                              f"the limit is {ABSURD_COORDINATE:.0e}): the file is corrupt")
    if n >= MIN_DISTINCT_POINTS:
        sample = pts[:: max(1, n // 50_000)]
        lo, med, hi = np.percentile(sample, [1.0, 50.0, 99.0], axis=0)
        spread = float(np.max(hi - lo))
        if spread > 0.0:
            far = np.abs(pts - med) > OUTLIER_SPREADS * spread
            if far.any():
                i = int(np.flatnonzero(far.any(axis=1))[0])
                x = pts[i]
                raise SampleLoadError(path, f"point {i:,} at ({x[0]:.4g}, {x[1]:.4g}, {x[2]:.4g}) is absurdly far "
                                            f"from the other points (their extent is about {spread:.4g}): "
                                            "the file is corrupt")
    k = _count_distinct(pts, MIN_DISTINCT_POINTS) if n else 0
    if k < MIN_DISTINCT_POINTS:
        what = "all points are identical" if k == 1 else f"only {k} distinct point{'s' if k != 1 else ''}"
        raise DegenerateCloudError(path, f"degenerate point cloud: {what} (at least {MIN_DISTINCT_POINTS} "
                                         "distinct points are needed)")


def _finish_unorganized(path: Path, pts: np.ndarray, colors: Optional[np.ndarray]):
    if pts.shape[0] == 0:
        raise SampleLoadError(path, "point cloud is empty (no points)")
    keep = np.isfinite(pts).all(axis=1)
    if not keep.any():
        raise SampleLoadError(path, "all points are missing (NaN or infinite coordinates)")
    if not keep.all():
        pts = pts[keep]
        colors = colors[keep] if colors is not None else None
    check_points(path, pts)
    return np.ascontiguousarray(pts, dtype=np.float32), colors, False


def _finish_organized(path: Path, xyz: np.ndarray, colors: Optional[np.ndarray]):
    if xyz.shape[0] * xyz.shape[1] == 0:
        raise SampleLoadError(path, "point cloud is empty (no points)")
    xyz = _organized_missing_to_nan(xyz)
    valid = np.isfinite(xyz).all(axis=-1)
    if not valid.any():
        raise SampleLoadError(path, "all points are missing (NaN or zero)")
    check_points(path, xyz[valid].astype(np.float64))
    return xyz, colors, True


def _read_ply_pcd(path: Path, size: int, kind: str):
    info = check_ply_header(path, size) if kind == "ply" else check_pcd_header(path, size)
    if info["n"] == 0:
        raise SampleLoadError(path, "point cloud has no points (the file declares 0 points)")
    with guard(path, "point cloud"):
        pts, colors = read_ply_arrays(path, info) if kind == "ply" else read_pcd_arrays(path, info)
    organized = info.get("organized")
    if organized is not None:
        h, w = organized
        return _finish_organized(path, pts.reshape(h, w, 3), colors.reshape(h, w, 3) if colors is not None else None)
    return _finish_unorganized(path, pts, colors)


def read_npy_array(path: Path) -> np.ndarray:
    check_file(path)
    try:
        arr = np.load(str(path), mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        msg = str(e)
        if "pickle" in msg or "Python objects" in msg:
            raise SampleLoadError(path, "not a numeric .npy array (it holds pickled Python objects)") from None
        if "mmap length" in msg or "fully written" in msg:
            raise SampleLoadError(path, "truncated .npy file (the data is shorter than its header says)") from None
        raise SampleLoadError(path, f"not a valid .npy file ({first_line(e)})") from None
    except (OSError, EOFError) as e:
        raise SampleLoadError(path, f"not a valid .npy file ({first_line(e)})") from None
    if not isinstance(arr, np.ndarray):
        raise SampleLoadError(path, "not a valid .npy file")
    return arr


def _read_npy_cloud(path: Path):
    arr = read_npy_array(path)
    if arr.dtype.names:  # structured array with named fields
        if not {"x", "y", "z"} <= set(arr.dtype.names):
            raise SampleLoadError(path, f"structured .npy array has no x, y, z fields (fields: {', '.join(arr.dtype.names)})")
        if arr.size > max_points():
            raise too_many_points(path, arr.size)
        with guard(path, ".npy point cloud"):
            pts = np.stack([np.asarray(arr[k], np.float64).reshape(-1) for k in "xyz"], axis=1)
            names = arr.dtype.names
            cols = None
            if {"r", "g", "b"} <= set(names):
                cols = np.stack([np.asarray(arr[k]).reshape(-1) for k in "rgb"], axis=1)
            elif {"red", "green", "blue"} <= set(names):
                cols = np.stack([np.asarray(arr[k]).reshape(-1) for k in ("red", "green", "blue")], axis=1)
        return _finish_unorganized(path, pts, _colors_to_uint8(cols) if cols is not None else None)
    if arr.dtype.kind not in "fiub":
        raise SampleLoadError(path, f"expected a numeric array, got data type {arr.dtype}")
    shape = arr.shape
    if arr.ndim == 2 and shape[1] in (3, 4, 6, 7):
        if shape[0] > max_points():
            raise too_many_points(path, shape[0])
        with guard(path, ".npy point cloud"):
            a = np.asarray(arr, dtype=np.float64)
        cols = a[:, 3:6] if shape[1] >= 6 else None
        colors = _colors_to_uint8(cols) if cols is not None and _looks_like_colors(cols) else None
        return _finish_unorganized(path, a[:, :3], colors)
    if arr.ndim == 3 and shape[2] in (3, 6):
        if shape[0] * shape[1] > max_points():
            raise too_many_points(path, shape[0] * shape[1])
        with guard(path, ".npy point cloud"):
            a = np.asarray(arr, dtype=np.float64)
        cols = a[:, :, 3:6] if shape[2] == 6 else None
        colors = _colors_to_uint8(cols) if cols is not None and _looks_like_colors(cols) else None
        return _finish_organized(path, a[:, :, :3], colors)
    if arr.size == 0:
        raise SampleLoadError(path, "point cloud is empty (no points)")
    raise SampleLoadError(path, f"expected an N x 3 (or N x 6 with colours) or H x W x 3 point array, "
                                f"got shape {fmt_shape(shape)}")


def _read_text_cloud(path: Path):
    a = read_text_table(path)
    if a.shape[0] > max_points():
        raise too_many_points(path, a.shape[0])
    if a.shape[1] < 3:
        raise SampleLoadError(path, f"expected at least 3 columns (x y z), got {a.shape[1]}")
    colors = None
    if a.shape[1] in (6, 7) and _looks_like_colors(a[:, 3:6]):
        colors = _colors_to_uint8(a[:, 3:6])
    return _finish_unorganized(path, a[:, :3], colors)


def read_cloud(path: PathLike) -> tuple[np.ndarray, Optional[np.ndarray], bool]:
    """Read a point cloud file. Returns ``(points, colors, organized)``.

    * ``.ply`` / ``.pcd`` (open3d; the header is checked against the file size first, because
      open3d silently pads truncated files with zeros); an organized PCD (``HEIGHT > 1``) stays
      organized.
    * ``.npy``: ``N x 3``, ``N x 4`` (4th column ignored), ``N x 6`` / ``N x 7`` (columns 3-5 are
      colours when they look like colours), ``H x W x 3`` / ``H x W x 6`` organized, or a structured
      array with ``x, y, z`` fields.
    * ``.tif`` / ``.tiff``: an organized xyz TIFF (:func:`read_xyz_tiff`).
    * ``.txt`` / ``.xyz`` / ``.csv``: ``x y z [label | r g b [label]]`` per line, separated by
      spaces, commas or semicolons; header lines are skipped.

    ``points`` is ``N x 3`` float32 without non-finite rows (unorganized) or ``H x W x 3`` float32
    with missing points as NaN (organized).  ``colors`` is ``uint8`` with the same leading shape, or
    None.  Raises :class:`SampleLoadError` for empty, all-missing, truncated, corrupt, unsupported
    or too large (> :data:`max_points()`) clouds.
    """
    p = as_path(path)
    ext = p.suffix.lower()
    if ext not in CLOUD_EXTS:
        raise SampleLoadError(p, f"unsupported point cloud format '{ext or p.name}' "
                                 f"(expected {', '.join(CLOUD_EXTS)})")
    size = check_file(p)
    if ext in (".ply", ".pcd"):
        return _read_ply_pcd(p, size, ext[1:])
    if ext == ".npy":
        return _read_npy_cloud(p)
    if ext in TIFF_EXTS:
        return read_xyz_tiff(p), None, True
    return _read_text_cloud(p)


def write_cloud(path: PathLike, points: np.ndarray, colors: Optional[np.ndarray] = None) -> Path:
    """Write a point cloud; the format follows the suffix.

    ``.ply`` / ``.pcd`` (binary, via open3d), ``.npy`` (``N x 3`` float32, or ``N x 6`` with colours
    0..255 appended; an organized ``H x W x 3`` cloud is kept organized), ``.txt`` / ``.xyz`` /
    ``.csv`` (one point per line), ``.tif`` / ``.tiff`` (organized only, :func:`write_xyz_tiff`).
    Organized clouds written to point formats keep only their valid points.
    """
    p = as_path(path)
    ext = p.suffix.lower()
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim not in (2, 3) or pts.shape[-1] != 3:
        raise InputError(p, f"expected N x 3 or H x W x 3 points, got shape {fmt_shape(pts.shape)}")
    cols = None
    if colors is not None:
        cols = np.asarray(colors)
        if cols.shape != pts.shape:
            raise InputError(p, f"colours shape {fmt_shape(cols.shape)} does not match points {fmt_shape(pts.shape)}")
        cols = cols if cols.dtype == np.uint8 else _colors_to_uint8(cols)
    if ext in TIFF_EXTS:
        if pts.ndim != 3:
            raise InputError(p, "a TIFF point cloud must be organized (H x W x 3)")
        return write_xyz_tiff(p, pts)
    if ext == ".npy":
        a = pts.astype(np.float32)
        if cols is not None:
            a = np.concatenate([a, cols.astype(np.float32)], axis=-1)
        with atomic_open(p) as fh:
            np.save(fh, a)
        return p
    if pts.ndim == 3:
        keep = np.isfinite(pts).all(axis=-1) & ~(pts == 0).all(axis=-1)
        pts = pts[keep]
        cols = cols[keep] if cols is not None else None
    if ext in TEXT_CLOUD_EXTS:
        a = pts if cols is None else np.concatenate([pts, cols.astype(np.float64)], axis=1)
        fmt = ["%.6f"] * 3 + ["%d"] * (a.shape[1] - 3)
        with atomic_open(p) as fh:
            np.savetxt(fh, a, fmt=fmt, delimiter="," if ext == ".csv" else " ")
        return p
    if ext in (".ply", ".pcd"):
        import open3d as o3d

        pc = o3d.geometry.PointCloud()
        pc.points = o3d.utility.Vector3dVector(pts)
        if cols is not None:
            pc.colors = o3d.utility.Vector3dVector(cols.astype(np.float64) / 255.0)
        with atomic_path(p) as tmp, quiet_o3d():
            if not o3d.io.write_point_cloud(str(tmp), pc, write_ascii=False):
                raise OutputWriteError(p, "could not write the point cloud")
        return p
    raise InputError(p, f"unsupported point cloud format '{ext}' (expected .ply, .pcd, .npy, .txt, .xyz, .csv or .tiff)")


