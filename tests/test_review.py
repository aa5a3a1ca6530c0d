"""Tests of the crash-safe review store (core/review.py)."""
from __future__ import annotations

import csv
import errno
import json
import logging
import math
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest

import core.review as review_mod
from core.errors import InputError, MMADError
from core.review import ReviewStore, ReviewWriteError, default_cache_dir, store_path_for

sys.path.insert(0, str(Path(__file__).parent))
from review_crash import kill_trial  # noqa: E402


def review_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "core.review" and r.levelno == logging.WARNING]


def test_latest_wins_and_history_is_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    st.record("a/test/crack/000", "confirmed", note="clear crack", annotator="ana", image_score=2.5,
              decision="anomalous", detector="memory-bank")
    st.record("a/test/good/001", "unsure")
    st.record("a/test/crack/000", "rejected", note="on second look: dust", annotator="bo")
    assert st.verdict("a/test/crack/000") == "rejected"
    again = ReviewStore(path)   # reload from disk
    assert again.verdict("a/test/crack/000") == "rejected"
    assert [v.verdict for v in again.history("a/test/crack/000")] == ["confirmed", "rejected"]
    assert again.latest("a/test/crack/000").annotator == "bo"
    assert again.history("a/test/crack/000")[0].image_score == 2.5
    assert again.counts() == {"confirmed": 0, "rejected": 1, "unsure": 1}
    # the file is append-only: one JSON object per line, in order
    lines = path.read_text().splitlines()
    assert [json.loads(l)["verdict"] for l in lines] == ["confirmed", "unsure", "rejected"]


def test_append_never_rewrites(tmp_path):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    st.record("k1", "confirmed")
    first = path.read_bytes()
    st.record("k2", "rejected")
    assert path.read_bytes().startswith(first)


def test_truncated_last_line_is_tolerated(tmp_path, caplog):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    st.record("k1", "confirmed")
    st.record("k2", "rejected")
    raw = path.read_bytes()
    path.write_bytes(raw[:-9])  # crash in the middle of writing the last record
    st2 = ReviewStore(path)
    assert st2.verdict("k1") == "confirmed" and st2.verdict("k2") is None
    assert len(st2.warnings) == 1 and "truncated" in st2.warnings[0]
    assert len(review_warnings(caplog)) == 1
    # appending after the crash starts a fresh line; the new verdict is readable
    st2.record("k3", "unsure")
    st3 = ReviewStore(path)
    assert st3.verdict("k3") == "unsure" and st3.verdict("k1") == "confirmed"
    assert len(st3.warnings) == 1 and "corrupt line 2" in st3.warnings[0]


def test_bad_verdict_rejected(tmp_path):
    st = ReviewStore(tmp_path / "r.jsonl")
    with pytest.raises(ValueError, match="confirmed"):
        st.record("k", "maybe")
    with pytest.raises(ValueError):
        st.record("", "confirmed")
    assert not (tmp_path / "r.jsonl").exists()


def test_csv_export(tmp_path):
    st = ReviewStore(tmp_path / "r.jsonl")
    st.record("b", "confirmed", note='says "hi", ok', annotator="ana", image_score=1.25)
    st.record("a", "unsure")
    st.record("b", "rejected")
    out = st.export_csv(tmp_path / "v.csv")
    rows = list(csv.DictReader(open(out, newline="")))
    assert [(r["key"], r["verdict"]) for r in rows] == [("a", "unsure"), ("b", "rejected")]
    rows = list(csv.DictReader(open(st.export_csv(tmp_path / "h.csv", history=True), newline="")))
    assert [r["verdict"] for r in rows if r["key"] == "b"] == ["confirmed", "rejected"]
    assert rows[1]["note"] == 'says "hi", ok' and float(rows[1]["image_score"]) == 1.25
    with pytest.raises(InputError, match="cannot write"):
        st.export_csv(tmp_path / "missing-dir" / "x.csv")


def test_store_lives_in_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMAD_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data set"
    data.mkdir()
    assert default_cache_dir() == tmp_path / "cache"
    p = store_path_for(data)
    assert p.parent == tmp_path / "cache" / "reviews" and p.name.startswith("data_set-")
    assert store_path_for(tmp_path / "other" / "data set") != p       # same name, different folder
    os.chmod(data, 0o555)  # a read-only dataset folder is fine: nothing is written there
    try:
        ReviewStore.for_dataset(data).record("x", "confirmed")
        assert list(data.iterdir()) == []
        assert ReviewStore.for_dataset(data).verdict("x") == "confirmed"
    finally:
        os.chmod(data, 0o755)


# ---------------------------------------------------------------------- failed writes (disk full...)
def short_then_enospc(monkeypatch):
    """os.write writes half of what it is given and returns that count once, then fails with ENOSPC
    (what a filling disk does).  Returns a function that restores the real os.write."""
    real = os.write
    calls = {"n": 0}

    def fake(fd, data):
        calls["n"] += 1
        if calls["n"] == 1:
            return real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(review_mod.os, "write", fake)
    return lambda: monkeypatch.setattr(review_mod.os, "write", real)


def test_disk_full_raises_keeps_the_verdict_and_retry_writes_it(tmp_path, monkeypatch, caplog):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    st.record("k1", "confirmed")
    before = path.read_bytes()
    restore = short_then_enospc(monkeypatch)
    with pytest.raises(ReviewWriteError) as info:
        st.record("k2", "rejected", note="x" * 500)
    err = info.value
    assert isinstance(err, OSError) and isinstance(err, MMADError)
    assert err.errno == errno.ENOSPC and "disk full" in str(err) and str(path) in str(err)
    assert path.read_bytes() == before                        # the half-written line was cut back
    assert st.pending == 1 and st.verdict("k2") == "rejected"  # kept in memory, shown
    assert ReviewStore(path).verdict("k2") is None             # ... but honestly not on disk yet
    with pytest.raises(ReviewWriteError):                      # still full: retry raises, keeps it
        st.retry()
    assert st.pending == 1 and path.read_bytes() == before
    restore()
    assert st.retry() == 1 and st.pending == 0
    again = ReviewStore(path)
    assert again.verdict("k2") == "rejected" and again.latest("k2").note == "x" * 500
    assert again.warnings == [] and not review_warnings(caplog)


def test_pending_verdicts_are_written_by_the_next_record_in_order(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    restore = short_then_enospc(monkeypatch)
    with pytest.raises(ReviewWriteError):
        st.record("k1", "confirmed")
    with pytest.raises(ReviewWriteError) as info:
        st.record("k1", "rejected")
    assert st.pending == 2 and info.value.pending == 2 and "2 verdicts not saved" in str(info.value)
    restore()
    st.record("k2", "unsure")
    assert st.pending == 0
    lines = [json.loads(l) for l in path.read_text().splitlines()]
    assert [(d["key"], d["verdict"]) for d in lines] == [("k1", "confirmed"), ("k1", "rejected"), ("k2", "unsure")]


def test_write_that_returns_zero_is_a_short_write(tmp_path, monkeypatch):
    st = ReviewStore(tmp_path / "r.jsonl")
    monkeypatch.setattr(review_mod.os, "write", lambda fd, data: 0)
    with pytest.raises(ReviewWriteError, match="short write"):
        st.record("k", "confirmed")
    assert st.pending == 1


def test_read_only_and_fsync_failures_raise(tmp_path, monkeypatch):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    st.record("k0", "confirmed")
    before = path.read_bytes()
    real_open = os.open

    def erofs(p, *a, **k):
        if Path(p) == path:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return real_open(p, *a, **k)

    monkeypatch.setattr(review_mod.os, "open", erofs)
    with pytest.raises(ReviewWriteError, match="read-only") as info:
        st.record("k1", "confirmed")
    assert info.value.errno == errno.EROFS
    monkeypatch.setattr(review_mod.os, "open", real_open)

    def eio(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(review_mod.os, "fsync", eio)
    with pytest.raises(ReviewWriteError) as info:
        st.record("k2", "confirmed")
    assert info.value.errno == errno.EIO
    assert path.read_bytes() == before and st.pending == 2     # the unsynced append was cut back
    monkeypatch.undo()
    st.retry()
    assert set(ReviewStore(path).keys()) == {"k0", "k1", "k2"}


def test_partial_line_left_by_a_failed_write_does_not_corrupt_the_next(tmp_path, monkeypatch, caplog):
    """If the file cannot even be cut back, the reader skips the partial line and the next write
    starts on a fresh line."""
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    st.record("k0", "confirmed")
    restore = short_then_enospc(monkeypatch)

    def no_truncate(fd, n):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(review_mod.os, "ftruncate", no_truncate)
    with pytest.raises(ReviewWriteError):
        st.record("k1", "rejected")
    assert not path.read_bytes().endswith(b"\n")               # half a line is on disk
    restore()
    st.record("k2", "unsure")                                  # writes k1 (pending) and k2
    again = ReviewStore(path)
    assert {k: again.verdict(k) for k in again.keys()} == {"k0": "confirmed", "k1": "rejected", "k2": "unsure"}
    assert again.skipped_lines == 1 and len(review_warnings(caplog)) == 1


# ---------------------------------------------------------------------- corrupt lines of any shape
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
def test_corrupt_line_is_skipped_with_one_warning(tmp_path, caplog, bad):
    path = tmp_path / "r.jsonl"
    path.write_bytes(GOOD_A + b"\n" + CORRUPT[bad] + b"\n" + GOOD_B + b"\n")
    st = ReviewStore(path)
    assert st.verdict("a") == "confirmed" and st.verdict("b") == "rejected" and st.verdict("x") is None
    assert st.latest("a").image_score == 1.5
    assert st.skipped_lines == 1 and len(st.warnings) == 1 and "line 2" in st.warnings[0]
    assert len(review_warnings(caplog)) == 1
    st.record("c", "unsure")                                    # the store stays writable
    assert ReviewStore(path).verdict("c") == "unsure"


def test_many_corrupt_lines_give_one_warning_and_a_short_list(tmp_path, caplog):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\n".join([GOOD_A] + [b"garbage %d" % i for i in range(500)] + [GOOD_B]))
    st = ReviewStore(path)
    assert st.verdict("a") == "confirmed" and st.verdict("b") == "rejected"
    assert st.skipped_lines == 500
    assert len(st.warnings) == review_mod.MAX_WARNINGS + 1 and "480 more" in st.warnings[-1]
    assert len(review_warnings(caplog)) == 1 and "500 unreadable" in review_warnings(caplog)[0].getMessage()


def test_utf8_bom_keeps_the_first_verdict(tmp_path, caplog):
    path = tmp_path / "r.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD_A + b"\r\n" + GOOD_B + b"\r\n")    # saved by a Windows editor
    st = ReviewStore(path)
    assert st.verdict("a") == "confirmed" and st.verdict("b") == "rejected"
    assert st.warnings == [] and not review_warnings(caplog)
    path.write_bytes(b"\xef\xbb\xbf")                          # only a BOM: an empty store
    assert len(ReviewStore(path)) == 0


def test_unreadable_file_is_a_clear_error(tmp_path):
    folder = tmp_path / "r.jsonl"
    folder.mkdir()
    with pytest.raises(InputError, match="cannot read the review file"):
        ReviewStore(folder)


# ---------------------------------------------------------------------- non-finite values
@pytest.mark.parametrize("score", [math.inf, -math.inf, math.nan, np.float32("inf"), np.float64("nan"), "n/a"])
def test_non_finite_scores_are_stored_as_null(tmp_path, score):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    v = st.record("k", "confirmed", image_score=score, extra={"z": math.nan, "arr": [np.float32(2.0), math.inf]})
    assert v.image_score is None
    d = json.loads(path.read_text())
    assert d["image_score"] is None and d["extra"] == {"z": None, "arr": [2.0, None]}
    assert ReviewStore(path).latest("k").image_score is None
    assert st.record("k", "confirmed", image_score=np.float32(0.25)).image_score == 0.25


def test_nan_literal_written_by_another_tool_is_read_as_null(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key":"k","verdict":"unsure","image_score":NaN}\n'
                    '{"key":"j","verdict":"unsure","image_score":1' + "0" * 400 + "}\n")
    st = ReviewStore(path)
    assert st.latest("k").image_score is None and st.latest("j").image_score is None and not st.warnings


# ---------------------------------------------------------------------- kill -9 trials
def test_kill_9_never_loses_an_acknowledged_verdict(tmp_path):
    """20 writers killed with SIGKILL at random moments, all appending to the same file: every
    verdict whose record() had returned is there on reopen, and the file always opens."""
    path = tmp_path / "r.jsonl"
    rng = random.Random(7)
    total = 0
    for trial in range(20):
        r = kill_trial(path, rng, trial, max_delay=0.12)
        assert not r["lost"], f"trial {trial}: acknowledged verdicts lost: {sorted(r['lost'])[:5]}"
        assert len(r["on_disk"]) <= len(r["acked"]) + 1           # at most the one being written
        total += len(r["acked"])
    st = ReviewStore(path)
    assert len(st) >= total and st.skipped_lines <= 20
