"""Header checks that run before any decoder: image format sniffing and completeness, PLY/PCD
headers against the file size, TIFF header inspection."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import SampleLoadError
from ._common import PathLike, as_path, check_file, first_line, guard, max_pixels, max_points, too_many_points

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_BMP_MAGIC = b"BM"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff_image_format(head: bytes) -> Optional[str]:
    if head.startswith(_PNG_MAGIC):
        return "PNG"
    if head.startswith(_JPEG_MAGIC):
        return "JPEG"
    if head.startswith(_BMP_MAGIC):
        return "BMP"
    if head[:4] in _TIFF_MAGICS:
        return "TIFF"
    return None


EXT_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF"}


def check_image_structure(path: Path, data: bytes, fmt: str) -> None:
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


# ====================================================================== image dimensions
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(path: Path, f) -> tuple[int, int]:
    """(width, height) from the first SOF marker, skipping other segments by their length."""
    f.seek(2)
    while True:
        b = f.read(1)
        if not b:
            raise SampleLoadError(path, "truncated or corrupt JPEG image (no frame header found)")
        if b != b"\xff":
            continue
        m = f.read(1)
        while m == b"\xff":
            m = f.read(1)
        if not m:
            raise SampleLoadError(path, "truncated or corrupt JPEG image (no frame header found)")
        code = m[0]
        if code == 0x01 or 0xD0 <= code <= 0xD8:
            continue
        if code in (0xD9, 0xDA):
            raise SampleLoadError(path, "corrupt JPEG image (image data before the frame header)")
        ln = f.read(2)
        if len(ln) < 2:
            raise SampleLoadError(path, "truncated or corrupt JPEG image (the header is cut short)")
        seg = int.from_bytes(ln, "big")
        if code in _JPEG_SOF:
            d = f.read(5)
            if len(d) < 5:
                raise SampleLoadError(path, "truncated or corrupt JPEG image (the frame header is cut short)")
            h, w = struct.unpack(">HH", d[1:5])
            return w, h
        if seg < 2:
            raise SampleLoadError(path, "corrupt JPEG image (bad segment length in the header)")
        f.seek(seg - 2, 1)


def _tiff_size(path: Path) -> tuple[int, int, tuple]:
    """(width, height, series shape) of a TIFF's first page and series, from its header only."""
    import tifffile

    with guard(path, "TIFF file"):
        try:
            with tifffile.TiffFile(str(path)) as tf:
                if not tf.series or not len(tf.pages):
                    raise SampleLoadError(path, "truncated or corrupt TIFF (no image data found)")
                page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
                return int(page.imagewidth), int(page.imagelength), tuple(tf.series[0].shape)
        except (tifffile.TiffFileError, ValueError, OSError, IndexError, struct.error) as e:
            raise SampleLoadError(path, f"not a valid TIFF file ({first_line(e)})") from None


def image_size(path: PathLike) -> tuple[int, int]:
    """``(width, height)`` of a PNG, JPEG, BMP or TIFF image read from its header (no decoding)."""
    p = as_path(path)
    check_file(p)
    try:
        with open(p, "rb") as f:
            head = f.read(32)
            fmt = sniff_image_format(head)
            if fmt == "PNG":
                if len(head) < 24 or head[12:16] != b"IHDR":
                    raise SampleLoadError(p, "corrupt PNG image (no IHDR header chunk)")
                w, h = struct.unpack(">II", head[16:24])
            elif fmt == "JPEG":
                w, h = _jpeg_size(p, f)
            elif fmt == "BMP":
                if len(head) < 26:
                    raise SampleLoadError(p, "truncated BMP image (the header is cut short)")
                if int.from_bytes(head[14:18], "little") == 12:  # OS/2 BITMAPCOREHEADER
                    w, h = struct.unpack("<HH", head[18:22])
                else:
                    w, h = struct.unpack("<ii", head[18:26])
                w, h = abs(w), abs(h)  # a negative height means top-down rows
            elif fmt == "TIFF":
                w, h, _ = _tiff_size(p)
            else:
                raise SampleLoadError(p, "not a PNG, JPEG, BMP or TIFF image")
    except OSError as e:
        raise SampleLoadError(p, f"cannot read the file ({e.strerror or e})") from None
    return int(w), int(h)


def check_pixels(path: Path, width: int, height: int, limit: Optional[int] = None) -> None:
    """Refuse an image whose declared size exceeds the pixel limit (:func:`max_pixels`) or is 0."""
    if width <= 0 or height <= 0:
        raise SampleLoadError(path, f"corrupt image header (declared size {width} x {height} pixels)")
    limit = max_pixels() if limit is None else limit
    n = int(width) * int(height)
    if n > limit:
        raise SampleLoadError(path, f"image is too large to load: {width:,} x {height:,} = {n:,} pixels "
                                    f"(the limit is {limit:,} pixels; set MMAD_MAX_PIXELS to change it)")


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


def check_ply_header(path: Path, size: int) -> dict:
    """Validate a PLY header against the file size.

    Returns ``dict(n=number of vertices, fmt, elements=[[name, count, [(size or None for lists,
    name, type, list count type, list item type)]]], vi=index of the vertex element,
    header_len=bytes, header_lines=lines)``.
    """
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
            if tok[1] == "list":
                if len(tok) < 5 or tok[2] not in _PLY_TYPES or tok[3] not in _PLY_TYPES:
                    raise SampleLoadError(path, f"corrupt PLY header (bad property line '{raw.strip()}')")
                elements[-1][2].append((None, tok[-1], "list", tok[2], tok[3]))
            else:
                if tok[1] not in _PLY_TYPES:
                    raise SampleLoadError(path, f"corrupt PLY header (unknown property type '{tok[1]}')")
                elements[-1][2].append((_PLY_TYPES[tok[1]], tok[-1], tok[1], None, None))
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
        raise too_many_points(path, n_vertex)
    if any(e[1] < 0 for e in elements):
        raise SampleLoadError(path, "corrupt PLY header (negative element count)")
    info = dict(n=n_vertex, fmt=fmt, elements=elements, vi=vi, header_len=header_len,
                header_lines=head[:header_len].count(b"\n"))
    if n_vertex == 0:
        return info
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
    elif all(pr[0] is not None for e in before for pr in e[2]):
        stride = sum(pr[0] for pr in elements[vi][2])
        need = header_len + sum(e[1] * sum(pr[0] for pr in e[2]) for e in before)
        if size < need:
            got = max(0, (size - (need - n_vertex * stride)) // stride)
            raise SampleLoadError(path, f"truncated PLY file: the header announces {n_vertex:,} points "
                                        f"but the file ends after {got:,} of them")
    return info


def check_pcd_header(path: Path, size: int) -> dict:
    """Validate a PCD header against the file size.

    Returns ``dict(n, organized=(H, W) or None, names, sizes, types, counts, kind=ascii|binary|
    binary_compressed, header_len=bytes, header_lines=lines)``.
    """
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
        raise too_many_points(path, n)
    if n < 0 or width < 0 or height < 0 or any(s not in (1, 2, 4, 8) for s in sizes) or any(c < 1 for c in counts):
        raise SampleLoadError(path, "corrupt PCD header (negative counts or unsupported field sizes)")
    types = fields.get("TYPE", ["F"] * len(names))
    if len(sizes) != len(names) or len(counts) != len(names) or len(types) != len(names):
        raise SampleLoadError(path, "corrupt PCD header (FIELDS, SIZE, TYPE and COUNT disagree)")
    for name, t, sz in zip(names, types, sizes):
        # open3d silently returns zeros for other coordinate encodings (e.g. float16)
        if name in ("x", "y", "z") and not (t.upper() == "F" and sz in (4, 8) or t.upper() in "IU" and sz in (1, 2, 4, 8)):
            raise SampleLoadError(path, f"unsupported PCD coordinate type {t}{sz * 8} for field '{name}'")
    kind = (fields["DATA"] or ["?"])[0].lower()
    organized = (height, width) if height > 1 and width * height == n else None
    info = dict(n=n, organized=organized, names=names, sizes=sizes, types=[t.upper() for t in types],
                counts=counts, kind=(fields["DATA"] or ["?"])[0].lower(), header_len=header_len,
                header_lines=head[:header_len].count(b"\n"))
    if n == 0:
        return info
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
    return info


def tiff_is_xyz(path: PathLike) -> bool:
    """True when a TIFF holds an organized xyz cloud (float ``H x W x 3`` or ``3 x H x W``), False
    when it is a plain image (2-D, 1/2/4 channels or integer data).  Reads only the header."""
    import tifffile

    p = as_path(path)
    check_file(p)
    with guard(p, "TIFF file"):
        try:
            with tifffile.TiffFile(str(p)) as tf:
                if not tf.series:
                    raise SampleLoadError(p, "truncated or corrupt TIFF (no image data found)")
                s = tf.series[0]
                shape, dtype = tuple(s.shape), np.dtype(s.dtype)
        except (tifffile.TiffFileError, ValueError, OSError, struct.error) as e:
            raise SampleLoadError(p, f"not a valid TIFF file ({first_line(e)})") from None
    return dtype.kind == "f" and len(shape) == 3 and (shape[2] == 3 or shape[0] == 3)

