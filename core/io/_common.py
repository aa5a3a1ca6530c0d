"""Shared pieces of the readers: path checks, limits, error guards, quieting of library logs,
natural sort and folder listing."""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2

from ..errors import InputError, SampleLoadError

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


def max_points() -> int:
    """The point limit in force: ``core.io.MAX_POINTS`` (read at call time, so it can be changed)."""
    pkg = sys.modules.get(__package__ or "")
    return int(getattr(pkg, "MAX_POINTS", MAX_POINTS))


#: Largest image (width x height, read from the file's header before decoding) the readers accept;
#: the environment variable ``MMAD_MAX_PIXELS`` overrides it.  50 MP is a 7000 x 7000 image (150 MB
#: as 8-bit RGB); a small file that declares more (a decompression bomb) is refused unread.
MAX_PIXELS = 50_000_000
#: Smallest width/height of an RGB image the readers accept (a 1 x 1 "image" is not a photo of a part).
MIN_IMAGE_SIDE = 8


def max_pixels() -> int:
    """The pixel limit in force: ``$MMAD_MAX_PIXELS`` if set to a positive integer, else ``core.io.MAX_PIXELS``."""
    env = os.environ.get("MMAD_MAX_PIXELS", "").strip().replace("_", "")
    if env:
        try:
            v = int(float(env))
            if v > 0:
                return v
        except ValueError:
            pass
    pkg = sys.modules.get(__package__ or "")
    return int(getattr(pkg, "MAX_PIXELS", MAX_PIXELS))


def min_image_side() -> int:
    """The smallest RGB side accepted: ``core.io.MIN_IMAGE_SIDE`` (read at call time)."""
    pkg = sys.modules.get(__package__ or "")
    return int(getattr(pkg, "MIN_IMAGE_SIDE", MIN_IMAGE_SIDE))


class DegenerateCloudError(SampleLoadError):
    """A point cloud holds too few distinct points (e.g. all identical) to be inspected."""


#: Logger that receives what third-party libraries print while a reader runs (never stderr).
log = logging.getLogger("core.io")
# tifffile reports problems through `logging`; without a handler Python would print them to stderr
logging.getLogger("tifffile").addHandler(logging.NullHandler())


# ====================================================================== helpers
def as_path(path: PathLike) -> Path:
    return Path(os.fspath(path))


def why_missing(path: PathLike, default: str = "file not found") -> str:
    """Why ``path`` cannot be reached although it may be listed: "symbolic link loop (...)" when
    resolving it loops (ELOOP), "broken symbolic link (...)" when it is a link to nothing, else
    ``default``.  (``Path.exists()`` answers False to all three.)"""
    p = as_path(path)
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself through other links; it points to nothing)"
        if e.errno == errno.ENOENT and os.path.islink(p):
            try:
                target = os.readlink(p)
            except OSError:
                target = "?"
            return f"broken symbolic link (it points to '{target}', which does not exist)"
    return default


def check_file(path: PathLike) -> int:
    """Check that ``path`` is an existing, readable, non-empty file; return its size in bytes.

    Raises :class:`SampleLoadError` ("file not found", "symbolic link loop", "broken symbolic
    link", "is a directory, not a file", "is not a regular file (a FIFO/pipe)", "file is empty (0
    bytes)", "permission denied").  Nothing is opened, so a FIFO never blocks.
    """
    p = as_path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise SampleLoadError(p, why_missing(p)) from None
    except PermissionError:
        raise SampleLoadError(p, "permission denied") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise SampleLoadError(p, why_missing(p)) from None
        raise SampleLoadError(p, f"cannot access the file ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise SampleLoadError(p, "is a directory (a folder), not a file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO/pipe" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file")
        raise SampleLoadError(p, f"is not a regular file ({kind})")
    if st.st_size == 0:
        raise SampleLoadError(p, "file is empty (0 bytes)")
    if not os.access(p, os.R_OK):
        raise SampleLoadError(p, "permission denied")
    return int(st.st_size)


def read_bytes(path: Path) -> bytes:
    check_file(path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except MemoryError:
        raise SampleLoadError(path, "not enough memory to read the file") from None
    except OSError as e:
        raise SampleLoadError(path, f"cannot read the file ({e.strerror or e})") from None


@contextlib.contextmanager
def guard(path: Path, what: str) -> Iterator[None]:
    """Turn unexpected library exceptions into a SampleLoadError naming ``path``."""
    try:
        yield
    except InputError:
        raise
    except MemoryError:
        raise SampleLoadError(path, f"not enough memory to load this {what}") from None
    except Exception as e:  # noqa: BLE001 - any library failure becomes a plain message
        raise SampleLoadError(path, f"could not read {what}: {first_line(e)}") from None


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


class _StderrCapture:
    """Reference-counted capture of file descriptor 2 while C/C++ libraries run.

    OpenCV (libpng, libjpeg), open3d (RPly) and others print straight to the C ``stderr``, which
    Python-level redirection cannot catch.  The first entrant points fd 2 at a temporary file, the
    last one restores it and turns what was printed into ``logging`` records (INFO, logger
    ``core.io``), so the messages never reach the terminal.  ``last`` holds the text of the last
    capture (readers may inspect it).  Anything another thread prints in that window is logged too.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved_fd: Optional[int] = None
        self._tmp = None
        self.last = ""

    @contextlib.contextmanager
    def __call__(self, what: str = "") -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                try:
                    sys.stderr.flush()
                except Exception:  # noqa: BLE001
                    pass
                try:
                    self._tmp = tempfile.TemporaryFile()
                    self._saved_fd = os.dup(2)
                    os.dup2(self._tmp.fileno(), 2)
                except OSError:  # no fd 2 (e.g. a windowed app): nothing to capture
                    self._saved_fd = None
                    if self._tmp is not None:
                        self._tmp.close()
                        self._tmp = None
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved_fd is not None:
                    text = ""
                    try:
                        os.dup2(self._saved_fd, 2)
                        os.close(self._saved_fd)
                        self._tmp.seek(0)
                        text = self._tmp.read(65536).decode("utf-8", "replace").strip()
                    except OSError:
                        pass
                    finally:
                        self._tmp.close()
                        self._tmp, self._saved_fd = None, None
                    self.last = text
                    if text:
                        log.info("library messages%s: %s", f" while reading {what}" if what else "", text)


capture_stderr = _StderrCapture()


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


quiet_cv2 = _Quiet(_cv2_lower, lambda old: cv2.utils.logging.setLogLevel(old))
quiet_o3d = _Quiet(_o3d_lower, _o3d_restore)


def fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def too_many_points(path: Path, n: int) -> SampleLoadError:
    return SampleLoadError(path, f"point cloud is too large ({n:,} points; the limit is {max_points():,})")


_NUM_RE = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key that orders ``"2"`` before ``"10"`` (case-insensitive)."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in _NUM_RE.split(name))


def list_dir(folder: PathLike, exts: Optional[Sequence[str]] = None, dirs: bool = False) -> list[Path]:
    """Entries of ``folder`` in natural order, without opening any file.

    ``dirs=False`` lists files (optionally only those whose lowercase suffix is in ``exts``),
    ``dirs=True`` lists sub-folders.  Hidden entries (``.name``) are skipped; a missing or
    unreadable folder gives an empty list.  An entry whose kind cannot be read (a symbolic link
    loop, an unreadable link target) is listed as a file, so that loading it names the problem
    instead of its sample silently losing that file.
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
                    is_dir = False
                if dirs != is_dir:
                    continue
                if exts is not None and not dirs and os.path.splitext(e.name)[1].lower() not in exts:
                    continue
                out.append(Path(e.path))
    except OSError:
        return []
    out.sort(key=lambda p: natural_key(p.name))
    return out



def first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__

