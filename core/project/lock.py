"""One writer per project: an exclusive OS lock on ``<project>.lock`` that holds the owner's pid.

The lock is advisory (``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows) and belongs to the
open file description, so the operating system drops it when the process ends, however it ends
(kill -9, crash, power cut): a stale lock file never blocks a later start.  The pid written in the
file only serves the message shown to a second instance.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import InputError

try:                      # POSIX
    import fcntl
except ImportError:       # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class ProjectLockedError(InputError):
    """The project is open in another instance of the program (``pid``: that process, if known)."""

    def __init__(self, path: Path, pid: Optional[int]):
        self.pid = pid
        who = f"another MMAD Inspector (process {pid})" if pid else "another MMAD Inspector"
        super().__init__(path, f"this project is already open in {who}; close it there first, "
                               "or open the project read-only")


def lock_path_for(project_file: Path) -> Path:
    return Path(str(project_file) + ".lock")


def _read_pid(fd: int) -> Optional[int]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 64).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


class ProjectLock:
    """Hold the exclusive lock of a project file until :meth:`release` (or process exit)."""

    def __init__(self, project_file: Path):
        self.path = lock_path_for(Path(project_file))
        self._fd: Optional[int] = None

    def acquire(self) -> "ProjectLock":
        """Take the lock; raise :class:`ProjectLockedError` when another process holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise InputError(self.path, f"cannot create the project's lock file ({e.strerror or e})") from None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise ProjectLockedError(self.path.with_suffix(""), pid) from None
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        except OSError:
            pass            # the pid is only for the message; the lock itself is held
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
