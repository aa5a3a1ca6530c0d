"""Crash-safe review store: annotators' verdicts on the detector's decisions.

An annotator *confirms* a detection (the detector's decision is right), *rejects* it (the decision
is wrong) or marks it *unsure*, optionally with a note.  Every verdict is **appended** as one JSON
line to a per-dataset file and flushed + fsync'ed before :meth:`ReviewStore.record` returns, so a
crash loses at most the verdict being written.  The file is never rewritten in place: the history
of every sample is kept, and the latest verdict of a sample wins when the file is loaded.  A
truncated or corrupt line (e.g. the last line after a power cut) is skipped with a warning.

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

import csv
import datetime as _dt
import hashlib
import json
import os
import threading
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import InputError

CONFIRMED = "confirmed"
REJECTED = "rejected"
UNSURE = "unsure"
VERDICTS = (CONFIRMED, REJECTED, UNSURE)

CSV_COLUMNS = ("key", "verdict", "note", "annotator", "time", "image_score", "decision", "detector")


def default_cache_dir() -> Path:
    """``$MMAD_CACHE`` if set, else ``~/.cache/mmad-inspector`` (same rule as :mod:`core.demo`)."""
    env = os.environ.get("MMAD_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmad-inspector"


def store_path_for(dataset_root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The JSON-lines file holding the verdicts of the dataset at ``dataset_root``."""
    root = Path(dataset_root).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in root.name) or "root"
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "reviews" / f"{name}-{digest}.jsonl"


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
        if not d["extra"]:
            d.pop("extra")
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        if not isinstance(d, dict) or not isinstance(d.get("key"), str) or d.get("verdict") not in VERDICTS:
            raise ValueError("not a verdict record")
        score = d.get("image_score")
        return cls(key=d["key"], verdict=d["verdict"], note=str(d.get("note") or ""),
                   annotator=str(d.get("annotator") or ""), time=str(d.get("time") or ""),
                   image_score=float(score) if isinstance(score, (int, float)) else None,
                   decision=d.get("decision") if isinstance(d.get("decision"), str) else None,
                   detector=str(d.get("detector") or ""),
                   extra=d.get("extra") if isinstance(d.get("extra"), dict) else {})


class ReviewStore:
    """Append-only verdict log with an in-memory index (latest verdict per key).

    Thread-safe: :meth:`record` may be called from any thread.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._history: dict[str, list[Verdict]] = {}
        self.warnings: list[str] = []
        self._load()

    @classmethod
    def for_dataset(cls, dataset_root: str | Path, cache_dir: str | Path | None = None) -> "ReviewStore":
        """The store of a dataset, under the cache directory (datasets may be read-only)."""
        return cls(store_path_for(dataset_root, cache_dir))

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = self.path.read_bytes()
        except OSError as err:
            raise InputError(self.path, f"cannot read the review file ({err.strerror or err})") from None
        lines = raw.split(b"\n")
        ends_clean = raw.endswith(b"\n") or not raw
        for i, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            last = i == len(lines) and not ends_clean
            try:
                v = Verdict.from_dict(json.loads(line.decode("utf-8")))
            except (ValueError, UnicodeDecodeError):
                what = "truncated last line (interrupted write?)" if last else f"corrupt line {i}"
                msg = f"{self.path}: {what} skipped"
                self.warnings.append(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=3)
                continue
            self._history.setdefault(v.key, []).append(v)

    # ------------------------------------------------------------------ writing
    def record(self, key: str, verdict: str, note: str = "", annotator: str = "", *,
               image_score: Optional[float] = None, decision: Optional[str] = None,
               detector: str = "", extra: Optional[dict[str, Any]] = None) -> Verdict:
        """Append a verdict (flushed and fsync'ed) and return it."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, not {verdict!r}")
        if not key:
            raise ValueError("a verdict needs the sample key")
        score = None if image_score is None or image_score != image_score else float(image_score)
        v = Verdict(key=key, verdict=verdict, note=note.strip(), annotator=annotator.strip(),
                    time=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"),
                    image_score=score, decision=decision, detector=detector, extra=dict(extra or {}))
        line = v.to_json().encode("utf-8") + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                # after a crash the file may end mid-line: start on a fresh line so the new record parses
                if os.fstat(fd).st_size > 0 and not self._ends_with_newline():
                    line = b"\n" + line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._history.setdefault(key, []).append(v)
        return v

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

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
