"""Image readers and writers: RGB images, masks, raw images, TIFF arrays."""
from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..errors import InputError, SampleLoadError
from ._common import (PathLike, as_path, capture_stderr, check_file, first_line, fmt_shape, guard, max_pixels,
                      max_points, min_image_side, quiet_cv2, read_bytes, too_many_points)
from .atomic import atomic_write
from .probe import EXT_FORMAT, check_image_structure, check_pixels, image_size, sniff_image_format

def read_tiff_array(path: Path, points: bool = False) -> np.ndarray:
    """First image series of a TIFF as stored (no conversion).

    Its size is checked from the header before any data is decoded: width x height against the
    pixel limit (:func:`max_pixels`), or against the point limit with ``points=True`` (xyz TIFF).
    """
    import tifffile

    check_file(path)
    with guard(path, "TIFF file"):
        try:
            tf = tifffile.TiffFile(str(path))
        except (tifffile.TiffFileError, ValueError, OSError, IndexError, struct.error) as e:
            raise SampleLoadError(path, f"not a valid TIFF file ({first_line(e)})") from None
        with tf:
            if not tf.series or not len(tf.pages):
                raise SampleLoadError(path, "truncated or corrupt TIFF (no image data found)")
            series = tf.series[0]
            page = tf.pages.first if hasattr(tf.pages, "first") else tf.pages[0]
            w, h = int(page.imagewidth), int(page.imagelength)
            if points:
                if w * h > max_points():
                    raise too_many_points(path, w * h)
            else:
                check_pixels(path, w, h)
            limit = max_points() if points else max_pixels()
            if int(np.prod(series.shape, dtype=np.float64)) > 4 * limit:
                raise SampleLoadError(path, f"image is too large to load (shape {fmt_shape(series.shape)}; "
                                            f"the limit is {limit:,} pixels per plane)")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return np.asarray(series.asarray())
            except (ValueError, OSError, IndexError, KeyError, struct.error) as e:
                raise SampleLoadError(path, f"truncated or corrupt TIFF ({first_line(e)})") from None



def _decode_image(path: Path) -> tuple[np.ndarray, str]:
    """Decode an image file as stored. Returns (array, channel order: "bgr" or "rgb")."""
    path = as_path(path)
    ext = path.suffix.lower()
    check_file(path)
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise SampleLoadError(path, f"cannot read the file ({e.strerror or e})") from None
    fmt = sniff_image_format(head)
    expected = EXT_FORMAT.get(ext)
    if fmt is None:
        what = f"{expected} image" if expected else "image"
        raise SampleLoadError(path, f"not a valid {what} (the file content is not a PNG, JPEG, BMP or TIFF image)")
    if fmt == "TIFF":
        return read_tiff_array(path), "rgb"
    w, h = image_size(path)  # from the header: a decompression bomb is refused unread
    check_pixels(path, w, h)
    data = read_bytes(path)
    check_image_structure(path, data, fmt)
    with guard(path, f"{fmt} image"), quiet_cv2(), capture_stderr(str(path)):
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
        raise SampleLoadError(path, f"expected a gray, RGB or RGBA image, got an array of shape {fmt_shape(img.shape)}")
    c = img.shape[2]
    if c in (1, 2):  # gray (+ alpha)
        g = _scale_to_uint8(img[:, :, 0])
        return np.ascontiguousarray(np.repeat(g[:, :, None], 3, axis=2))
    rgb = img[:, :, :3]
    if order == "bgr":
        rgb = rgb[:, :, ::-1]
    return np.ascontiguousarray(_scale_to_uint8(rgb))


def fit_max_side(img: np.ndarray, max_side: Optional[int]) -> np.ndarray:
    """``img`` downscaled (area averaging, aspect kept) so that its longer side is at most
    ``max_side`` pixels; returned unchanged when it already fits or ``max_side`` is None."""
    if max_side is None:
        return img
    h, w = img.shape[:2]
    if max(h, w) <= int(max_side):
        return img
    f = int(max_side) / max(h, w)
    size = (max(1, int(round(w * f))), max(1, int(round(h * f))))
    out = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return out[:, :, None] if img.ndim == 3 and out.ndim == 2 else out


def read_rgb(path: PathLike, max_side: Optional[int] = None, min_side: Optional[int] = None) -> np.ndarray:
    """Read an image file as ``H x W x 3`` ``uint8`` RGB.

    PNG, JPEG, BMP and TIFF are supported; grayscale becomes 3 equal channels, alpha is dropped,
    16-bit images are scaled to 8 bits (value / 257) and float images in [0, 1] are scaled by 255.
    The size is checked from the header before decoding (:func:`max_pixels`); images smaller than
    ``min_side`` (default ``core.io.MIN_IMAGE_SIDE``) pixels on a side are refused.  ``max_side`` downscales the result for display
    (:func:`fit_max_side`).  Raises :class:`SampleLoadError` for missing, empty, truncated, corrupt,
    too large, too small or non-image files.
    """
    p = as_path(path)
    img, order = _decode_image(p)
    rgb = _to_rgb(p, img, order)
    h, w = rgb.shape[:2]
    least = min_image_side() if min_side is None else int(min_side)
    if min(h, w) < least:
        raise SampleLoadError(p, f"image is too small ({w} x {h} pixels; at least {least} x {least} are needed)")
    return fit_max_side(rgb, max_side)


def read_image_raw(path: PathLike) -> np.ndarray:
    """Read an image as stored (e.g. a 16-bit depth PNG stays ``uint16``); colour order is RGB."""
    p = as_path(path)
    img, order = _decode_image(p)
    if order == "bgr" and img.ndim == 3 and img.shape[2] >= 3:
        img = np.concatenate([img[:, :, 2::-1], img[:, :, 3:]], axis=2)
    return img


def read_mask(path: PathLike, shape: Optional[tuple[int, int]] = None, resize: bool = False) -> np.ndarray:
    """Read a ground-truth mask as ``H x W`` ``bool`` (any value > 0 in any colour channel is a defect).

    ``shape=(H, W)`` is the sample's image grid: a mask of another size raises
    :class:`SampleLoadError` naming both sizes, unless ``resize=True`` asks for an explicit
    nearest-neighbour resize to that grid.
    """
    p = as_path(path)
    img, order = _decode_image(p)
    if img.ndim == 3 and order == "rgb" and img.shape[0] in (1, 3, 4) and img.shape[2] not in (1, 2, 3, 4):
        img = np.moveaxis(img, 0, -1)
    if img.ndim == 3:
        if img.shape[2] == 2:  # gray + alpha
            img = img[:, :, :1]
        img = img[:, :, :3]
        if img.shape[2] not in (1, 3):
            raise SampleLoadError(p, f"expected a mask image, got an array of shape {fmt_shape(img.shape)}")
        mask = (np.nan_to_num(img.astype(np.float64) if img.dtype.kind == "f" else img) > 0).any(axis=2)
    elif img.ndim == 2:
        mask = np.nan_to_num(img) > 0 if img.dtype.kind == "f" else img > 0
    else:
        raise SampleLoadError(p, f"expected a mask image, got an array of shape {fmt_shape(img.shape)}")
    if shape is not None and tuple(mask.shape) != (int(shape[0]), int(shape[1])):
        if not resize:
            raise SampleLoadError(p, f"mask size {mask.shape[1]} x {mask.shape[0]} (W x H) does not match the "
                                     f"image size {int(shape[1])} x {int(shape[0])}")
        mask = cv2.resize(mask.astype(np.uint8), (int(shape[1]), int(shape[0])), interpolation=cv2.INTER_NEAREST) > 0
    return np.ascontiguousarray(mask)


def write_rgb(path: PathLike, rgb: np.ndarray) -> Path:
    """Write an ``H x W x 3`` uint8 RGB (or ``H x W`` gray) image; the format follows the suffix."""
    p = as_path(path)
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = _scale_to_uint8(a)
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[:, :, ::-1]
    elif a.ndim != 2:
        raise InputError(p, f"expected an H x W x 3 RGB image, got shape {fmt_shape(a.shape)}")
    return atomic_write(p, encode_image(p, a))


def encode_image(path: PathLike, bgr: np.ndarray) -> bytes:
    """The file bytes of an 8-bit BGR (or gray) image in the format of ``path``'s suffix."""
    p = as_path(path)
    try:
        ok, buf = cv2.imencode(p.suffix.lower() or ".png", np.ascontiguousarray(bgr))
    except cv2.error:
        ok = False
    if not ok:
        raise InputError(p, f"cannot encode an image as '{p.suffix}' (use .png, .jpg, .bmp or .tiff)")
    return buf.tobytes()


def write_mask(path: PathLike, mask: np.ndarray) -> Path:
    """Write a bool mask as a 0/255 8-bit PNG."""
    return write_rgb(path, np.asarray(mask).astype(bool).astype(np.uint8) * 255)

