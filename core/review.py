"""Crash-safe review store: annotators' verdicts on the detector's decisions.

An annotator *confirms* a detection (the detector's decision is right), *rejects* it (the decision
is wrong) or marks it *unsure*, optionally with a note.  Every verdict is **appended** as one JSON
line to a per-dataset file; :meth:`ReviewStore.record` returns only once the whole line is written
and fsync'ed, otherwise it raises :class:`ReviewWriteError` (disk full, read-only disk, short
write...).  A verdict that could not be written is kept in memory (:attr:`ReviewStore.pending`)
and written by :meth:`ReviewStore.retry` or the next :meth:`ReviewStore.record`; a failed write
is cut back so that the file never keeps half a line.  The file is never rewritten in place: the
history of every sample is kept, and the latest verdict of a sample wins when the file is loaded.

Reading never fails on the content: a corrupt line of any shape (truncated by a power cut, binary
garbage, deeply nested JSON, a JSON value that is not a verdict, fields of the wrong type) is
skipped, the skipped lines are listed in :attr:`ReviewStore.warnings` and reported in ONE logged
warning.  A UTF-8 byte-order mark (a file saved by an editor) is ignored.  Non-finite scores are
stored as ``null``.

Datasets may live on read-only media, so the store lives under the cache directory
(``$MMAD_CACHE`` or ``~/.cache/mmad-inspector``), in ``reviews/<folder-name>-<hash>.jsonl`` where the
hash is derived from the dataset's absolute path.

Example
-------
>>> store = ReviewStore.for_dataset("/data/mvtec3d")            # doctest: +SKIP
>>> store.record("bagel/test/crack/000", "confirmed", note="clear crack", annotator="ana")
>>> store.latest("bagel/test/crack/000").verdict
'confirmed'
>>> store.export_csv("verdicts.csv")
"""
from __future__ import annotations

import codecs
import csv
import datetime as _dt
import errno as _errno
import hashlib
import json
import logging
import math
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import InputError, MMADError

log = logging.getLogger(__name__)

CONFIRMED = "confirmed"
REJECTED = "rejected"
UNSURE = "unsure"
VERDICTS = (CONFIRMED, REJECTED, UNSURE)

CSV_COLUMNS = ("key", "verdict", "note", "annotator", "time", "image_score", "decision", "detector")

MAX_WARNINGS = 20        # skipped lines listed one by one in ReviewStore.warnings; the rest are counted
_BOM = codecs.BOM_UTF8
_TEXT_FIELDS = ("note", "annotator", "time", "detector")


class ReviewWriteError(MMADError, OSError):
    """A verdict could not be written to the review file (disk full, read-only, short write...).

    The verdict is kept in memory (:attr:`ReviewStore.pending`) and written by the next
    :meth:`ReviewStore.retry` or :meth:`ReviewStore.record`.  ``errno`` / ``strerror`` as for
    :class:`OSError`; ``path`` is the review file; ``pending`` the number of unsaved verdicts.
    """

    def __init__(self, path: str | Path, err_no: Optional[int], reason: str, pending: int = 1):
        OSError.__init__(self, err_no, reason, str(path))
        self.path = Path(path)
        self.reason = reason
        self.pending = pending

    def __str__(self) -> str:
        n = self.pending
        return (f"{self.path}: {n} verdict{'s' if n != 1 else ''} not saved yet ({self.reason}); "
                "kept in memory and retried")


def default_cache_dir() -> Path:
    """The application cache (:func:`core.paths.cache_dir`)."""
    from .paths import cache_dir
    return cache_dir(create=False)


def store_path_for(dataset_root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The JSON-lines file holding the verdicts of the dataset at ``dataset_root``."""
    root = Path(dataset_root).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in root.name) or "root"
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "reviews" / f"{name}-{digest}.jsonl"


def finite_or_none(x: Any) -> Optional[float]:
    """``float(x)`` when it is a finite number, else None (inf, nan, text, None...)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


_finite_or_none = finite_or_none   # the name the store's own code uses


def _plain(v: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of ``v`` (non-finite floats -> None, unknown types -> str, depth <= 16)."""
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if depth >= 16:
        return str(v)
    if isinstance(v, dict):
        return {str(k): _plain(x, depth + 1) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x, depth + 1) for x in v]
    if hasattr(v, "__float__"):                      # numpy scalars
        return _finite_or_none(v)
    return str(v)


@dataclass(frozen=True)
class Verdict:
    """One review event.  ``time`` is an ISO-8601 UTC timestamp."""
    key: str
    verdict: str
    note: str = ""
    annotator: str = ""
    time: str = ""
    image_score: Optional[float] = None
    decision: Optional[str] = None      # the detector's decision that was reviewed: anomalous | good
    detector: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["image_score"] = _finite_or_none(d["image_score"])
        d["extra"] = _plain(d["extra"])
        if not d["extra"]:
            d.pop("extra")
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: Any) -> "Verdict":
        """The verdict of a decoded line; ValueError when it is not one (wrong shape or types)."""
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        if not isinstance(d.get("key"), str) or not d["key"] or d.get("verdict") not in VERDICTS:
            raise ValueError("no sample key or verdict")
        for name in _TEXT_FIELDS:
            if not isinstance(d.get(name, ""), (str, type(None))):
                raise ValueError(f"'{name}' is not text")
        score = d.get("image_score")
        if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
            raise ValueError("'image_score' is not a number")
        if not isinstance(d.get("decision"), (str, type(None))):
            raise ValueError("'decision' is not text")
        if not isinstance(d.get("extra", {}), (dict, type(None))):
            raise ValueError("'extra' is not an object")
        return cls(key=d["key"], verdict=d["verdict"], note=d.get("note") or "",
                   annotator=d.get("annotator") or "", time=d.get("time") or "",
                   image_score=_finite_or_none(score), decision=d.get("decision"),
                   detector=d.get("detector") or "", extra=d.get("extra") or {})


def parse_line(line: bytes) -> Verdict:
    """Decode one line of a review file; ValueError (with the reason) when it is not a verdict.

    Never raises anything else: deep nesting (RecursionError), binary data, huge numbers are all
    reported as ValueError.
    """
    if line.startswith(_BOM):
        line = line[len(_BOM):]
    line = line.strip()
    if not line.startswith(b"{"):   # a verdict is an object: "[[[[...", garbage, NUL bytes stop here
        raise ValueError("not a JSON object")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except (ValueError, OverflowError) as err:
        raise ValueError(f"not JSON ({str(err).split(':')[0]})") from None
    return Verdict.from_dict(obj)


class ReviewStore:
    """Append-only verdict log with an in-memory index (latest verdict per key).

    Thread-safe: :meth:`record` and :meth:`retry` may be called from any thread.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._history: dict[str, list[Verdict]] = {}
        self._pending: list[Verdict] = []      # recorded but not on disk yet (write failed)
        self.warnings: list[str] = []
        self.skipped_lines = 0
        self._load()

    @classmethod
    def for_dataset(cls, dataset_root: str | Path, cache_dir: str | Path | None = None) -> "ReviewStore":
        """The store of a dataset, under the cache directory (datasets may be read-only)."""
        return cls(store_path_for(dataset_root, cache_dir))

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as err:
            raise InputError(self.path, f"cannot read the review file ({err.strerror or err})") from None
        lines = raw.split(b"\n")
        ends_clean = raw.endswith(b"\n") or not raw
        first = ""
        for i, line in enumerate(lines, start=1):
            if not line.strip() or line.strip() == _BOM:
                continue
            try:
                v = parse_line(line)
            except ValueError as err:
                last = i == len(lines) and not ends_clean
                what = "truncated last line (interrupted write?)" if last else f"corrupt line {i} ({err})"
                self.skipped_lines += 1
                first = first or what
                if len(self.warnings) < MAX_WARNINGS:
                    self.warnings.append(f"{self.path}: {what} skipped")
                continue
            self._history.setdefault(v.key, []).append(v)
        if self.skipped_lines > len(self.warnings):
            self.warnings.append(f"{self.path}: {self.skipped_lines - len(self.warnings)} more corrupt "
                                 "line(s) skipped")
        if self.skipped_lines:
            log.warning("%s: %d unreadable line(s) skipped (first: %s); the other verdicts are loaded",
                        self.path, self.skipped_lines, first)

    # ------------------------------------------------------------------ writing
    def record(self, key: str, verdict: str, note: str = "", annotator: str = "", *,
               image_score: Optional[float] = None, decision: Optional[str] = None,
               detector: str = "", extra: Optional[dict[str, Any]] = None) -> Verdict:
        """Append a verdict (written in full and fsync'ed) and return it.

        Raises :class:`ReviewWriteError` when it cannot be written; the verdict is then kept in
        memory (it is already in :meth:`latest` / :meth:`history`, and counted in
        :attr:`pending`) and written with the next :meth:`record` or :meth:`retry`.
        Non-finite scores are stored as null.
        """
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        if not key or not isinstance(key, str):
            raise ValueError("a verdict needs the sample key")
        v = Verdict(key=key, verdict=verdict, note=str(note or "").strip(),
                    annotator=str(annotator or "").strip(),
                    time=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
                    image_score=_finite_or_none(image_score),
                    decision=str(decision) if decision is not None else None,
                    detector=str(detector or ""), extra=_plain(dict(extra or {})))
        with self._lock:
            self._history.setdefault(key, []).append(v)
            self._pending.append(v)
            self._write_pending()
        return v

    @property
    def pending(self) -> int:
        """Verdicts recorded but not yet on disk (a write failed); see :meth:`retry`."""
        return len(self._pending)

    def retry(self) -> int:
        """Write the verdicts kept in memory; returns how many were written.

        Raises :class:`ReviewWriteError` while the file still cannot be written.
        """
        with self._lock:
            n = len(self._pending)
            if n:
                self._write_pending()
            return n

    def _write_pending(self) -> None:
        """Append every pending verdict in one write, fsync; on failure cut the file back."""
        data = b"".join(v.to_json().encode("utf-8") + b"\n" for v in self._pending)
        try:
            created = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise self._error(err.errno, err.strerror or str(err)) from None
        try:
            size = os.fstat(fd).st_size
            # after a crash the file may end mid-line: start on a fresh line so the new record parses
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data
            try:
                done = 0
                while done < len(data):
                    n = os.write(fd, data[done:])
                    if n <= 0:
                        raise OSError(_errno.ENOSPC, f"short write ({done} of {len(data)} bytes)")
                    done += n
                os.fsync(fd)
            except OSError as err:
                self._cut_back(fd, size)
                raise self._error(err.errno, err.strerror or str(err)) from None
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)
        self._pending.clear()

    def _cut_back(self, fd: int, size: int) -> None:
        """Remove what a failed write appended (unless another process appended meanwhile; the
        reader then skips the partial line and the next write starts on a fresh line)."""
        try:
            if os.fstat(fd).st_size >= size:
                os.ftruncate(fd, size)
                os.fsync(fd)
        except OSError:
            pass

    def _error(self, err_no: Optional[int], reason: str) -> ReviewWriteError:
        if err_no == _errno.ENOSPC and "short write" not in reason:
            reason = "disk full"
        elif err_no == _errno.EROFS:
            reason = "read-only file system"
        return ReviewWriteError(self.path, err_no, reason, pending=len(self._pending))

    # ------------------------------------------------------------------ queries
    def latest(self, key: str) -> Optional[Verdict]:
        h = self._history.get(key)
        return h[-1] if h else None

    def verdict(self, key: str) -> Optional[str]:
        v = self.latest(key)
        return v.verdict if v else None

    def history(self, key: str) -> list[Verdict]:
        return list(self._history.get(key, ()))

    def keys(self) -> list[str]:
        return list(self._history)

    def latest_all(self) -> dict[str, Verdict]:
        return {k: h[-1] for k, h in self._history.items() if h}

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for v in self.latest_all().values():
            out[v.verdict] += 1
        return out

    def __len__(self) -> int:
        return len(self._history)

    # ------------------------------------------------------------------ export
    def export_csv(self, path: str | Path, history: bool = False, keys: Optional[Iterable[str]] = None) -> Path:
        """Write the latest verdict per sample (or every event with ``history=True``) as CSV."""
        path = Path(path)
        wanted = None if keys is None else set(keys)
        rows: list[Verdict] = []
        for k in sorted(self._history):
            if wanted is not None and k not in wanted:
                continue
            rows.extend(self._history[k] if history else self._history[k][-1:])
        try:
            with open(path, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(CSV_COLUMNS)
                for v in rows:
                    w.writerow([v.key, v.verdict, v.note, v.annotator, v.time,
                                "" if v.image_score is None else f"{v.image_score:.6g}",
                                v.decision or "", v.detector])
        except OSError as err:
            raise InputError(path, f"cannot write the CSV file ({err.strerror or err})") from None
        return path


def _fsync_dir(folder: Path) -> None:
    """Make a new file's directory entry durable (POSIX); a no-op where directories cannot be opened."""
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
