"""File readers and writers for images, masks and point clouds.

Every reader turns *any* failure (missing file, empty file, truncated or corrupt content, wrong
shape, unsupported format, too large input) into :class:`~core.errors.SampleLoadError` whose
message names the file and says what is wrong in plain words, e.g.::

    /data/cookie/test/crack/rgb/003.png: truncated or corrupt PNG image (the file ends before the image data is complete)

so callers (CLI, GUI, batch evaluation) can show the message as is.

Conventions (see :mod:`core.sample`):

* RGB images are ``H x W x 3`` ``uint8`` in RGB order.
* Masks are ``H x W`` ``bool``; any value > 0 is a defect (masks may hold class ids).
* Organized clouds are ``H x W x 3`` ``float32`` with missing points as NaN (on disk, MVTec 3D-AD
  stores them as exact zeros); unorganized clouds are ``N x 3`` ``float32`` with no missing point.

Readers never keep files open and never print library warnings for bad input.
"""
from __future__ import annotations

import contextlib
import os
import re
import struct
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from .errors import InputError, SampleLoadError

PathLike = Union[str, os.PathLike]

#: Image file extensions understood by :func:`read_rgb` / :func:`read_mask`.
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Point cloud file extensions understood by :func:`read_cloud`.
CLOUD_EXTS = (".ply", ".pcd", ".npy", ".tif", ".tiff", ".txt", ".xyz", ".csv")
TEXT_CLOUD_EXTS = (".txt", ".xyz", ".csv")
TIFF_EXTS = (".tif", ".tiff")

#: Largest point cloud (number of points, or pixels of an organized cloud) the readers accept.
#: Bigger inputs are refused with a clear message instead of exhausting memory.
MAX_POINTS = 50_000_000

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"
_BMP_MAGIC = b"BM"
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


# ====================================================================== helpers
def _path(path: PathLike) -> Path:
    return Path(os.fspath(path))


def check_file(path: PathLike) -> int:
    """Check that ``path`` is an existing, readable, non-empty file; return its size in bytes.

    Raises :class:`SampleLoadError` ("file not found", "is a folder, not a file",
    "file is empty (0 bytes)", "permission denied").
    """
    p = _path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SampleLoadError(p, "file not found") from None
    except PermissionError:
        raise SampleLoadError(p, "permission denied") from None
    except OSError as e:
        raise SampleLoadError(p, f"cannot access the file ({e.strerror or e})") from None
    if p.is_dir():
        raise SampleLoadError(p, "is a folder, not a file")
    if st.st_size == 0:
        raise SampleLoadError(p, "file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise SampleLoadError(p, "permission denied")
    return int(st.st_size)


def _read_bytes(path: Path) -> bytes:
    check_file(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except MemoryError:
        raise SampleLoadError(path, "not enough memory to read the file") from None
    except OSError as e:
        raise SampleLoadError(path, f"cannot read the file ({e.strerror or e})") from None


@contextlib.contextmanager
def _guard(path: Path, what: str) -> Iterator[None]:
    """Turn unexpected library exceptions into a SampleLoadError naming ``path``."""
    try:
        yield
    except InputError:
        raise
    except MemoryError:
        raise SampleLoadError(path, f"not enough memory to load this {what}") from None
    except Exception as e:  # noqa: BLE001 - any library failure becomes a plain message
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SampleLoadError(path, f"could not read {what}: {msg}") from None


class _Quiet:
    """Reference-counted, thread-safe "silence this library's log for a moment".

    The libraries' log levels are process-global: the first caller lowers it, the last one
    restores the original level, so concurrent readers never leave logging switched off.
    """

    def __init__(self, lower, restore):
        self._lower, self._restore = lower, restore
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                try:
                    self._saved = self._lower()
                except Exception:  # noqa: BLE001 - silencing is best effort
                    self._saved = None
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved is not None:
                    try:
                        self._restore(self._saved)
                    except Exception:  # noqa: BLE001
                        pass


def _cv2_lower():
    log = cv2.utils.logging
    old = log.getLogLevel()
    log.setLogLevel(log.LOG_LEVEL_SILENT)
    return old


def _o3d_lower():
    import open3d as o3d
    old = o3d.utility.get_verbosity_level()
    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    return old


def _o3d_restore(level):
    import open3d as o3d
    o3d.utility.set_verbosity_level(level)


_quiet_cv2 = _Quiet(_cv2_lower, lambda old: cv2.utils.logging.setLogLevel(old))
_quiet_o3d = _Quiet(_o3d_lower, _o3d_restore)


def _fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _too_many(path: Path, n: int) -> SampleLoadError:
    return SampleLoadError(path, f"point cloud is too large ({n:,} points; the limit is {MAX_POINTS:,})")


_NUM_RE = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``"2"`` before ``"10"`` (case-insensitive)."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in _NUM_RE.split(name))


def list_dir(folder: PathLike, exts: Optional[Sequence[str]] = None, dirs: bool = False) -> list[Path]:
    """Entries of ``folder`` in natural order, without opening any file.

    ``dirs=False`` lists files (optionally only those whose lowercase suffix is in ``exts``),
    ``dirs=True`` lists sub-folders.  Hidden entries (``.name``) are skipped; a missing or
    unreadable folder gives an empty list.
    """
    out = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if e.name.startswith("."):
                    continue
                try:
                    is_dir = e.is_dir()
                except OSError:
                    continue
                if dirs != is_dir:
                    continue
                if exts is not None and not dirs and os.path.splitext(e.name)[1].lower() not in exts:
                    continue
                out.append(Path(e.path))
    except OSError:
        return []
    out.sort(key=lambda p: natural_key(p.name))
    return out


# ====================================================================== images
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


def _read_tiff_array(path: Path) -> np.ndarray:
    """First image series of a TIFF as stored (no conversion)."""
    import tifffile

    check_file(path)
    with _guard(path, "TIFF file"):
        try:
            tf = tifffile.TiffFile(str(path))
        except (tifffile.TiffFileError, ValueError, OSError, IndexError, struct.error) as e:
            raise SampleLoadError(path, f"not a valid TIFF file ({_first_line(e)})") from None
        with tf:
            if not tf.series or not len(tf.pages):
                raise SampleLoadError(path, "truncated or corrupt TIFF (no image data found)")
            series = tf.series[0]
            if int(np.prod(series.shape)) > 3 * MAX_POINTS * 2:
                raise SampleLoadError(path, f"image is too large (shape {_fmt_shape(series.shape)})")
            try:
                return np.asarray(series.asarray())
            except (ValueError, OSError, IndexError, KeyError, struct.error) as e:
                raise SampleLoadError(path, f"truncated or corrupt TIFF ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def _decode_image(path: Path) -> tuple[np.ndarray, str]:
    """Decode an image file as stored. Returns (array, channel order: "bgr" or "rgb")."""
    path = _path(path)
    ext = path.suffix.lower()
    check_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise SampleLoadError(path, f"cannot read the file ({e.strerror or e})") from None
    fmt = _sniff_image_format(head)
    expected = _EXT_FORMAT.get(ext)
    if fmt is None:
        what = f"{expected} image" if expected else "image"
        raise SampleLoadError(path, f"not a valid {what} (the file content is not a PNG, JPEG, BMP or TIFF image)")
    if fmt == "TIFF":
        return _read_tiff_array(path), "rgb"
    data = _read_bytes(path)
    _check_image_structure(path, data, fmt)
    with _guard(path, f"{fmt} image"), _quiet_cv2():
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise SampleLoadError(path, f"truncated or corrupt {fmt} image (it could not be decoded)")
    return img, "bgr"


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    """Bring any numeric image to uint8 without surprises.

    uint8 as is; bool -> 0/255; uint16 -> rounded value/257 (full 16-bit range onto 8 bits);
    other types: values already in [0, 1] are scaled by 255, values in [0, 255] kept, anything else
    is min-max stretched (non-finite -> 0).
    """
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    f = a.astype(np.float64)
    finite = np.isfinite(f)
    if not finite.any():
        return np.zeros(a.shape, np.uint8)
    lo, hi = float(f[finite].min()), float(f[finite].max())
    f = np.where(finite, f, 0.0)
    if lo >= 0.0 and hi <= 1.0 and np.issubdtype(a.dtype, np.floating):
        f = f * 255.0
    elif not (lo >= 0.0 and hi <= 255.0):
        f = (f - lo) / (hi - lo if hi > lo else 1.0) * 255.0
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def _to_rgb(path: Path, img: np.ndarray, order: str) -> np.ndarray:
    if img.ndim == 3 and order == "rgb" and img.shape[0] in (1, 3, 4) and img.shape[2] not in (1, 2, 3, 4):
        img = np.moveaxis(img, 0, -1)  # planar TIFF (C, H, W)
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4) or min(img.shape[:2]) < 1:
        raise SampleLoadError(path, f"expected a gray, RGB or RGBA image, got an array of shape {_fmt_shape(img.shape)}")
    c = img.shape[2]
    if c in (1, 2):  # gray (+ alpha)
        g = _scale_to_uint8(img[:, :, 0])
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    rgb = img[:, :, :3]
    if order == "bgr":
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(_scale_to_uint8(rgb))


def read_rgb(path: PathLike) -> np.ndarray:
    """Read an image file as ``H x W x 3`` ``uint8`` RGB.

    PNG, JPEG, BMP and TIFF are supported; grayscale becomes 3 equal channels, alpha is dropped,
    16-bit images are scaled to 8 bits (value / 257) and float images in [0, 1] are scaled by 255.
    Raises :class:`SampleLoadError` for missing, empty, truncated, corrupt or non-image files.
    """
    p = _path(path)
    img, order = _decode_image(p)
    return _to_rgb(p, img, order)


def read_image_raw(path: PathLike) -> np.ndarray:
    """Read an image as stored (e.g. a 16-bit depth PNG stays ``uint16``); colour order is RGB."""
    p = _path(path)
    img, order = _decode_image(p)
    if order == "bgr" and img.ndim == 3 and img.shape[2] >= 3:
        img = np.concatenate([img[:, :, 2::-1], img[:, :, 3:]], axis=2)
    return img


def read_mask(path: PathLike, shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """Read a ground-truth mask as ``H x W`` ``bool`` (any value > 0 in any colour channel is a defect).

    ``shape=(H, W)`` resizes it (nearest neighbour) to that grid when it differs.
    """
    p = _path(path)
    img, order = _decode_image(p)
    if img.ndim == 3 and order == "rgb" and img.shape[0] in (1, 3, 4) and img.shape[2] not in (1, 2, 3, 4):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3:
        if img.shape[2] == 2:  # gray + alpha
            img = img[:, :, :1]
        img = img[:, :, :3]
        if img.shape[2] not in (1, 3):
            raise SampleLoadError(p, f"expected a mask image, got an array of shape {_fmt_shape(img.shape)}")
        mask = (np.nan_to_num(img.astype(np.float64) if img.dtype.kind == "f" else img) > 0).any(axis=2)
    elif img.ndim == 2:
        mask = np.nan_to_num(img) > 0 if img.dtype.kind == "f" else img > 0
    else:
        raise SampleLoadError(p, f"expected a mask image, got an array of shape {_fmt_shape(img.shape)}")
    if shape is not None and tuple(mask.shape) != (int(shape[0]), int(shape[1])):
        mask = cv2.resize(mask.astype(np.uint8), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST) > 0
    return np.ascontiguousarray(mask)


def write_rgb(path: PathLike, rgb: np.ndarray) -> Path:
    """Write an ``H x W x 3`` uint8 RGB (or ``H x W`` gray) image; the format follows the suffix."""
    p = _path(path)
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = _scale_to_uint8(a)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[:, :, ::-1]
    elif a.ndim != 2:
        raise InputError(p, f"expected an H x W x 3 RGB image, got shape {_fmt_shape(a.shape)}")
    p.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(p), np.ascontiguousarray(a)):
        raise InputError(p, "could not write the image (unsupported extension or folder not writable)")
    return p


def write_mask(path: PathLike, mask: np.ndarray) -> Path:
    """Write a bool mask as a 0/255 8-bit PNG."""
    return write_rgb(path, np.asarray(mask).astype(bool).astype(np.uint8) * 255)


# ====================================================================== organized xyz (TIFF)
def _organized_missing_to_nan(xyz: np.ndarray) -> np.ndarray:
    """float32 copy with non-finite points and all-zero points set to NaN (all three coordinates)."""
    xyz = np.array(xyz, dtype=np.float32, copy=True)
    bad = ~np.isfinite(xyz).all(axis=-1) | (xyz == 0).all(axis=-1)
    xyz[bad] = np.nan
    return xyz


def read_xyz_tiff(path: PathLike, require_points: bool = True) -> np.ndarray:
    """Read an organized point cloud TIFF (MVTec 3D-AD ``xyz/*.tiff``) as ``H x W x 3`` float32.

    On disk a missing point is stored as ``(0, 0, 0)``; here it becomes NaN, as does any point with
    a non-finite coordinate.  Planar ``3 x H x W`` files are accepted.  With ``require_points`` an
    all-missing cloud raises ("all points are missing").
    """
    p = _path(path)
    a = _read_tiff_array(p)
    if a.ndim == 3 and a.shape[0] == 3 and a.shape[2] != 3:
        a = np.moveaxis(a, 0, -1)
    if a.ndim != 3 or a.shape[2] != 3:
        hint = " (a single-channel TIFF is a depth map or a gray image, not xyz)" if a.ndim == 2 else ""
        raise SampleLoadError(p, f"expected an H x W x 3 xyz TIFF, got shape {_fmt_shape(a.shape)}{hint}")
    if a.dtype.kind not in "fiu":
        raise SampleLoadError(p, f"expected numeric xyz coordinates, got data type {a.dtype}")
    if a.shape[0] * a.shape[1] > MAX_POINTS:
        raise _too_many(p, a.shape[0] * a.shape[1])
    xyz = _organized_missing_to_nan(a)
    if require_points and not np.isfinite(xyz).all(axis=-1).any():
        raise SampleLoadError(p, "all points are missing (NaN or zero)")
    return xyz


def write_xyz_tiff(path: PathLike, xyz: np.ndarray) -> Path:
    """Write an organized ``H x W x 3`` cloud as a float32 TIFF, NaN stored as 0 (MVTec 3D-AD convention)."""
    import tifffile

    p = _path(path)
    a = np.asarray(xyz, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(p, f"expected an H x W x 3 organized cloud, got shape {_fmt_shape(a.shape)}")
    a = np.where(np.isfinite(a).all(axis=-1, keepdims=True), a, 0.0).astype(np.float32)
    p.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(str(p), a, photometric="rgb")
    return p


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
    if n_vertex > MAX_POINTS:
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
    if n > MAX_POINTS:
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


def _finish_unorganized(path: Path, pts: np.ndarray, colors: Optional[np.ndarray]):
    if pts.shape[0] == 0:
        raise SampleLoadError(path, "point cloud is empty (no points)")
    keep = np.isfinite(pts).all(axis=1)
    if not keep.any():
        raise SampleLoadError(path, "all points are missing (NaN or infinite coordinates)")
    if not keep.all():
        pts = pts[keep]
        colors = colors[keep] if colors is not None else None
    return np.ascontiguousarray(pts, dtype=np.float32), colors, False


def _finish_organized(path: Path, xyz: np.ndarray, colors: Optional[np.ndarray]):
    if xyz.shape[0] * xyz.shape[1] == 0:
        raise SampleLoadError(path, "point cloud is empty (no points)")
    xyz = _organized_missing_to_nan(xyz)
    if not np.isfinite(xyz).all(axis=-1).any():
        raise SampleLoadError(path, "all points are missing (NaN or zero)")
    return xyz, colors, True


def _read_o3d(path: Path, size: int, kind: str):
    import open3d as o3d

    n_header, organized = _check_ply(path, size) if kind == "ply" else _check_pcd(path, size)
    if n_header == 0:
        raise SampleLoadError(path, "point cloud has no points (the file declares 0 points)")
    with _guard(path, "point cloud"), _quiet_o3d():
        pc = o3d.io.read_point_cloud(str(path), format=kind, remove_nan_points=False, remove_infinite_points=False)
        pts = np.asarray(pc.points, dtype=np.float64)
        colors = _colors_to_uint8(np.asarray(pc.colors)) if pc.has_colors() else None
    if pts.shape[0] == 0:
        raise SampleLoadError(path, "could not read point cloud (corrupt, truncated or unsupported format)")
    if pts.shape[0] != n_header:
        raise SampleLoadError(path, f"could not read all points (the header announces {n_header:,}, "
                                    f"{pts.shape[0]:,} were read): the file is corrupt or truncated")
    if organized is not None:
        h, w = organized
        return _finish_organized(path, pts.reshape(h, w, 3), colors.reshape(h, w, 3) if colors is not None else None)
    return _finish_unorganized(path, pts, colors)


def _read_npy_array(path: Path) -> np.ndarray:
    check_file(path)
    try:
        arr = np.load(str(path), mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        msg = str(e)
        if "pickle" in msg or "Python objects" in msg:
            raise SampleLoadError(path, "not a numeric .npy array (it holds pickled Python objects)") from None
        if "mmap length" in msg or "fully written" in msg:
            raise SampleLoadError(path, "truncated .npy file (the data is shorter than its header says)") from None
        raise SampleLoadError(path, f"not a valid .npy file ({_first_line(e)})") from None
    except (OSError, EOFError) as e:
        raise SampleLoadError(path, f"not a valid .npy file ({_first_line(e)})") from None
    if not isinstance(arr, np.ndarray):
        raise SampleLoadError(path, "not a valid .npy file")
    return arr


def _read_npy_cloud(path: Path):
    arr = _read_npy_array(path)
    if arr.dtype.names:  # structured array with named fields
        if not {"x", "y", "z"} <= set(arr.dtype.names):
            raise SampleLoadError(path, f"structured .npy array has no x, y, z fields (fields: {', '.join(arr.dtype.names)})")
        if arr.size > MAX_POINTS:
            raise _too_many(path, arr.size)
        with _guard(path, ".npy point cloud"):
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
        if shape[0] > MAX_POINTS:
            raise _too_many(path, shape[0])
        with _guard(path, ".npy point cloud"):
            a = np.asarray(arr, dtype=np.float64)
        cols = a[:, 3:6] if shape[1] >= 6 else None
        colors = _colors_to_uint8(cols) if cols is not None and _looks_like_colors(cols) else None
        return _finish_unorganized(path, a[:, :3], colors)
    if arr.ndim == 3 and shape[2] in (3, 6):
        if shape[0] * shape[1] > MAX_POINTS:
            raise _too_many(path, shape[0] * shape[1])
        with _guard(path, ".npy point cloud"):
            a = np.asarray(arr, dtype=np.float64)
        cols = a[:, :, 3:6] if shape[2] == 6 else None
        colors = _colors_to_uint8(cols) if cols is not None and _looks_like_colors(cols) else None
        return _finish_organized(path, a[:, :, :3], colors)
    if arr.size == 0:
        raise SampleLoadError(path, "point cloud is empty (no points)")
    raise SampleLoadError(path, f"expected an N x 3 (or N x 6 with colours) or H x W x 3 point array, "
                                f"got shape {_fmt_shape(shape)}")


def _read_text_table(path: Path, what: str = "text point cloud") -> np.ndarray:
    """Parse a whitespace-, comma- or semicolon-separated numeric table (header lines skipped)."""
    size = check_file(path)
    with open(path, "rb") as f:
        sample = f.read(65536)
    if b"\x00" in sample:
        raise SampleLoadError(path, f"not a {what} (binary content)")
    text = sample.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if len(sample) == 65536 and lines:
        lines = lines[:-1]  # possibly cut in the middle
    skip = 0
    first = None
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#") or s.startswith("//"):
            skip = i + 1
            continue
        toks = re.split(r"[,;\s]+", s)
        try:
            [float(t) for t in toks if t]
        except ValueError:
            skip = i + 1  # a header line such as "x,y,z,label"
            continue
        first = s
        ntok = len([t for t in toks if t])
        # a point count on a line of its own (PTS files) followed by the data
        if ntok == 1 and i + 1 < len(lines) and len(re.split(r"[,;\s]+", lines[i + 1].strip())) >= 3:
            skip = i + 1
            first = lines[i + 1].strip()
        break
    if first is None:
        raise SampleLoadError(path, f"no numeric rows found (not a {what})")
    delim = "," if "," in first else (";" if ";" in first else None)
    avg = max(len(sample) / max(len(lines), 1), 4.0)
    if size / avg > MAX_POINTS * 1.2:
        raise _too_many(path, int(size / avg))
    try:
        a = np.loadtxt(str(path), delimiter=delim, skiprows=skip, comments=("#", "//"), ndmin=2, dtype=np.float64)
    except ValueError as e:
        msg = _first_line(e)
        raise SampleLoadError(path, f"truncated or malformed {what}: {msg}") from None
    except MemoryError:
        raise SampleLoadError(path, f"not enough memory to load this {what}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SampleLoadError(path, f"could not read {what}: {_first_line(e)}") from None
    return a


def _read_text_cloud(path: Path):
    a = _read_text_table(path)
    if a.shape[0] > MAX_POINTS:
        raise _too_many(path, a.shape[0])
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
    or too large (> :data:`MAX_POINTS`) clouds.
    """
    p = _path(path)
    ext = p.suffix.lower()
    if ext not in CLOUD_EXTS:
        raise SampleLoadError(p, f"unsupported point cloud format '{ext or p.name}' "
                                 f"(expected {', '.join(CLOUD_EXTS)})")
    size = check_file(p)
    if ext in (".ply", ".pcd"):
        return _read_o3d(p, size, ext[1:])
    if ext == ".npy":
        return _read_npy_cloud(p)
    if ext in TIFF_EXTS:
        return read_xyz_tiff(p), None, True
    return _read_text_cloud(p)


def read_point_labels(path: PathLike) -> tuple[Optional[np.ndarray], np.ndarray]:
    """Read per-point ground truth: ``(xyz or None, labels)`` with ``labels`` an ``N`` bool array.

    Text files hold ``x y z label`` rows (Real3D-AD ``gt/*.txt``; the last column is the label, any
    value > 0 is a defect) or a single label column; ``.npy`` files an ``N`` label vector or an
    ``N x 4`` array.
    """
    p = _path(path)
    if p.suffix.lower() == ".npy":
        a = _read_npy_array(p)
        with _guard(p, "label file"):
            a = np.asarray(a, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
    else:
        a = _read_text_table(p, "per-point label file")
    if a.ndim != 2 or a.shape[1] in (2, 3):
        raise SampleLoadError(p, f"expected rows of 'x y z label' or a single label column, got {a.shape[1]} columns")
    if a.shape[0] == 0:
        raise SampleLoadError(p, "label file is empty (no rows)")
    labels = np.nan_to_num(a[:, -1]) > 0
    xyz = a[:, :3].astype(np.float32) if a.shape[1] >= 4 else None
    return xyz, labels


def align_point_labels(path: PathLike, points: np.ndarray, label_xyz: Optional[np.ndarray],
                       labels: np.ndarray) -> np.ndarray:
    """Per-point labels for ``points`` (``N x 3``) from a label file's rows.

    Rows are matched by order when the counts agree (and, when the file has coordinates, the
    coordinates agree); otherwise each point takes the label of the nearest labelled coordinate
    (scipy ``cKDTree``).  ``path`` (the label file) is only used in error messages.
    """
    p = _path(path)
    pts = np.asarray(points, dtype=np.float64)
    n = pts.shape[0]
    if len(labels) == n:
        if label_xyz is None:
            return labels.astype(bool)
        ext = float(np.ptp(pts, axis=0).max()) if n else 0.0
        if np.allclose(label_xyz, pts, rtol=0.0, atol=max(ext, 1.0) * 1e-5):
            return labels.astype(bool)
    if label_xyz is None:
        raise SampleLoadError(p, f"the file has {len(labels):,} labels but the point cloud has {n:,} points "
                                 "(and no coordinates to match them)")
    from scipy.spatial import cKDTree

    finite = np.isfinite(label_xyz).all(axis=1)
    if not finite.any():
        raise SampleLoadError(p, "the label file has no valid coordinates")
    tree = cKDTree(label_xyz[finite])
    _, idx = tree.query(pts, k=1, workers=-1)
    return labels[finite][idx].astype(bool)


def write_cloud(path: PathLike, points: np.ndarray, colors: Optional[np.ndarray] = None) -> Path:
    """Write a point cloud; the format follows the suffix.

    ``.ply`` / ``.pcd`` (binary, via open3d), ``.npy`` (``N x 3`` float32, or ``N x 6`` with colours
    0..255 appended; an organized ``H x W x 3`` cloud is kept organized), ``.txt`` / ``.xyz`` /
    ``.csv`` (one point per line), ``.tif`` / ``.tiff`` (organized only, :func:`write_xyz_tiff`).
    Organized clouds written to point formats keep only their valid points.
    """
    p = _path(path)
    ext = p.suffix.lower()
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim not in (2, 3) or pts.shape[-1] != 3:
        raise InputError(p, f"expected N x 3 or H x W x 3 points, got shape {_fmt_shape(pts.shape)}")
    cols = None
    if colors is not None:
        cols = np.asarray(colors)
        if cols.shape != pts.shape:
            raise InputError(p, f"colours shape {_fmt_shape(cols.shape)} does not match points {_fmt_shape(pts.shape)}")
        cols = cols if cols.dtype == np.uint8 else _colors_to_uint8(cols)
    if ext in TIFF_EXTS:
        if pts.ndim != 3:
            raise InputError(p, "a TIFF point cloud must be organized (H x W x 3)")
        return write_xyz_tiff(p, pts)
    p.parent.mkdir(parents=True, exist_ok=True)
    if ext == ".npy":
        a = pts.astype(np.float32)
        if cols is not None:
            a = np.concatenate([a, cols.astype(np.float32)], axis=-1)
        np.save(str(p), a)
        return p
    if pts.ndim == 3:
        keep = np.isfinite(pts).all(axis=-1) & ~(pts == 0).all(axis=-1)
        pts = pts[keep]
        cols = cols[keep] if cols is not None else None
    if ext in TEXT_CLOUD_EXTS:
        a = pts if cols is None else np.concatenate([pts, cols.astype(np.float64)], axis=1)
        fmt = ["%.6f"] * 3 + ["%d"] * (a.shape[1] - 3)
        np.savetxt(str(p), a, fmt=fmt, delimiter="," if ext == ".csv" else " ")
        return p
    if ext in (".ply", ".pcd"):
        import open3d as o3d

        pc = o3d.geometry.PointCloud()
        pc.points = o3d.utility.Vector3dVector(pts)
        if cols is not None:
            pc.colors = o3d.utility.Vector3dVector(cols.astype(np.float64) / 255.0)
        with _quiet_o3d():
            ok = o3d.io.write_point_cloud(str(p), pc, write_ascii=False)
        if not ok:
            raise InputError(p, "could not write the point cloud (folder not writable?)")
        return p
    raise InputError(p, f"unsupported point cloud format '{ext}' (expected .ply, .pcd, .npy, .txt, .xyz, .csv or .tiff)")


# ====================================================================== misc
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


def read_simple_yaml(path: PathLike) -> dict:
    """Parse a small YAML file of nested mappings and scalars (enough for Eyecandies'
    ``*_info_depth.yaml``): block mappings by indentation, ``{a: 1, b: 2}`` flow mappings,
    ``[1, 2]`` flow lists, ``#`` comments.  Numbers become float/int."""
    p = _path(path)
    data = _read_bytes(p)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SampleLoadError(p, "not a text (YAML) file") from None
    root: dict = {}
    stack: list[tuple[int, dict]] = [(-1, root)]
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip())
        key, sep, value = line.strip().partition(":")
        if not sep:
            raise SampleLoadError(p, f"unsupported YAML on line {n}: '{raw.strip()}'")
        while stack and indent <= stack[-1][0]:
            stack.pop()
        if not stack:
            raise SampleLoadError(p, f"bad indentation on line {n}")
        parent = stack[-1][1]
        key = _yaml_scalar(key.strip())
        value = value.strip()
        if value == "":
            child: dict = {}
            parent[key] = child
            stack.append((indent, child))
        else:
            parent[key] = _yaml_value(value)
    return root


def _yaml_value(v: str):
    if v.startswith("{") and v.endswith("}"):
        out = {}
        for item in filter(None, (s.strip() for s in v[1:-1].split(","))):
            k, _, val = item.partition(":")
            out[_yaml_scalar(k.strip())] = _yaml_scalar(val.strip())
        return out
    if v.startswith("[") and v.endswith("]"):
        return [_yaml_scalar(s.strip()) for s in v[1:-1].split(",") if s.strip()]
    return _yaml_scalar(v)


def _yaml_scalar(s: str):
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    low = s.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("null", "~", ""):
        return None
    try:
        return int(s)
    except ValueError:
        pass
    try:
        return float(s)
    except ValueError:
        return s
