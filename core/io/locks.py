"""An advisory lock between processes on a lock file (POSIX ``flock``, Windows ``msvcrt``): two
processes that fill the same cache (the demo data set, a weights download) take turns."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block, waiting for another
    holder to let go; no lock where the platform has none."""
    fh = open(path, "a+b")
    locked = None
    try:
        try:
            import fcntl
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            locked = "fcntl"
        except ImportError:
            try:
                import msvcrt
                while True:
                    try:
                        msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK, 1)
                        locked = "msvcrt"
                        break
                    except OSError:
                        time.sleep(0.5)
            except ImportError:
                pass
        yield
    finally:
        try:
            if locked == "fcntl":
                import fcntl
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            elif locked == "msvcrt":
                import msvcrt
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        finally:
            fh.close()
