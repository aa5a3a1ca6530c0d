"""Exports (core.project.export / report): PLY scalar field round trip, overlay, JSON, CSV, HTML."""
from __future__ import annotations

import base64
import csv
import json
import re

import numpy as np
import pytest

from core import io
from core.colormaps import heatmap_overlay, score_range
from core.errors import InputError
from core.project import Project
from core.project.export import (CSV_COLUMNS, SCALAR_FIELD, overlay_image, read_ply_fields, write_overlay_png,
                                 write_sample_json, write_sample_ply, write_samples_csv, write_scored_ply)
from core.project.report import build_html_report, class_metrics, write_html_report
from core.session import Session, ThreadBackend


@pytest.fixture
def analysed(fake_detector, memory_dataset):
    s = Session(memory_dataset, "fake-test", backend=ThreadBackend(), fit_store=None)
    s.run(memory_dataset.select(split="test"))
    return s


def test_ply_scalar_field_round_trip(analysed, tmp_path):
    ref = analysed.dataset.select(["disc"], split="test", label="blob")[0]
    a = analysed.analyze(ref)
    out = write_sample_ply(tmp_path / "scored.ply", a.sample, a.result)
    assert b"property float scalar_anomaly" in out.read_bytes()[:400]
    fields = read_ply_fields(out)
    assert set(fields) == {"x", "y", "z", "red", "green", "blue", SCALAR_FIELD}
    np.testing.assert_array_equal(fields[SCALAR_FIELD], a.result.point_scores.astype(np.float32))
    assert np.isfinite(fields[SCALAR_FIELD]).all() and fields[SCALAR_FIELD].std() > 0
    # the application's own cloud reader sees the same points and colours
    pts, cols, organized = io.read_cloud(out)
    assert not organized
    np.testing.assert_allclose(pts, a.sample.valid_points(), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(cols, a.sample.valid_colors())
    # and an independent reader (open3d's tensor API) finds the scalar field by name
    o3d = pytest.importorskip("open3d")
    pc = o3d.t.io.read_point_cloud(str(out))
    np.testing.assert_allclose(pc.point[SCALAR_FIELD].numpy().ravel(), fields[SCALAR_FIELD], rtol=0, atol=0)


def test_ply_keeps_nan_scores_and_refuses_mismatch(tmp_path):
    pts = np.arange(12, dtype=np.float32).reshape(4, 3)
    scores = np.array([0.5, np.nan, 2.0, -1.0], np.float32)
    fields = read_ply_fields(write_scored_ply(tmp_path / "a.ply", pts, scores))
    assert set(fields) == {"x", "y", "z", SCALAR_FIELD}
    np.testing.assert_array_equal(fields[SCALAR_FIELD], scores)
    with pytest.raises(InputError, match="3 scores for 4 points"):
        write_scored_ply(tmp_path / "b.ply", pts, scores[:3])
    assert not (tmp_path / "b.ply").exists()


def test_overlay_png_is_the_heatmap_over_the_image(analysed, tmp_path):
    ref = analysed.dataset.select(["ring"], split="test", label="blob")[0]
    a = analysed.analyze(ref)
    out = write_overlay_png(tmp_path / "o.png", a.sample, a.result, opacity=0.6)
    img = io.read_rgb(out)
    expected = heatmap_overlay(a.sample.rgb, a.result.pixel_map, *score_range(a.result), opacity=0.6)
    np.testing.assert_array_equal(img, expected)
    assert not np.array_equal(img, a.sample.rgb)
    with pytest.raises(InputError, match="no pixel map"):
        overlay_image(a.sample, type("R", (), {"pixel_map": None})())


def test_csv_has_every_sample_with_review_columns(analysed, tmp_path):
    ds = analysed.dataset
    with Project.open(ds.root) as p:
        k = ds.select(["disc"], split="test", label="blob")[0].key
        p.record_verdict(k, "reject", final="ok", note="dust, not a defect", reviewer="ana")
        p.mark_region(k, "false_positive", {"bbox": [1, 1, 5, 5]})
        verdicts = p.verdicts()
        marks = {k: len(p.marks(k))}
    out = write_samples_csv(tmp_path / "all.csv", ds.refs, analysed.records, verdicts, detector="fake-test", marks=marks)
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert [r["key"] for r in rows] == [r.key for r in ds.refs]        # all samples, train included
    by = {r["key"]: r for r in rows}
    assert by[k]["verdict"] == "rejected" and by[k]["final_verdict"] == "ok" and by[k]["marks"] == "1"
    assert by[k]["note"] == "dust, not a defect" and by[k]["class"] == "disc" and by[k]["label"] == "blob"
    for ref in ds.refs:
        rec = analysed.records[ref.key]
        row = by[ref.key]
        assert row["split"] == ref.split and row["rgb_path"] == str(ref.paths["rgb"])
        if rec.image_score is None:
            assert row["image_score"] == "" and row["decision"] == "" and ref.split == "train"
        else:
            assert float(row["image_score"]) == pytest.approx(rec.image_score, rel=1e-5)
            assert row["decision"] == rec.decision and float(row["threshold"]) == pytest.approx(rec.threshold)


def test_sample_json(analysed, tmp_path):
    ref = analysed.dataset.select(["disc"], split="test")[0]
    a = analysed.analyze(ref)
    sup = analysed.support("disc")
    out = write_sample_json(tmp_path / "s.json", ref.key, result=a.result, detector="fake-test",
                            params=analysed.params, support=sup, ref=ref)
    doc = json.loads(out.read_text())
    assert doc["image_score"] == pytest.approx(a.result.image_score) and doc["threshold"] == a.result.threshold
    assert doc["decision"] == ("anomalous" if a.result.is_anomalous else "good")
    assert doc["support"] == [r.key for r in sup] and doc["params"]["alpha"] == analysed.params["alpha"]
    assert doc["detector"] == "fake-test" and "numpy" in doc["versions"] and doc["class"] == "disc"
    assert doc["point_scores"]["n"] == a.sample.n_points


def test_html_report_has_every_class_metrics_and_confusion(analysed, tmp_path):
    ds = analysed.dataset
    refs = ds.refs
    verdicts = {}
    with Project.open(ds.root) as p:
        for r in ds.select(split="test", label="blob"):
            p.record_verdict(r.key, "confirm", final="nok")
        verdicts = p.verdicts()
    from core.session.display import thumbnail
    thumbs = {r.key: thumbnail(ds, r, sample=analysed.load(r)) for r in refs[1:]}
    out = write_html_report(tmp_path / "r.html", refs, analysed.records, verdicts, dataset=ds, detector="fake-test",
                            params=analysed.params, title="Batch <1>", thumbnails=thumbs)
    text = out.read_text(encoding="utf-8")
    assert "Batch &lt;1&gt;" in text and "<script" not in text and "http" not in text.split("<body>")[1]
    for c in ds.classes:
        assert f"<td class='l'>{c}</td>" in text and f"histogram {c}" in text
    imgs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    # one thumbnail per sample (the first one's file does not exist: a placeholder), one histogram per class
    assert len(imgs) == len(refs) - 1 + len(ds.classes)
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    # per-class numbers are those of core.metrics on the records
    m = class_metrics([(r, analysed.records[r.key]) for r in ds.select(["disc"])])
    assert m["n_scored"] == len(ds.select(["disc"], split="test")) and m["n_defective"] == 2
    assert m["tp"] + m["fn"] == 2 and m["tp"] + m["fp"] + m["fn"] + m["tn"] == m["n_scored"]
    # the NOK verdicts are counted against the detector's decision
    n_nok_anom = sum(1 for r in ds.select(split="test", label="blob") if analysed.records[r.key].decision == "anomalous")
    row = re.search(r"detector: anomalous</th><td>(\d+)</td><td>(\d+)</td>", text)
    assert row is not None and int(row.group(2)) == n_nok_anom


def test_report_without_scores_or_labels_still_writes(memory_dataset):
    text = build_html_report(memory_dataset.refs)
    assert "not scored" in text and text.count("<tr>") > len(memory_dataset.refs)


# ---------------------------------------------------------------------- CSV formula injection
_PAYLOADS = ["=cmd|' /C calc'!A0", "@SUM(1+1)", "+1+1", "-2+3", "=HYPERLINK(\"http://x\")", "\t=1+1", "\r=1+1",
             "-", "=", "@"]


@pytest.mark.parametrize("payload", _PAYLOADS)
def test_csv_cells_that_a_spreadsheet_would_evaluate_are_neutralised(payload, tmp_path):
    from types import SimpleNamespace

    from core.datasets.base import SampleRef
    from core.project.export import write_samples_csv
    ref = SampleRef(id=payload, class_name=payload, split="test", label=payload,
                    paths={"rgb": tmp_path / f"{payload.strip()}.png"})
    rec = SimpleNamespace(image_score=-0.118, threshold=0.5, decision="good")
    verdict = SimpleNamespace(verdict="confirmed", final="ok", note=payload, reviewer=payload, time="")
    p = write_samples_csv(tmp_path / "s.csv", [ref], {ref.key: rec}, {ref.key: verdict}, detector=payload)
    with open(p, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    cells = [c for c in rows[1] if c]
    texts = [c for c in cells if payload in c]
    assert len(texts) >= 5                                     # class, label, note, reviewer, detector...
    for c in cells:
        assert not c.startswith(("=", "+", "@", "\t", "\r")), c
        assert not c.startswith("-") or c == "-0.118", c       # plain numbers stay numbers
    assert "'" + payload in cells                              # shown as the text it is


def test_csv_cell_leaves_numbers_and_plain_text_alone():
    from core.io import csv_cell
    assert csv_cell(-0.5) == -0.5 and csv_cell("-0.118") == "-0.118" and csv_cell("1e-3") == "1e-3"
    assert csv_cell("cookie") == "cookie" and csv_cell(None) == ""
    assert csv_cell("- 1") == "'- 1" and csv_cell("-inf") == "'-inf"
    assert csv_cell("caf\udce9.png") == "caf\\xe9.png"        # a non-UTF-8 file name never crashes the writer
