"""Review work in the project store (core.project): verdicts and their history, a full disk, the
one-time import of the older review journal (of any content), and random sequences of
open / act / close that must lose nothing."""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError, MMADError
from core.project import Project, ProjectReadOnlyError, ProjectWriteError
from core.project import store as project_store
from core.project.export import write_verdicts_csv
from core.project.importer import MAX_WARNINGS, META_KEY, journal_path_for, read_journal
from core.paths import cache_dir

sys.path.insert(0, str(Path(__file__).parent))
from review_crash import KEYS, Model, apply, differences, fill_disk, free_disk, random_action  # noqa: E402


@pytest.fixture
def dataset(tmp_path) -> Path:
    d = tmp_path / "parts"
    d.mkdir()
    return d


def importer_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "core.project.importer" and r.levelno == logging.WARNING]


def journal(dataset: Path, *lines: bytes | dict) -> Path:
    """Write the review journal an older version kept for ``dataset`` (dicts become JSON lines)."""
    path = journal_path_for(dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join((json.dumps(x).encode() if isinstance(x, dict) else x) + b"\n" for x in lines))
    return path


def event(key: str, verdict: str, time: str = "2024-01-01T00:00:00.000+00:00", **kw) -> dict:
    return dict(key=key, verdict=verdict, note=kw.pop("note", ""), annotator=kw.pop("annotator", ""), time=time, **kw)


# ---------------------------------------------------------------------- verdicts and their history
def test_latest_wins_and_history_is_kept(dataset):
    with Project.open(dataset) as p:
        p.record_verdict("a/test/crack/000", "confirm", note="clear crack", reviewer="ana", image_score=2.5,
                         decision="anomalous", detector="memory-bank")
        p.record_verdict("a/test/good/001", "unsure")
        p.record_verdict("a/test/crack/000", "reject", note="on second look: dust", reviewer="bo")
        assert p.verdict("a/test/crack/000").verdict == "rejected"
    with Project.open(dataset) as again:
        assert again.verdict("a/test/crack/000").verdict == "rejected"
        assert [v.verdict for v in again.verdict_history("a/test/crack/000")] == ["confirmed", "rejected"]
        assert again.verdict("a/test/crack/000").reviewer == "bo"
        assert again.verdict_history("a/test/crack/000")[0].image_score == 2.5
        assert again.verdict_counts() == {"confirmed": 0, "rejected": 1, "unsure": 1}


def test_history_rows_are_never_rewritten(dataset):
    with Project.open(dataset) as p:
        p.record_verdict("k1", "confirm", note="first")
        first = p.verdict_history("k1")
        p.record_verdict("k1", final="nok")
        p.record_verdict("k2", "reject")
        assert p.verdict_history("k1")[:1] == first                   # the old row is untouched
        assert (p.verdict("k1").verdict, p.verdict("k1").final, p.verdict("k1").note) == ("confirmed", "nok", "first")


def test_bad_verdict_rejected_and_nothing_recorded(dataset):
    with Project.open(dataset) as p:
        with pytest.raises(ValueError, match="confirm"):
            p.record_verdict("k", "maybe")
        with pytest.raises(ValueError):
            p.record_verdict("", "confirm")
        with pytest.raises(ValueError, match="needs a verdict"):
            p.record_verdict("k")
        assert p.n_verdict_rows() == 0 and p.verdicts() == {} and p.pending == 0


def test_csv_export(dataset, tmp_path):
    with Project.open(dataset) as p:
        p.record_verdict("b", "confirm", note='says "hi", ok', reviewer="ana", image_score=1.25)
        p.record_verdict("a", "unsure")
        p.record_verdict("b", "reject", final="ok")
        out = write_verdicts_csv(tmp_path / "v.csv", p.verdicts().values())
        rows = list(csv.DictReader(open(out, newline="")))
        assert [(r["key"], r["verdict"], r["final_verdict"]) for r in rows] == [("a", "unsure", ""),
                                                                              ("b", "rejected", "ok")]
        rows = list(csv.DictReader(open(write_verdicts_csv(tmp_path / "h.csv", p.verdict_history("b")), newline="")))
        assert [r["verdict"] for r in rows] == ["confirmed", "rejected"]
        assert rows[0]["note"] == 'says "hi", ok' and float(rows[0]["image_score"]) == 1.25
        (tmp_path / "a-file").write_text("")
        with pytest.raises(InputError, match="cannot write"):
            write_verdicts_csv(tmp_path / "a-file" / "x.csv", p.verdicts().values())


def test_read_only_dataset_folder_gets_nothing_written(tmp_path, monkeypatch):
    monkeypatch.setenv("MMAD_DATA", str(tmp_path / "userdata"))
    data = tmp_path / "data set"
    data.mkdir()
    j = journal_path_for(data)
    assert j.parent == cache_dir(create=False) / "reviews" and j.name.startswith("data_set-")
    assert journal_path_for(tmp_path / "other" / "data set") != j       # same name, different folder
    os.chmod(data, 0o555)
    if os.geteuid() == 0:                                               # root writes anyway: say it is read-only
        monkeypatch.setattr(project_store, "_dataset_writable", lambda root: False)
    try:
        with Project.open(data) as p:
            p.record_verdict("x", "confirm")
        assert list(data.iterdir()) == []
        with Project.open(data) as p:
            assert p.verdict("x").verdict == "confirmed"
        assert not j.exists()                                          # no journal is written either
    finally:
        os.chmod(data, 0o755)


@pytest.mark.parametrize("score", [math.inf, -math.inf, math.nan, np.float32("inf"), np.float64("nan"), "n/a"])
def test_non_finite_scores_are_stored_as_null(dataset, score):
    with Project.open(dataset) as p:
        assert p.record_verdict("k", "confirm", image_score=score).image_score is None
        assert p.record_verdict("k", "confirm", image_score=np.float32(0.25)).image_score == 0.25
    with Project.open(dataset) as p:
        assert [v.image_score for v in p.verdict_history("k")] == [None, 0.25]


# ---------------------------------------------------------------------- failed writes (disk full...)
def test_disk_full_raises_keeps_the_verdict_and_retry_writes_it(dataset):
    with Project.open(dataset) as p:
        p.record_verdict("k1", "confirm")
        fill_disk(p)
        with pytest.raises(ProjectWriteError) as info:
            p.record_verdict("k2", "reject", note="x" * 5000)
        err = info.value
        assert isinstance(err, MMADError) and err.reason == "disk full" and err.pending == 1
        assert "1 verdict not saved yet (disk full)" in str(err) and str(p.path) in str(err)
        assert p.pending == 1 and p.verdict("k2").verdict == "rejected"          # kept in memory, shown
        assert p.verdict_history("k2")[-1].id == 0 and p.verdict_counts()["rejected"] == 1
        with Project.open(dataset, if_locked="read_only") as ro:                 # ... honestly not on disk yet
            assert ro.verdict("k2") is None
        with pytest.raises(ProjectWriteError):                                   # still full: retry keeps it
            p.retry()
        assert p.pending == 1
        free_disk(p)
        assert p.retry() == 1 and p.pending == 0 and p.verdict("k2").id > 0
    with Project.open(dataset) as again:
        assert again.verdict("k2").verdict == "rejected" and again.verdict("k2").note == "x" * 5000
        assert again.n_verdict_rows() == 2


def test_pending_verdicts_are_written_by_the_next_verdict_in_order(dataset):
    with Project.open(dataset) as p:
        fill_disk(p)
        for v in ("confirm", "reject"):
            with pytest.raises(ProjectWriteError):
                p.record_verdict("k1", v, note="y" * 5000)
        with pytest.raises(ProjectWriteError) as info:
            p.record_verdict("k1", final="nok")
        assert p.pending == 3 and info.value.pending == 3 and "3 verdicts not saved" in str(info.value)
        assert (p.verdict("k1").verdict, p.verdict("k1").final) == ("rejected", "nok")
        free_disk(p)
        p.record_verdict("k2", "unsure")
        assert p.pending == 0
    with Project.open(dataset) as p:
        assert [(v.verdict, v.final) for v in p.verdict_history("k1")] == [("confirmed", None), ("rejected", None),
                                                                          ("rejected", "nok")]
        assert p.verdict("k2").verdict == "unsure"


def test_any_other_write_failure_keeps_the_verdict_too(dataset):
    """A damaged or refused write (here: SQLite refusing every INSERT) is kept and retried like a full disk."""
    with Project.open(dataset) as p:
        p.record_verdict("k0", "confirm")
        deny = lambda action, *_: sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_INSERT else sqlite3.SQLITE_OK  # noqa: E731
        p._db().set_authorizer(deny)
        with pytest.raises(ProjectWriteError, match="not saved yet"):
            p.record_verdict("k1", "reject")
        with pytest.raises(ProjectWriteError, match="cannot save"):               # a mark is not kept: said
            p.mark_region("k1", "true_defect", {"bbox": [0, 0, 1, 1]})
        assert p.verdict("k1").verdict == "rejected" and p.marks() == []
        p._db().set_authorizer(None)
        assert p.retry() == 1
    with Project.open(dataset) as p:
        assert set(p.verdicts()) == {"k0", "k1"}


def test_read_only_project_writes_nothing_anywhere(dataset):
    with Project.open(dataset) as writer:
        writer.record_verdict("k", "confirm")
        before = writer.path.read_bytes()
        with Project.open(dataset, if_locked="read_only") as ro:
            for act in (lambda: ro.record_verdict("k", final="nok"), lambda: ro.record_verdict("j", "reject"),
                        lambda: ro.mark_region("k", "false_positive", {"bbox": [0, 0, 1, 1]}),
                        lambda: ro.set_detector("det", {"alpha": 1.0})):
                with pytest.raises(ProjectReadOnlyError):
                    act()
            assert ro.pending == 0 and ro.verdict("j") is None and ro.verdict("k").final is None
        assert writer.path.read_bytes() == before and writer.n_verdict_rows() == 1
    assert not journal_path_for(dataset).exists()


# ---------------------------------------------------------------------- the older journal: imported once
def test_import_is_recorded_without_a_journal_and_a_later_journal_is_never_read(dataset):
    """Issue 18.1 at the store: the first open found no journal and recorded nothing, so a journal an
    older version wrote meanwhile was imported at the next open as the newest rows."""
    with Project.open(dataset) as p:
        assert p.imported == 0 and json.loads(p.meta(META_KEY))["found"] is False
        p.record_verdict("k", "confirm")
        p.record_verdict("k", final="nok")
    journal(dataset, event("k", "confirmed", time="2099-01-01T00:00:00.000+00:00"), event("j", "rejected"))
    for _ in range(2):
        with Project.open(dataset) as p:
            assert p.imported == 0 and p.n_verdict_rows() == 2
            assert (p.verdict("k").verdict, p.verdict("k").final) == ("confirmed", "nok") and p.verdict("j") is None


def test_journal_import_keeps_newer_project_work(dataset):
    """A project of a version that mirrored the journal (its rows, no import recorded): the journal's
    old events are not imported over them; newer ones are, keeping the final verdict."""
    with Project.open(dataset, import_jsonl=False) as p:
        p.record_verdict("k", "confirm")
        p.record_verdict("k", final="nok")
        p.record_verdict("m", "unsure", final="ok")
    journal(dataset, event("k", "confirmed", time="2000-01-01T00:00:00.000+00:00"),      # mirrored long ago
            event("m", "rejected", time="2000-01-01T00:00:01.000+00:00"),
            event("n", "unsure", annotator="ana"),
            event("m", "rejected", time="2999-01-01T00:00:00.000+00:00", note="later"))  # after the project's rows
    with Project.open(dataset) as p:
        assert p.imported == 2 and p.n_verdict_rows() == 5
        assert (p.verdict("k").verdict, p.verdict("k").final) == ("confirmed", "nok")
        assert (p.verdict("m").verdict, p.verdict("m").final, p.verdict("m").note) == ("rejected", "ok", "later")
        assert p.verdict("m").source == "jsonl" and len(p.verdict_history("k")) == 2
        assert p.verdict("n").verdict == "unsure" and p.verdict("n").reviewer == "ana"


def test_unreadable_journal_is_said_and_imported_once_readable(dataset, monkeypatch):
    path = journal_path_for(dataset)
    path.mkdir(parents=True)                                 # a folder where the file should be
    with Project.open(dataset) as p:
        assert any("cannot read the review journal" in w and str(path) in w for w in p.warnings)
        assert p.meta(META_KEY) is None                      # not recorded: tried again
    path.rmdir()
    journal(dataset, event("k", "rejected"))
    with Project.open(dataset) as p:
        assert p.imported == 1 and p.verdict("k").verdict == "rejected" and p.warnings == []


GOOD_A = b'{"key":"a","verdict":"confirmed","image_score":1.5}'
GOOD_B = b'{"key":"b","verdict":"rejected"}'
CORRUPT = {
    "deep list": b"[" * 1000,
    "deep object": b'{"key":"x","verdict":"unsure","extra":' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
    "deep inside": b'{"key":"x","verdict":"unsure","extra":{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    "binary": bytes(range(256)).replace(b"\n", b""),
    "nul bytes": b"\x00" * 64,
    "latin-1": '{"key":"x","verdict":"unsure","note":"caf\xe9"}'.encode("latin-1"),
    "a string": b'"confirmed"',
    "a number": b"42",
    "a list": b'[{"key":"x","verdict":"unsure"}]',
    "null": b"null",
    "key not text": b'{"key":5,"verdict":"confirmed"}',
    "empty key": b'{"key":"","verdict":"confirmed"}',
    "unknown verdict": b'{"key":"x","verdict":"maybe"}',
    "note not text": b'{"key":"x","verdict":"unsure","note":["a"]}',
    "score not a number": b'{"key":"x","verdict":"unsure","image_score":"high"}',
    "score a bool": b'{"key":"x","verdict":"unsure","image_score":true}',
    "extra not an object": b'{"key":"x","verdict":"unsure","extra":[1]}',
    "half a line": b'{"key":"x","verdict":"uns',
    "BOM mid-file then junk": b"\xef\xbb\xbf{not json",
}


@pytest.mark.parametrize("bad", list(CORRUPT), ids=list(CORRUPT))
def test_corrupt_journal_line_is_skipped_with_one_warning(dataset, caplog, bad):
    journal(dataset, GOOD_A, CORRUPT[bad], GOOD_B)
    with Project.open(dataset) as p:
        assert p.verdict("a").verdict == "confirmed" and p.verdict("b").verdict == "rejected"
        assert p.verdict("x") is None and p.verdict("a").image_score == 1.5 and p.imported == 2
        assert len(p.warnings) == 1 and "line 2" in p.warnings[0] and str(journal_path_for(dataset)) in p.warnings[0]
        assert len(importer_warnings(caplog)) == 1
        p.record_verdict("c", "unsure")                      # the project stays writable
    with Project.open(dataset) as p:
        assert p.verdict("c").verdict == "unsure" and p.imported == 0 and p.warnings == []


def test_truncated_last_line_and_many_corrupt_lines(dataset, caplog):
    path = journal(dataset, GOOD_A)
    path.write_bytes(GOOD_A + b"\n" + GOOD_B[:-9])          # a crash in the middle of the last line
    j = read_journal(path)
    assert [e.key for e in j.events] == ["a"] and len(j.warnings) == 1 and "truncated" in j.warnings[0]
    path.write_bytes(GOOD_A + b"\n" + GOOD_B[:-9] + b"\n" + GOOD_B + b"\n")   # ... then a verdict after it
    j = read_journal(path)
    assert [e.key for e in j.events] == ["a", "b"] and "corrupt line 2" in j.warnings[0]
    caplog.clear()
    path.write_bytes(b"\n".join([GOOD_A] + [b"garbage %d" % i for i in range(500)] + [GOOD_B]))
    j = read_journal(path)
    assert [e.key for e in j.events] == ["a", "b"] and j.skipped_lines == 500
    assert len(j.warnings) == MAX_WARNINGS + 1 and "480 more" in j.warnings[-1]
    assert len(importer_warnings(caplog)) == 1 and "500 unreadable" in importer_warnings(caplog)[0].getMessage()


def test_utf8_bom_nan_and_huge_numbers_in_the_journal(dataset, caplog):
    path = journal(dataset, b"\xef\xbb\xbf" + GOOD_A + b"\r", GOOD_B + b"\r",   # saved by a Windows editor
                   b'{"key":"k","verdict":"unsure","image_score":NaN}',
                   b'{"key":"j","verdict":"unsure","image_score":1' + b"0" * 400 + b"}")
    j = read_journal(path)
    assert [e.key for e in j.events] == ["a", "b", "k", "j"] and j.warnings == [] and not importer_warnings(caplog)
    assert [e.image_score for e in j.events] == [1.5, None, None, None]
    path.write_bytes(b"\xef\xbb\xbf")                          # only a BOM: nothing to import
    assert read_journal(path).events == []
    assert read_journal(path.with_name("missing.jsonl")) is None


# ---------------------------------------------------------------------- random open / act / close sequences
SEQUENCES = int(os.environ.get("MMAD_REVIEW_SEQUENCES", "60"))


def run_sequence(dataset: Path, seed: int, steps: int = 40) -> dict:
    """One random session: a journal of an older version may be there before the first open, and
    another may appear later (never imported); actions with reopen, close, a read-only second
    instance and a full disk in between.  The project must equal the model at every check."""
    rng = random.Random(seed)
    model = Model()
    stats = {"actions": 0, "reopens": 0, "checks": 0, "read_only": 0, "disk_full": 0}
    if rng.random() < 0.4:                                     # an older version's journal, imported at the first open
        events = [event(rng.choice(KEYS), rng.choice(("confirmed", "rejected", "unsure")),
                        time=f"2024-01-01T00:00:{i:02d}.000+00:00", note=rng.choice(("", "old note")))
                  for i in range(rng.randint(1, 8))]
        journal(dataset, *events)
        for e in events:
            model.verdict(e["key"], verdict=e["verdict"], note=e["note"])
    p = Project.open(dataset)

    def check(project):
        stats["checks"] += 1
        lost = differences(project, model)
        assert not lost, f"seed {seed}: " + "; ".join(lost)

    try:
        for _ in range(steps):
            r = rng.random()
            if r < 0.12:                                       # close and reopen
                p.close()
                if rng.random() < 0.2:                         # an older version writes its journal meanwhile
                    journal(dataset, event(rng.choice(KEYS), "rejected", time="2999-01-01T00:00:00.000+00:00"))
                p = Project.open(dataset)
                stats["reopens"] += 1
                check(p)
            elif r < 0.17:                                     # a second instance: reads, saves nothing
                stats["read_only"] += 1
                with Project.open(dataset, if_locked="read_only") as ro:
                    assert ro.read_only
                    check(ro)
                    with pytest.raises(ProjectReadOnlyError):
                        apply(ro, random_action(rng))
            elif r < 0.21:                                     # the disk fills up for a few actions
                stats["disk_full"] += 1
                fill_disk(p)
                for _ in range(rng.randint(1, 3)):
                    a = random_action(rng)
                    want = model.expect(a)
                    try:
                        got = apply(p, a)
                    except ProjectWriteError as e:
                        if a["do"] in ("verdict", "final", "note"):
                            assert e.pending == p.pending > 0  # kept in memory: acknowledged as such
                            model.ack(a, None)
                        continue
                    assert got == want or a["do"] == "mark"
                    model.ack(a, got)
                check(p)                                       # the state shown includes what is kept
                free_disk(p)
                p.retry()
                assert p.pending == 0
            else:
                a = random_action(rng)
                want = model.expect(a)
                got = apply(p, a)
                assert got == want or a["do"] == "mark", f"seed {seed}: {a} returned {got}, expected {want}"
                model.ack(a, got)
                stats["actions"] += 1
        check(p)
    finally:
        p.close()
    with Project.open(dataset) as p:
        check(p)
        stats["reopens"] += 1
    return stats


def test_random_open_act_close_sequences_lose_nothing(tmp_path):
    """Many random sessions (fixed seeds), each checked against the model after every reopen."""
    total = {}
    for seed in range(SEQUENCES):
        d = tmp_path / f"ds{seed}"
        d.mkdir()
        for k, v in run_sequence(d, seed).items():
            total[k] = total.get(k, 0) + v
    assert total["reopens"] >= SEQUENCES and total["read_only"] > 0 and total["disk_full"] > 0
    assert total["actions"] > 10 * SEQUENCES


def test_the_model_catches_a_lost_final_verdict(dataset):
    """The check can fail: the 18.1 loss (a final verdict overwritten by an imported row) is reported."""
    model = Model()
    with Project.open(dataset) as p:
        for a in ({"do": "verdict", "key": "k", "verdict": "C", "note": None, "reviewer": ""},
                  {"do": "final", "key": "k", "final": "X", "note": None}):
            model.ack(a, apply(p, a))
        assert differences(p, model) == []
        with p._tx() as c:                                   # what the second open used to do
            c.execute("INSERT INTO verdicts (key, verdict, final, time, source) VALUES ('k', 'confirmed', NULL, "
                      "'2024', 'jsonl')")
    with Project.open(dataset) as p:
        lost = differences(p, model)
    assert any("verdict of k" in x and "'nok'" in x for x in lost) and any("history rows" in x for x in lost)
