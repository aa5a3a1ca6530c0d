"""The project store: what a user did on a dataset, in one SQLite file that survives restarts.

:meth:`Project.open` finds the project of a dataset folder: ``<dataset>/.mmad/project.sqlite`` when
the folder is writable, else ``<data dir>/projects/<name>-<hash>/project.sqlite`` (the dataset may
be on read-only media; :func:`core.paths.data_dir`).  The file is in WAL mode with
``synchronous=FULL``; every action (a verdict, a mark, an undo, a support set, a batch of scores) is
one transaction that is durable when its method returns, so killing the process at any moment loses
no action whose call returned.

Only one process writes a project: opening takes an exclusive lock on ``project.sqlite.lock``
(:mod:`.lock`); a second instance gets :class:`~core.project.lock.ProjectLockedError`, or with
``if_locked="read_only"`` a read-only view (every write raises :class:`ProjectReadOnlyError`).

The project is the only store of review work (verdicts, final verdicts, region marks) and of the
per-dataset detector choice and parameters.  The review journal older versions wrote (JSON lines,
:mod:`.importer`) is imported once, at the first open for writing, in the same transaction as the
meta row that records the import; that row is written also when there is no journal, so a journal
found later is never imported over newer work.

A verdict that cannot be written (disk full, I/O error, a damaged file...) is not lost: it is kept
in memory (:attr:`Project.pending`; :meth:`Project.verdict` shows it) and written by
:meth:`Project.retry` or the next verdict; the call raises :class:`ProjectWriteError` saying so.

Thread-safe: one connection guarded by a lock, so the GUI thread and a worker may both call.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

from ..errors import InputError
from . import records as R
from .errors import ProjectFileError, ProjectReadOnlyError, ProjectWriteError
from .importer import META_KEY as JOURNAL_META_KEY
from .importer import journal_path_for, journal_rows, read_journal
from .lock import ProjectLock, ProjectLockedError
from .records import DetectorChoice, Mark, ScoreRow, SupportEntry, VerdictRow
from .schema import create_or_check

log = logging.getLogger(__name__)

PROJECT_DIR = ".mmad"
PROJECT_FILE = "project.sqlite"
KEEP_SCORE_VERSIONS = 4     # cached results kept per sample (other detector/parameter/support combinations)
_PARAMS = "params/"         # settings row of a detector's parameters: params/<detector id>


def _dataset_writable(root: Path) -> bool:
    """Whether ``<root>/.mmad`` exists or can be created, and a file written there."""
    folder = root / PROJECT_DIR
    try:
        folder.mkdir(exist_ok=True)
        probe = folder / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def user_project_path(dataset_root: str | Path) -> Path:
    """Where the project of a read-only dataset lives: ``<data dir>/projects/<name>-<hash>/``."""
    from ..paths import data_dir
    root = Path(dataset_root).expanduser().resolve()
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:12]
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in root.name) or "root"
    return data_dir() / "projects" / f"{name}-{digest}" / PROJECT_FILE


def project_path_for(dataset_root: str | Path, where: str = "auto") -> Path:
    """The project file of a dataset: beside it (``where="dataset"``), in the user data folder
    (``"user"``), or beside it when the folder is writable (``"auto"``)."""
    root = Path(dataset_root).expanduser().resolve()
    if where not in ("auto", "dataset", "user"):
        raise ValueError(f"where must be auto, dataset or user, not {where!r}")
    if where == "dataset" or (where == "auto" and _dataset_writable(root)):
        return root / PROJECT_DIR / PROJECT_FILE
    return user_project_path(root)


_INSERT_VERDICT = ("INSERT INTO verdicts (key, verdict, final, note, reviewer, time, image_score, decision, detector, "
                   "source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _verdict_values(r: VerdictRow) -> tuple:
    return (r.key, r.verdict, r.final, r.note, r.reviewer, r.time, r.image_score, r.decision, r.detector, r.source)


def _verdict(row: sqlite3.Row) -> VerdictRow:
    return VerdictRow(id=row["id"], key=row["key"], verdict=row["verdict"], final=row["final"], note=row["note"],
                      reviewer=row["reviewer"], time=row["time"], image_score=row["image_score"],
                      decision=row["decision"], detector=row["detector"], source=row["source"])


def _mark(row: sqlite3.Row) -> Mark:
    try:
        geometry = json.loads(row["geometry"])
    except (ValueError, RecursionError):
        geometry = {}
    return Mark(id=row["id"], key=row["key"], kind=row["kind"], geometry=geometry, note=row["note"],
                reviewer=row["reviewer"], time=row["time"], deleted=row["deleted"])


class Project:
    """Verdicts, region marks, support sets, detector choice and parameters, and cached scores of
    one dataset.  Open with :meth:`open`; close (or use ``with``) to release the lock."""

    def __init__(self, path: Path, dataset_root: Path, conn: sqlite3.Connection, lock: Optional[ProjectLock],
                 read_only: bool):
        self.path = path
        self.dataset_root = dataset_root
        self.read_only = read_only
        self._conn: Optional[sqlite3.Connection] = conn
        self._lock_file = lock
        self._lock = threading.RLock()
        self._latest: Optional[dict[str, VerdictRow]] = None     # current state per sample (+ pending)
        self._pending: list[VerdictRow] = []                     # recorded, not in the file yet
        #: verdicts imported from the review journal of older versions by this open (0 when already done)
        self.imported = 0
        #: what this open could not read (journal lines skipped...), one line each, naming the file
        self.warnings: list[str] = []

    # ------------------------------------------------------------------ open / close
    @classmethod
    def open(cls, dataset_root: str | Path, *, where: str = "auto", path: Optional[str | Path] = None,
             if_locked: str = "raise", read_only: bool = False, import_jsonl: bool = True) -> "Project":
        """Open (creating it on first use) the project of the dataset at ``dataset_root``.

        ``path``: an explicit project file (else :func:`project_path_for` with ``where``).
        ``if_locked``: ``"raise"`` (:class:`ProjectLockedError`) or ``"read_only"`` when another
        instance has it open.  ``import_jsonl``: import the review journal of older versions now,
        if this project has not imported it yet (False: not now).
        """
        if if_locked not in ("raise", "read_only"):
            raise ValueError(f"if_locked must be raise or read_only, not {if_locked!r}")
        root = Path(dataset_root).expanduser().resolve()
        file = Path(path).expanduser().absolute() if path is not None else project_path_for(root, where)
        lock: Optional[ProjectLock] = None
        if not read_only:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InputError(file.parent, f"cannot create the project folder ({e.strerror or e})") from None
            try:
                lock = ProjectLock(file).acquire()
            except ProjectLockedError:
                if if_locked == "raise":
                    raise
                read_only = True
        if read_only and not file.exists():
            raise InputError(file, "there is no project file yet to open read-only")
        try:
            conn = cls._connect(file, read_only)
            create_or_check(conn, file, writable=not read_only)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        project = cls(file, root, conn, lock, read_only)
        if not read_only:
            try:
                project._set_meta_default("dataset_root", str(root))
                if import_jsonl:
                    project._import_journal(journal_path_for(root))
            except BaseException:
                project.close()              # e.g. a full disk: the lock is not kept by a project never returned
                raise
        return project

    def _import_journal(self, file: Path) -> None:
        """Import the journal ``file`` once; that it was done is recorded even when there is none."""
        if self.meta(JOURNAL_META_KEY) is not None:
            return
        try:
            journal = read_journal(file)
        except InputError as e:
            self.warnings.append(f"{e}; its verdicts are not imported yet (tried again at the next open)")
            log.warning("%s", self.warnings[-1])
            return
        info = {"file": str(file), "found": journal is not None, "time": R.now()}
        with self._tx() as c:
            if c.execute("SELECT 1 FROM meta WHERE name = ?", (JOURNAL_META_KEY,)).fetchone() is not None:
                return
            rows = journal_rows(journal, self._latest_rows(c)) if journal is not None else []
            c.executemany(_INSERT_VERDICT, rows)
            info.update(events=len(rows), skipped_lines=journal.skipped_lines if journal is not None else 0)
            c.execute("INSERT INTO meta (name, value) VALUES (?, ?)", (JOURNAL_META_KEY, R.dumps(info)))
        self._latest = None
        self.imported = len(rows)
        if journal is not None:
            self.warnings.extend(journal.warnings)
        if rows:
            log.info("%s: imported %d verdict(s) from %s", self.path, len(rows), file)

    @staticmethod
    def _connect(file: Path, read_only: bool) -> sqlite3.Connection:
        try:
            if read_only:
                conn = sqlite3.connect(f"{file.as_uri()}?mode=ro", uri=True, isolation_level=None,
                                       check_same_thread=False, timeout=5.0)
            else:
                conn = sqlite3.connect(str(file), isolation_level=None, check_same_thread=False, timeout=5.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=FULL")   # a returned action survives a power cut too
            conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.DatabaseError as e:
            raise InputError(file, f"cannot open the project file ({e}); move it away to start a new project") from None
        return conn

    def close(self) -> None:
        """Release the file and its lock.  Verdicts still :attr:`pending` are lost (logged): call
        :meth:`retry` first."""
        with self._lock:
            if self._pending:
                log.warning("%s: closed with %d verdict(s) not saved", self.path, len(self._pending))
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                finally:
                    if self._lock_file is not None:
                        self._lock_file.release()

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    # ------------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise InputError(self.path, "the project is closed")
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One action = one transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        if self.read_only:
            raise ProjectReadOnlyError(self.path, "the project is open read-only (another instance has it); "
                                                  "changes cannot be saved")
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback(conn)
                raise ProjectWriteError.of(self.path, e) from None
            except BaseException:
                self._rollback(conn)
                raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass            # SQLite rolled back itself (disk full / I/O error)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db().execute(sql, args).fetchall()
            except sqlite3.DatabaseError as e:      # a page damaged since the open's check, an I/O error
                raise ProjectFileError(self.path, f"cannot be read ({ProjectWriteError.of(self.path, e).reason})"
                                       ) from None

    # ------------------------------------------------------------------ meta & settings
    def meta(self, name: str) -> Optional[str]:
        rows = self._query("SELECT value FROM meta WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    def _set_meta_default(self, name: str, value: str) -> None:
        if self.meta(name) is None:
            with self._tx() as c:
                c.execute("INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", (name, value))

    def set_setting(self, name: str, value: Any) -> None:
        """Any JSON value under a name (GUI state the project should remember)."""
        text = R.dumps(value)
        with self._tx() as c:
            c.execute("INSERT INTO settings (name, value) VALUES (?, ?) "
                      "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, text))

    def setting(self, name: str, default: Any = None) -> Any:
        rows = self._query("SELECT value FROM settings WHERE name = ?", (name,))
        if not rows:
            return default
        try:
            return json.loads(rows[0][0])
        except (ValueError, RecursionError):
            return default

    # ------------------------------------------------------------------ verdicts
    def record_verdict(self, key: str, verdict: Optional[str] = None, final: Optional[str] = None,
                       note: Optional[str] = None, reviewer: str = "", *, image_score: Optional[float] = None,
                       decision: Optional[str] = None, detector: str = "") -> VerdictRow:
        """Record a review action on a sample and return its new state.

        ``verdict`` (on the detector's call: confirm / reject / unsure) and ``final`` (on the part:
        OK / NOK / unsure) left as None keep their previous value, as does ``note``; pass ``""`` to
        clear a note.  Every call adds one history row, durable when this returns.  When it cannot be
        written, :class:`ProjectWriteError` is raised and the action is kept in memory (it is the
        sample's state already, counted in :attr:`pending`) until :meth:`retry` or the next verdict
        writes it.  Non-finite scores are stored as None.
        """
        if not key or not isinstance(key, str):
            raise ValueError("a verdict needs the sample key")
        v, f = R.norm_verdict(verdict), R.norm_final(final)
        if v is None and f is None and note is None:
            raise ValueError("a verdict needs a verdict, a final verdict or a note")
        with self._lock:
            self._writable()
            state = self._state()
            prev = state.get(key)
            if prev is not None:
                v = prev.verdict if v is None else v
                f = prev.final if f is None else f
                note = prev.note if note is None else note
            row = VerdictRow(id=0, key=key, verdict=v, final=f, note=str(note or "").strip(),
                             reviewer=str(reviewer or "").strip(), time=R.now(),
                             image_score=R.finite_or_none(image_score),
                             decision=None if decision is None else str(decision), detector=str(detector or ""))
            self._pending.append(row)
            state[key] = row
            self._write_pending()
            return state[key]

    @property
    def pending(self) -> int:
        """Verdicts recorded but not in the file yet (a write failed); see :meth:`retry`."""
        return len(self._pending)

    def retry(self) -> int:
        """Write the verdicts kept in memory; returns how many were written.  Raises
        :class:`ProjectWriteError` while they still cannot be written."""
        with self._lock:
            n = len(self._pending)
            if n:
                self._write_pending()
            return n

    def _writable(self) -> None:
        if self.read_only:
            raise ProjectReadOnlyError(self.path, "the project is open read-only (another instance has it); "
                                                  "changes cannot be saved")
        self._db()

    def _write_pending(self) -> None:
        """Write every pending verdict in one transaction (oldest first)."""
        rows = list(self._pending)
        try:
            with self._tx() as c:
                ids = [c.execute(_INSERT_VERDICT, _verdict_values(r)).lastrowid for r in rows]
        except ProjectWriteError as e:
            raise ProjectWriteError(self.path, e.reason, pending=len(self._pending)) from None
        del self._pending[:len(rows)]
        state = self._state()
        for r, i in zip(rows, ids):
            if state.get(r.key) is r:
                state[r.key] = replace(r, id=i)

    def _state(self) -> dict[str, VerdictRow]:
        """The current state of every sample, pending actions included (read once per open)."""
        with self._lock:
            if self._latest is None:
                latest = self._latest_rows(self._db())
                for r in self._pending:
                    latest[r.key] = r
                self._latest = latest
            return self._latest

    @staticmethod
    def _latest_rows(conn: sqlite3.Connection) -> dict[str, VerdictRow]:
        rows = conn.execute("SELECT v.* FROM verdicts v JOIN (SELECT key, MAX(id) AS id FROM verdicts GROUP BY key) "
                            "m ON v.id = m.id ORDER BY v.key").fetchall()
        return {r["key"]: _verdict(r) for r in rows}

    def verdict(self, key: str) -> Optional[VerdictRow]:
        """The current state of a sample's review (its latest action), None when never reviewed."""
        return self._state().get(key)

    def verdict_history(self, key: str) -> list[VerdictRow]:
        """Every action on a sample, oldest first (pending ones last, with ``id`` 0)."""
        with self._lock:
            rows = [_verdict(r) for r in self._query("SELECT * FROM verdicts WHERE key = ? ORDER BY id", (key,))]
            return rows + [r for r in self._pending if r.key == key]

    def verdicts(self) -> dict[str, VerdictRow]:
        """The current state of every reviewed sample (its latest action), by key."""
        with self._lock:
            return dict(sorted(self._state().items()))

    def verdict_counts(self) -> dict[str, int]:
        """How many samples are confirmed / rejected / unsure now (on the detector's call)."""
        out = {v: 0 for v in R.VERDICTS}
        with self._lock:
            for row in self._state().values():
                if row.verdict in out:
                    out[row.verdict] += 1
        return out

    def n_verdict_rows(self) -> int:
        """History rows in the file (pending actions not counted)."""
        return int(self._query("SELECT COUNT(*) FROM verdicts")[0][0])

    # ------------------------------------------------------------------ region marks
    def mark_region(self, key: str, kind: str, geometry: dict, note: str = "", reviewer: str = "") -> Mark:
        """Mark a region of a sample as ``false_positive`` or ``true_defect``; returns the mark (its
        ``id`` is what :meth:`undo_mark` takes).  ValueError for a bad kind or geometry."""
        if not key or not isinstance(key, str):
            raise ValueError("a mark needs the sample key")
        k, g = R.norm_kind(kind), R.check_geometry(geometry)
        with self._tx() as c:
            cur = c.execute("INSERT INTO marks (key, kind, geometry, note, reviewer, time) VALUES (?, ?, ?, ?, ?, ?)",
                            (key, k, R.dumps(g), str(note or "").strip(), str(reviewer or "").strip(), R.now()))
            row = c.execute("SELECT * FROM marks WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _mark(row)

    def undo_mark(self, mark_id: Optional[int] = None, key: Optional[str] = None) -> Optional[Mark]:
        """Withdraw a mark (soft delete): the one with ``mark_id``, else the latest standing mark of
        ``key`` (else of the project).  Returns the withdrawn mark, None when there is none."""
        with self._tx() as c:
            if mark_id is not None:
                row = c.execute("SELECT * FROM marks WHERE id = ? AND deleted IS NULL", (int(mark_id),)).fetchone()
            elif key is not None:
                row = c.execute("SELECT * FROM marks WHERE key = ? AND deleted IS NULL ORDER BY id DESC LIMIT 1",
                                (key,)).fetchone()
            else:
                row = c.execute("SELECT * FROM marks WHERE deleted IS NULL ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return None
            c.execute("UPDATE marks SET deleted = ? WHERE id = ?", (R.now(), row["id"]))
            row = c.execute("SELECT * FROM marks WHERE id = ?", (row["id"],)).fetchone()
        return _mark(row)

    def redo_mark(self, mark_id: int) -> Optional[Mark]:
        """Restore a withdrawn mark; returns it (None when no such withdrawn mark)."""
        with self._tx() as c:
            cur = c.execute("UPDATE marks SET deleted = NULL WHERE id = ? AND deleted IS NOT NULL", (int(mark_id),))
            row = c.execute("SELECT * FROM marks WHERE id = ?", (int(mark_id),)).fetchone() if cur.rowcount else None
        return _mark(row) if row is not None else None

    def marks(self, key: Optional[str] = None, include_deleted: bool = False) -> list[Mark]:
        sql, args = "SELECT * FROM marks", []
        where = []
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if not include_deleted:
            where.append("deleted IS NULL")
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_mark(r) for r in self._query(sql + " ORDER BY id", args)]

    # ------------------------------------------------------------------ support sets
    def set_support(self, class_name: str, items: Optional[Iterable[Any]]) -> None:
        """Remember the support set of a class (SampleRefs / sample keys as dicts / file paths);
        ``None`` forgets it (the dataset's default applies again)."""
        with self._tx() as c:
            if items is None:
                c.execute("DELETE FROM support WHERE class_name = ?", (class_name,))
                return
            entries = [R.support_entry(i).to_json() for i in items]
            c.execute("INSERT INTO support (class_name, items, time) VALUES (?, ?, ?) ON CONFLICT(class_name) "
                      "DO UPDATE SET items = excluded.items, time = excluded.time",
                      (class_name, R.dumps(entries), R.now()))

    def support(self, class_name: str) -> Optional[list[SupportEntry]]:
        """The saved support set of a class, None when none was saved."""
        rows = self._query("SELECT items FROM support WHERE class_name = ?", (class_name,))
        if not rows:
            return None
        try:
            return [R.support_entry(d) for d in json.loads(rows[0][0])]
        except (ValueError, TypeError, RecursionError):
            log.warning("%s: unreadable support set of class %s ignored", self.path, class_name)
            return None

    def supports(self) -> dict[str, list[SupportEntry]]:
        out = {}
        for (c,) in self._query("SELECT class_name FROM support ORDER BY class_name"):
            s = self.support(c)
            if s is not None:
                out[c] = s
        return out

    # ------------------------------------------------------------------ detector & its parameters
    def set_detector(self, detector_id: str, params: Optional[Mapping[str, Any]] = None) -> None:
        """The dataset's detector, and its parameters (kept per detector: choosing another detector
        and coming back finds them again), in one transaction."""
        from ..io.json_files import to_jsonable
        choice, values = R.dumps({"id": str(detector_id)}), R.dumps(to_jsonable(dict(params or {})))
        with self._tx() as c:
            c.executemany("INSERT INTO settings (name, value) VALUES (?, ?) "
                          "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                          [("detector", choice), (_PARAMS + str(detector_id), values)])

    def detector(self) -> Optional[DetectorChoice]:
        """The dataset's detector and its parameters (renamed ones under today's names), None when none was saved."""
        d = self.setting("detector")
        if not isinstance(d, dict) or not isinstance(d.get("id"), str):
            return None
        return DetectorChoice(d["id"], self.detector_params(d["id"]) or {})

    def detector_params(self, detector_id: str) -> Optional[dict]:
        """The saved parameters of a detector on this dataset (renamed ones under today's names), None
        when none were saved."""
        from ..detectors.aliases import migrate_params
        p = self.setting(_PARAMS + str(detector_id))
        if not isinstance(p, dict):
            d = self.setting("detector")          # a project of a version that kept the chosen one's only
            p = d["params"] if (isinstance(d, dict) and d.get("id") == detector_id
                                and isinstance(d.get("params"), dict)) else None
        return migrate_params(str(detector_id), dict(p)) if p is not None else None

    # ------------------------------------------------------------------ cached scores
    def save_scores(self, records: Iterable[Any], detector: str, params_hash: str,
                    fit_key: Union[str, Mapping[str, str]]) -> int:
        """Cache image-level results in one transaction; returns how many.

        ``records``: objects with ``key``, ``image_score``, ``decision`` (or ``anomalous``),
        ``threshold`` and optionally ``seconds`` / ``ref.class_name`` (e.g.
        :class:`core.session.SampleRecord`); records without a score are skipped.  ``fit_key``: one
        key, or a mapping class -> key (each record's class picks its own).  Older results of the same
        samples are kept for the last :data:`KEEP_SCORE_VERSIONS` combinations only.
        """
        rows = []
        for rec in records:
            score = R.finite_or_none(getattr(rec, "image_score", None))
            if score is None:
                continue
            if isinstance(fit_key, str):
                fk = fit_key
            else:
                ref = getattr(rec, "ref", None)
                fk = fit_key.get(getattr(ref, "class_name", getattr(rec, "class_name", "")), "")
            decision = getattr(rec, "decision", None)
            rows.append((detector, params_hash, fk, rec.key, score, decision,
                         R.finite_or_none(getattr(rec, "threshold", None)),
                         float(getattr(rec, "seconds", 0.0) or 0.0), R.now()))
        if not rows:
            return 0
        with self._tx() as c:
            c.executemany("INSERT INTO scores (detector, params_hash, fit_key, key, image_score, decision, threshold, "
                          "seconds, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                          "ON CONFLICT(detector, params_hash, fit_key, key) DO UPDATE SET "
                          "image_score = excluded.image_score, decision = excluded.decision, "
                          "threshold = excluded.threshold, seconds = excluded.seconds, time = excluded.time", rows)
            c.execute("CREATE TEMP TABLE IF NOT EXISTS _keys (key TEXT PRIMARY KEY)")
            c.execute("DELETE FROM _keys")
            c.executemany("INSERT OR IGNORE INTO _keys (key) VALUES (?)", [(r[3],) for r in rows])
            c.execute("DELETE FROM scores WHERE rowid IN (SELECT rowid FROM (SELECT rowid, ROW_NUMBER() OVER "
                      "(PARTITION BY key ORDER BY time DESC, rowid DESC) AS n FROM scores WHERE key IN "
                      "(SELECT key FROM _keys)) WHERE n > ?)", (KEEP_SCORE_VERSIONS,))
        return len(rows)

    def load_scores(self, detector: str, params_hash: str, fit_key: str) -> dict[str, ScoreRow]:
        """The cached results computed with exactly this detector, parameters and fit."""
        rows = self._query("SELECT key, image_score, decision, threshold, seconds, time FROM scores "
                           "WHERE detector = ? AND params_hash = ? AND fit_key = ?", (detector, params_hash, fit_key))
        return {r["key"]: ScoreRow(r["key"], r["image_score"], r["decision"], r["threshold"], r["seconds"], r["time"])
                for r in rows}

    def drop_scores(self, detector: Optional[str] = None) -> int:
        with self._tx() as c:
            cur = c.execute("DELETE FROM scores" + (" WHERE detector = ?" if detector else ""),
                            (detector,) if detector else ())
            return cur.rowcount
