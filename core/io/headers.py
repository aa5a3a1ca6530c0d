"""Header checks that run before any decoder: image format sniffing and completeness, PLY/PCD
headers against the file size, TIFF header inspection."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import SampleLoadError
from ._common import PathLike, _first_line, _guard, _path, _too_many, check_file, max_points

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_BMP_MAGIC = b"BM"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _sniff_image_format(head: bytes) -> Optional[str]:
    if head.startswith(_PNG_MAGIC):
        return "PNG"
    if head.startswith(_JPEG_MAGIC):
        return "JPEG"
    if head.startswith(_BMP_MAGIC):
        return "BMP"
    if head[:4] in _TIFF_MAGICS:
        return "TIFF"
    return None


_EXT_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def _check_image_structure(path: Path, data: bytes, fmt: str) -> None:
    """Cheap checks that catch files cut short, which some decoders would half-decode silently."""
    if fmt == "PNG":
        # every PNG ends with an IEND chunk (possibly followed by junk some tools append)
        if b"IEND" not in data[-4096:]:
            raise SampleLoadError(path, "truncated or corrupt PNG image (the file ends before the image data is complete)")
    elif fmt == "JPEG":
        if b"\xff\xd9" not in data[-65536:].rstrip(b"\x00\r\n "):
            raise SampleLoadError(path, "truncated or corrupt JPEG image (the end-of-image marker is missing)")
    elif fmt == "BMP" and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        if declared > len(data):
            raise SampleLoadError(path, f"truncated or corrupt BMP image (header says {declared} bytes, the file has {len(data)})")


# ====================================================================== PLY / PCD headers
_PLY_TYPES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8,
}


def _count_data_lines(body: bytes, n_tokens_last: Optional[int]) -> int:
    """Number of complete text lines in ``body`` (a last line without newline counts if it has
    ``n_tokens_last`` tokens)."""
    n = body.count(b"\n")
    tail = body[body.rfind(b"\n") + 1:]
    if tail.strip() and n_tokens_last is not None and len(tail.split()) == n_tokens_last:
        n += 1
    return n


def _check_ply(path: Path, size: int) -> tuple[int, Optional[int]]:
    """Validate a PLY header against the file size. Returns (number of vertices, None)."""
    with open(path, "rb") as f:
        head = f.read(65536)
    if not head.startswith(b"ply"):
        raise SampleLoadError(path, "not a PLY file (it does not start with 'ply')")
    end = head.find(b"end_header")
    if end < 0:
        raise SampleLoadError(path, "corrupt PLY header (no 'end_header' line)")
    nl = head.find(b"\n", end)
    header_len = (nl + 1) if nl >= 0 else len(head)
    fmt = None
    elements: list[list] = []  # [name, count, [prop sizes or None for lists]]
    for raw in head[:end].decode("latin-1").splitlines():
        tok = raw.split()
        if not tok:
            continue
        if tok[0] == "format" and len(tok) >= 2:
            fmt = tok[1]
        elif tok[0] == "element" and len(tok) >= 3:
            try:
                elements.append([tok[1], int(tok[2]), []])
            except ValueError:
                raise SampleLoadError(path, f"corrupt PLY header (bad element line '{raw.strip()}')") from None
        elif tok[0] == "property" and elements and len(tok) >= 3:
            elements[-1][2].append((None if tok[1] == "list" else _PLY_TYPES.get(tok[1], -1), tok[-1]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise SampleLoadError(path, "corrupt PLY header (unknown or missing 'format' line)")
    names = [e[0] for e in elements]
    if "vertex" not in names:
        raise SampleLoadError(path, "PLY file has no 'vertex' element (no points)")
    vi = names.index("vertex")
    n_vertex = elements[vi][1]
    if not {"x", "y", "z"} <= {p[1] for p in elements[vi][2]}:
        raise SampleLoadError(path, "PLY vertices have no x, y, z properties")
    if n_vertex > max_points():
        raise _too_many(path, n_vertex)
    if n_vertex == 0:
        return 0, None
    before = elements[: vi + 1]
    if fmt == "ascii":
        with open(path, "rb") as f:
            f.seek(header_len)
            body = f.read()
        need = sum(e[1] for e in before)
        last_tokens = len(elements[vi][2]) if vi == len(elements) - 1 else None
        have = _count_data_lines(body, last_tokens)
        if have < need:
            raise SampleLoadError(path, f"truncated PLY file: the header announces {n_vertex:,} points "
                                        f"but the file ends after about {max(0, have - need + n_vertex):,} of them")
    elif all(s is not None and s > 0 for e in before for s, _ in e[2]):
        stride = sum(s for s, _ in elements[vi][2])
        need = header_len + sum(e[1] * sum(s for s, _ in e[2]) for e in before)
        if size < need:
            got = max(0, (size - (need - n_vertex * stride)) // stride)
            raise SampleLoadError(path, f"truncated PLY file: the header announces {n_vertex:,} points "
                                        f"but the file ends after {got:,} of them")
    return n_vertex, None


def _check_pcd(path: Path, size: int) -> tuple[int, Optional[tuple[int, int]]]:
    """Validate a PCD header against the file size. Returns (number of points, (H, W) if organized)."""
    with open(path, "rb") as f:
        head = f.read(65536)
    fields: dict[str, list[str]] = {}
    header_len = None
    pos = 0
    for line in head.split(b"\n"):
        pos += len(line) + 1
        s = line.decode("latin-1").strip()
        if not s or s.startswith("#"):
            continue
        tok = s.split()
        fields[tok[0].upper()] = tok[1:]
        if tok[0].upper() == "DATA":
            header_len = pos
            break
    if header_len is None or "FIELDS" not in fields:
        raise SampleLoadError(path, "not a PCD file or corrupt PCD header (no FIELDS/DATA lines)")
    names = fields["FIELDS"]
    if not {"x", "y", "z"} <= set(names):
        raise SampleLoadError(path, "PCD file has no x, y, z fields")
    try:
        width = int(fields.get("WIDTH", ["0"])[0])
        height = int(fields.get("HEIGHT", ["1"])[0])
        n = int(fields["POINTS"][0]) if "POINTS" in fields else width * height
        sizes = [int(s) for s in fields.get("SIZE", ["4"] * len(names))]
        counts = [int(c) for c in fields.get("COUNT", ["1"] * len(names))]
    except (ValueError, IndexError):
        raise SampleLoadError(path, "corrupt PCD header (bad WIDTH/HEIGHT/POINTS/SIZE/COUNT)") from None
    if n > max_points():
        raise _too_many(path, n)
    types = fields.get("TYPE", ["F"] * len(names))
    if len(sizes) != len(names) or len(counts) != len(names) or len(types) != len(names):
        raise SampleLoadError(path, "corrupt PCD header (FIELDS, SIZE, TYPE and COUNT disagree)")
    for name, t, sz in zip(names, types, sizes):
        # open3d silently returns zeros for other coordinate encodings (e.g. float16)
        if name in ("x", "y", "z") and not (t.upper() == "F" and sz in (4, 8) or t.upper() in "IU" and sz in (1, 2, 4, 8)):
            raise SampleLoadError(path, f"unsupported PCD coordinate type {t}{sz * 8} for field '{name}'")
    kind = (fields["DATA"] or ["?"])[0].lower()
    organized = (height, width) if height > 1 and width * height == n else None
    if n == 0:
        return 0, organized
    if kind == "ascii":
        with open(path, "rb") as f:
            f.seek(header_len)
            body = f.read()
        have = _count_data_lines(body, sum(counts))
        if have < n:
            raise SampleLoadError(path, f"truncated PCD file: the header announces {n:,} points but the file has {have:,}")
    elif kind == "binary":
        stride = sum(s * c for s, c in zip(sizes, counts))
        if size < header_len + n * stride:
            got = max(0, (size - header_len) // max(stride, 1))
            raise SampleLoadError(path, f"truncated PCD file: the header announces {n:,} points but the file ends after {got:,}")
    elif kind == "binary_compressed":
        with open(path, "rb") as f:
            f.seek(header_len)
            sz = f.read(8)
        if len(sz) < 8 or size < header_len + 8 + int.from_bytes(sz[:4], "little"):
            raise SampleLoadError(path, "truncated PCD file (compressed data is incomplete)")
    else:
        raise SampleLoadError(path, f"unsupported PCD data encoding '{kind}'")
    return n, organized


def tiff_is_xyz(path: PathLike) -> bool:
    """True when a TIFF holds an organized xyz cloud (float ``H x W x 3`` or ``3 x H x W``), False
    when it is a plain image (2-D, 1/2/4 channels or integer data).  Reads only the header."""
    import tifffile

    p = _path(path)
    check_file(p)
    with _guard(p, "TIFF file"):
        try:
            with tifffile.TiffFile(str(p)) as tf:
                if not tf.series:
                    raise SampleLoadError(p, "truncated or corrupt TIFF (no image data found)")
                s = tf.series[0]
                shape, dtype = tuple(s.shape), np.dtype(s.dtype)
        except (tifffile.TiffFileError, ValueError, OSError, struct.error) as e:
            raise SampleLoadError(p, f"not a valid TIFF file ({_first_line(e)})") from None
    return dtype.kind == "f" and len(shape) == 3 and (shape[2] == 3 or shape[0] == 3)

