"""CSV files we write: cells that a spreadsheet would run as a formula are neutralised, every file
is written atomically (:mod:`.atomic`).

A cell that is text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (OWASP's
CSV-injection list) gets a leading apostrophe, so Excel, LibreOffice and Google Sheets show it as
text (``'=cmd|' /C calc'!A0``) instead of evaluating it; a class folder, a note or a file name can
be any text.  Numbers, and text that is a plain number (``-0.118``), are written as they are.
File names that are not valid UTF-8 (POSIX bytes, surrogate-escaped in Python) are written with
backslash escapes, never as a crash.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from .atomic import atomic_write

__all__ = ["FORMULA_PREFIXES", "csv_cell", "csv_text", "write_csv"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _is_number(s: str) -> bool:
    try:
        return s == s.strip() and math.isfinite(float(s))
    except ValueError:
        return False


def csv_cell(value: Any) -> Any:
    """``value`` as a safe CSV cell (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return value
    s = str(value)
    try:                       # surrogate-escaped bytes of a POSIX file name -> \\xNN
        s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    if s.startswith(FORMULA_PREFIXES) and not _is_number(s):
        return "'" + s
    return s


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The CSV text of ``header`` and ``rows``, every cell through :func:`csv_cell`."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow([csv_cell(h) for h in header])
    for row in rows:
        w.writerow([csv_cell(c) for c in row])
    return buf.getvalue()


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV file atomically (:func:`~core.io.atomic.atomic_write`); returns its path."""
    return atomic_write(path, csv_text(header, rows))
