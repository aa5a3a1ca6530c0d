"""One decision threshold per class, wherever it is shown: with ``threshold`` = 0 ("calibrated"),
the Evaluation dock, the colour bar of a shown result, the HTML report and ``eval --json`` all use
the class's calibrated threshold (the dock once drew 0 and counted every good part as a false
alarm, because it asked the never-fitted template detector)."""
from __future__ import annotations

import html as html_mod
import json
import re

import numpy as np
import pytest

pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from app.main_window import MainWindow  # noqa: E402
from app.settings import Settings  # noqa: E402
from core.cli import main as cli_main  # noqa: E402
from core.session import Session  # noqa: E402

PARAMS = {"working_size": 128, "target_points": 1500}


@pytest.fixture(scope="module")
def demo2(tmp_path_factory):
    demo = pytest.importorskip("core.demo")
    out = tmp_path_factory.mktemp("demo2") / "demo"
    # 6 train parts: 5 are the support, the sixth is a held-out calibration part
    demo.generate_demo(out, classes=demo.DEMO_CLASSES[:2], n_train=6, n_val=0, n_test_good=3,
                       n_per_defect=1, size=96)
    return out


def _report_rows(text: str) -> dict[str, float]:
    """sample key -> the threshold column of the HTML report's sample table."""
    table = text[text.index("<h2>Samples</h2>"):]
    rows = {}
    for tr in re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)[1:]:
        cells = [html_mod.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        rows[cells[1]] = float(cells[6]) if cells[6] not in ("", "n/a") else float("nan")
    return rows


def test_dock_colour_bar_report_and_eval_json_use_the_same_calibrated_threshold(qtbot, tmp_path, demo2):
    session = Session(detector="memory-bank", params=PARAMS)
    assert session.params["threshold"] == 0            # calibrated
    w = MainWindow(Settings(tmp_path / "s.ini"), session, restore_layout=False)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    w.open_folder(str(demo2))
    qtbot.waitUntil(lambda: session.dataset is not None and len(session.classes) == 2, timeout=20000)
    w.analysis.set_params(dict(PARAMS))
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=120000)
    w.analysis.run_all()
    qtbot.waitUntil(lambda: w.runner.busy, timeout=5000) if not w.runner.busy else None
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=300000)
    w.evaluation_dock.show()
    ev = w.evaluation

    per_class: dict[str, float] = {}
    for cls in session.classes:
        tests = [r for r in session.refs if r.class_name == cls and r.split == "test"]
        assert all(session.record(r).image_score is not None for r in tests), cls
        t = session.decision_threshold(cls)
        assert t is not None and t > 0, f"{cls}: the calibrated threshold is {t}"
        per_class[cls] = t
        # every result of the class was decided with it
        assert {round(session.record(r).threshold, 9) for r in tests} == {round(t, 9)}
        # the dock draws it and counts at it
        ev.class_combo.setCurrentText(cls)
        qtbot.waitUntil(lambda cls=cls: ev.data.class_name == cls and len(ev.data.keys) == len(tests), timeout=5000)
        assert ev.threshold == pytest.approx(t, rel=1e-9)
        good = np.array([session.record(r).image_score for r in tests if r.is_good])
        bad = np.array([session.record(r).image_score for r in tests if not r.is_good])
        (tn, fp), (fn, tp) = ev.matrix
        assert fp == int((good >= t).sum()) and tp == int((bad >= t).sum())
        assert fp < len(good), f"{cls}: every good part is a false alarm at {ev.threshold}"
        assert f"at {t:.3f}" in ev.summary.text()
        # the colour bar of a shown result of the class marks it
        key = tests[-1].key
        assert w.browser.select_key(key)
        qtbot.waitUntil(lambda key=key: w.dataset.current_key == key and w.inspector.result is not None
                        and w.inspector.result.threshold is not None, timeout=60000)
        assert w.inspector.colorbar.threshold == pytest.approx(t, rel=1e-9)
    # two classes, two thresholds: a pooled single value would be wrong for one of them
    assert len({round(v, 6) for v in per_class.values()}) == 2

    # the pooled view decides each sample at its own class's threshold
    from core.evaluate import ALL_CLASSES
    ev.class_combo.setCurrentText(ALL_CLASSES)
    qtbot.waitUntil(lambda: ev.data.class_name == ALL_CLASSES, timeout=5000)
    assert ev.threshold is None
    pred = [session.record(k).image_score >= per_class[k.split("/")[0]] for k in ev.data.keys]
    assert int(ev.matrix[0, 1] + ev.matrix[1, 1]) == sum(pred)

    # the HTML report lists the same threshold per sample
    text = w.project.export_html(tmp_path / "r.html").read_text()
    rows = _report_rows(text)
    tested = [r for r in session.refs if r.split == "test"]
    assert tested and all(r.key in rows for r in tested)
    for r in tested:
        assert rows[r.key] == pytest.approx(per_class[r.class_name], rel=1e-3)   # shown with 4 significant digits
    w.close()

    # eval --json (same support, same held-out calibration parts, same parameters)
    out = tmp_path / "m.json"
    args = ["eval", "--data", str(demo2), "--detector", "memory-bank", "--json", str(out)]
    for k, v in PARAMS.items():
        args += ["--param", f"{k}={v}"]
    assert cli_main(args) == 0
    metrics = json.loads(out.read_text())["per_class"]
    for cls, t in per_class.items():
        assert metrics[cls]["threshold"] == pytest.approx(t, rel=1e-9), cls
