"""Tests of the crash-safe review store (core/review.py)."""
from __future__ import annotations

import csv
import json
import os

import pytest

from core.errors import InputError
from core.review import ReviewStore, default_cache_dir, store_path_for


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


def test_truncated_last_line_is_tolerated(tmp_path):
    path = tmp_path / "r.jsonl"
    st = ReviewStore(path)
    st.record("k1", "confirmed")
    st.record("k2", "rejected")
    raw = path.read_bytes()
    path.write_bytes(raw[:-9])  # crash in the middle of writing the last record
    with pytest.warns(RuntimeWarning, match="truncated"):
        st2 = ReviewStore(path)
    assert st2.verdict("k1") == "confirmed" and st2.verdict("k2") is None
    # appending after the crash starts a fresh line; the new verdict is readable
    st2.record("k3", "unsure")
    with pytest.warns(RuntimeWarning, match="corrupt line 2"):
        st3 = ReviewStore(path)
    assert st3.verdict("k3") == "unsure" and st3.verdict("k1") == "confirmed"


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
