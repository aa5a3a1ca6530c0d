"""The errors of a project's writes: read-only (another instance has it) and failed (disk full...)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

from ..errors import InputError


class ProjectFileError(InputError):
    """A project file that is damaged, not ours, or of a format this version cannot read: it is
    neither read further nor written (nothing is added to it)."""


class ProjectReadOnlyError(InputError):
    """A write on a project opened read-only (another instance holds it)."""


# SQLite result codes (sqlite3.SQLITE_* from Python 3.11): FULL, READONLY, IOERR, BUSY, LOCKED, CORRUPT, NOTADB
_SQLITE_REASONS = {13: "disk full", 8: "read-only file or folder", 10: "disk I/O error", 5: "the file is busy",
                   6: "the file is busy", 11: "the file is damaged", 26: "the file is damaged"}


class ProjectWriteError(InputError):
    """An action could not be written to the project file (disk full, I/O error, damaged file...).

    ``reason``: what went wrong, in words; ``pending``: the verdicts kept in memory so far
    (:attr:`Project.pending`, written by :meth:`Project.retry`), 0 for an action that is not kept.
    """

    def __init__(self, path: Path, reason: str, pending: int = 0):
        self.reason = reason
        self.pending = pending
        if pending:
            super().__init__(path, f"{pending} verdict{'s' if pending != 1 else ''} not saved yet ({reason}); "
                                   "kept in memory and retried")
        else:
            super().__init__(path, f"cannot save to the project ({reason})")

    @classmethod
    def of(cls, path: Path, err: sqlite3.Error) -> "ProjectWriteError":
        code = getattr(err, "sqlite_errorcode", None)
        return cls(path, _SQLITE_REASONS.get(code & 0xFF, str(err)) if isinstance(code, int) else str(err))
