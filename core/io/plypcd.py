"""PLY and PCD bodies parsed with numpy, after :mod:`.probe` has validated the header.

open3d's readers cannot report errors: on a bad body they print "Read PLY failed" (RPly) to the C
stderr and still return the announced number of points, full of uninitialised memory.  So ASCII and
binary PLY, and ASCII and binary PCD, are read here with numpy (every value is parsed or the read
fails with a message naming the row); only LZF-compressed PCD goes through open3d, with its output
captured and the result checked against the header.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import SampleLoadError
from ._common import capture_stderr, first_line, guard, quiet_o3d

PLY_NUMPY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
           "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
           "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_COLOR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))


def _loadtxt(path: Path, skip: int, rows: int, what: str) -> np.ndarray:
    """``rows`` numeric text rows after ``skip`` lines; any bad token or ragged row raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = np.loadtxt(str(path), dtype=np.float64, skiprows=skip, max_rows=rows, ndmin=2, comments=None,
                           encoding="latin-1")
    except ValueError as e:
        msg = first_line(e).split(";")[0]
        raise SampleLoadError(path, f"malformed {what} data: {msg}") from None
    except MemoryError:
        raise SampleLoadError(path, f"not enough memory to load this {what} file") from None
    if a.shape[0] != rows:
        raise SampleLoadError(path, f"truncated {what} file: the header announces {rows:,} points "
                                    f"but the file has {a.shape[0]:,} data rows")
    return a


def _colors_from(cols: list[np.ndarray]) -> np.ndarray:
    c = np.stack(cols, axis=-1)
    if c.dtype == np.uint8:
        return c
    if c.dtype.kind in "iu":
        return np.clip(c, 0, 255).astype(np.uint8) if c.max(initial=0) <= 255 else \
            np.clip((c.astype(np.float64) + 128) // 257, 0, 255).astype(np.uint8)
    c = np.nan_to_num(c.astype(np.float64))
    if c.size and c.max() <= 1.0:
        c = c * 255.0
    return np.clip(np.rint(c), 0, 255).astype(np.uint8)


# ====================================================================== PLY
def _skip_list_rows(path: Path, mm: np.ndarray, pos: int, elem: list, order: str) -> int:
    """Byte offset after ``elem``'s rows in a binary PLY whose element has list properties."""
    name, count, props = elem
    end = mm.shape[0]
    for _ in range(count):
        for size, _n, kind, ctype, itype in props:
            if size is not None:
                pos += size
                continue
            cs = np.dtype(order + PLY_NUMPY_TYPES[ctype]).itemsize
            if pos + cs > end:
                raise SampleLoadError(path, f"truncated PLY file: the '{name}' element ends early, "
                                            "before the point data")
            k = int(np.frombuffer(mm[pos:pos + cs].tobytes(), order + PLY_NUMPY_TYPES[ctype])[0])
            if k < 0:
                raise SampleLoadError(path, f"corrupt PLY file: negative list length in the '{name}' element")
            pos += cs + k * np.dtype(PLY_NUMPY_TYPES[itype]).itemsize
        if pos > end:
            raise SampleLoadError(path, f"truncated PLY file: the '{name}' element ends early, before the point data")
    return pos


def read_ply_arrays(path: Path, info: dict):
    """``(points N x 3 float64, colours N x 3 uint8 or None)`` of a PLY described by ``info``
    (:func:`core.io.probe.check_ply_header`)."""
    elements, vi, n = info["elements"], info["vi"], info["n"]
    props = elements[vi][2]
    names = [pr[1] for pr in props]
    if any(pr[0] is None for pr in props):
        raise SampleLoadError(path, "unsupported PLY file: the vertex element has list properties")
    if info["fmt"] == "ascii":
        skip = info["header_lines"] + sum(e[1] for e in elements[:vi])  # one line per row, lists included
        a = _loadtxt(path, skip, n, "PLY")
        if a.shape[1] != len(props):
            raise SampleLoadError(path, f"malformed PLY data: the point rows have {a.shape[1]} values but the "
                                        f"header announces {len(props)} properties ({' '.join(names)})")
        cols = {nm: a[:, i] for i, nm in enumerate(names)}
        ints = {pr[1] for pr in props if PLY_NUMPY_TYPES[pr[2]][0] in "iu"}
        for nm in ints:  # integer properties must hold integers (garbage like "1.5e300" is not a colour)
            if not np.all(cols[nm] == np.round(cols[nm])):
                raise SampleLoadError(path, f"malformed PLY data: integer property '{nm}' holds non-integer values")
    else:
        order = "<" if info["fmt"] == "binary_little_endian" else ">"
        dt = np.dtype([(f"p{i}", order + PLY_NUMPY_TYPES[pr[2]]) for i, pr in enumerate(props)])
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        try:
            pos = info["header_len"]
            for e in elements[:vi]:
                if all(pr[0] is not None for pr in e[2]):
                    pos += e[1] * sum(pr[0] for pr in e[2])
                else:
                    pos = _skip_list_rows(path, mm, pos, e, order)
            if pos + n * dt.itemsize > mm.shape[0]:
                got = max(0, (mm.shape[0] - pos) // dt.itemsize)
                raise SampleLoadError(path, f"truncated PLY file: the header announces {n:,} points "
                                            f"but the file ends after {got:,} of them")
            rec = np.frombuffer(mm, dtype=dt, count=n, offset=pos)
            cols = {nm: np.array(rec[f"p{i}"]) for i, nm in enumerate(names)}
        finally:
            del mm
    pts = np.stack([np.asarray(cols[k], np.float64) for k in ("x", "y", "z")], axis=1)
    colors = None
    for trio in _COLOR_NAMES:
        if all(k in cols for k in trio):
            raw = [cols[k] for k in trio]
            if info["fmt"] == "ascii":
                kinds = {PLY_NUMPY_TYPES[pr[2]] for pr in props if pr[1] in trio}
                raw = [r.astype(np.uint8) if kinds == {"u1"} else r for r in raw]
            colors = _colors_from(raw)
            break
    return pts, colors


# ====================================================================== PCD
def _unpack_rgb(v: np.ndarray) -> np.ndarray:
    """PCL packs colours as the bits of a float32/uint32: 0x00RRGGBB."""
    u = np.ascontiguousarray(v).view(np.uint32) if v.dtype.itemsize == 4 else v.astype(np.uint32)
    return np.stack([(u >> 16) & 255, (u >> 8) & 255, u & 255], axis=-1).astype(np.uint8)


def read_pcd_arrays(path: Path, info: dict):
    """``(points N x 3 float64, colours N x 3 uint8 or None)`` of a PCD described by ``info``
    (:func:`core.io.probe.check_pcd_header`)."""
    n, names, sizes, types, counts = info["n"], info["names"], info["sizes"], info["types"], info["counts"]
    kind = info["kind"]
    if kind == "binary_compressed":
        return _read_pcd_o3d(path, n)
    cols: dict[str, np.ndarray] = {}
    if kind == "ascii":
        a = _loadtxt(path, info["header_lines"], n, "PCD")
        if a.shape[1] != sum(counts):
            raise SampleLoadError(path, f"malformed PCD data: the rows have {a.shape[1]} values but the header "
                                        f"announces {sum(counts)} ({' '.join(names)})")
        j = 0
        for nm, t, sz, c in zip(names, types, sizes, counts):
            v = a[:, j]
            if nm in ("rgb", "rgba"):
                v = v.astype(np.float32) if t == "F" else v.astype(np.uint32)
            cols[nm] = v
            j += c
    else:
        code = {"F": "f", "I": "i", "U": "u"}
        try:
            dt = np.dtype([(f"f{i}", "<" + code[t] + str(sz), (c,) if c > 1 else ())
                           for i, (t, sz, c) in enumerate(zip(types, sizes, counts))])
        except (KeyError, TypeError):
            raise SampleLoadError(path, f"unsupported PCD field types {' '.join(types)}") from None
        mm = np.memmap(path, dtype=np.uint8, mode="r")
        try:
            rec = np.frombuffer(mm, dtype=dt, count=n, offset=info["header_len"])
            for i, nm in enumerate(names):
                v = np.array(rec[f"f{i}"])
                cols[nm] = v[:, 0] if v.ndim == 2 else v
        finally:
            del mm
    pts = np.stack([np.asarray(cols[k], np.float64) for k in ("x", "y", "z")], axis=1)
    colors = None
    for key in ("rgb", "rgba"):
        if key in cols:
            colors = _unpack_rgb(cols[key])
            break
    return pts, colors


def _read_pcd_o3d(path: Path, n: int):
    import open3d as o3d

    with guard(path, "point cloud"), quiet_o3d(), capture_stderr(str(path)):
        pc = o3d.io.read_point_cloud(str(path), format="pcd", remove_nan_points=False, remove_infinite_points=False)
        pts = np.asarray(pc.points, dtype=np.float64)
        colors = np.asarray(pc.colors) if pc.has_colors() else None
    if pts.shape[0] == 0:
        raise SampleLoadError(path, "could not read point cloud (corrupt, truncated or unsupported format)")
    said = capture_stderr.last
    if "fail" in said.lower() or "error" in said.lower():
        raise SampleLoadError(path, f"corrupt PCD file (open3d: {said.splitlines()[-1][:200]})")
    if pts.shape[0] != n:
        raise SampleLoadError(path, f"could not read all points (the header announces {n:,}, "
                                    f"{pts.shape[0]:,} were read): the file is corrupt or truncated")
    cols: Optional[np.ndarray] = None
    if colors is not None:
        cols = np.clip(np.rint(np.nan_to_num(colors) * 255.0), 0, 255).astype(np.uint8)
    return pts, cols
