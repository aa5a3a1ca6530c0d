"""Atomic file writes: a reader, or a crash half-way, never sees half a file.

Every file the program writes for the user (maps, pictures, exports, reports, saved fits,
checkpoints, the settings) goes through this module.  The data goes to a hidden temporary file in
the target's folder, which is flushed and fsynced, then renamed over the target
(:func:`os.replace`); the folder is fsynced too where the platform allows.  The file gets the
ordinary mode of a new file (``0o666`` less the umask), not the private mode of
:func:`tempfile.mkstemp`.  On any failure the temporary file is removed; an :class:`OSError`
becomes :class:`~core.errors.OutputWriteError` naming the target file.

* :func:`atomic_write` - bytes or text;
* :func:`atomic_open` - a file object to write into (``np.savez``, ``csv``, ``configparser``);
* :func:`atomic_path` - a temporary file name, for libraries that write by name (open3d): it
  ends with the target's suffix, so a library that picks the format from the name picks the same.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Union

from ..errors import OutputWriteError

PathLike = Union[str, os.PathLike]


def _reason(e: OSError) -> str:
    return e.strerror or str(e)


def _create_temp(target: Path) -> Path:
    """A new, empty, hidden file beside ``target``, with the ordinary mode of a new file."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(8):
            tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part{target.suffix}")
            try:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return tmp
            except FileExistsError:
                continue
        raise FileExistsError(f"no free temporary name beside {target.name}")
    except OSError as e:
        raise OutputWriteError(target, f"cannot write here ({_reason(e)})") from None


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX; Windows cannot open a folder for this)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _staged(path: PathLike) -> Iterator[Path]:
    """A temporary file beside ``path``; on a clean exit it is renamed to ``path`` (the caller has
    synced it); on any exit it is gone afterwards."""
    target = Path(os.fspath(path))
    tmp = _create_temp(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise OutputWriteError(target, f"cannot write the file ({_reason(e)})") from None
    finally:
        if os.path.lexists(tmp):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_folder(target.parent)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", encoding: Optional[str] = None,
                newline: Optional[str] = None) -> Iterator[IO[Any]]:
    """A file object (``mode`` ``"wb"`` or ``"w"``) whose content replaces ``path`` when the block
    ends without an error (nothing changes at ``path`` otherwise)."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes a new file: mode 'wb' or 'w', not {mode!r}")
    with _staged(path) as tmp:
        with open(tmp, mode, encoding=encoding if mode == "w" else None, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary file name beside ``path`` (an empty file exists there) for a library that writes
    by name; when the block ends without an error it is synced and renamed to ``path``."""
    with _staged(path) as tmp:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())


def atomic_write(path: PathLike, data: Union[bytes, bytearray, memoryview, str], encoding: str = "utf-8") -> Path:
    """Write ``data`` (text is encoded with ``encoding``) to ``path`` atomically; returns the path."""
    raw = data.encode(encoding) if isinstance(data, str) else data
    with atomic_open(path, "wb") as fh:
        fh.write(raw)
    return Path(os.fspath(path))
