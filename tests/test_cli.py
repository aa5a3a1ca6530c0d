"""End-to-end tests of the evaluation pipeline and the CLI (in-process, on a tiny generated demo set)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from core import cli
from core.datasets import open_dataset
from core.demo import generate_demo
from core.detectors import Components, Detector, DetectorResult, Needs, Param, registry
from core.evaluate import evaluate


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    return generate_demo(root / "demo", classes=None, n_train=3, n_val=0, n_test_good=2, n_per_defect=1,
                         size=64, seed=3)


class _OracleDetector(Detector):
    """Returns the ground truth (or its negation) as its map: the pipeline must then give 1.0 (or 0.0)."""
    id = "test-oracle"
    name = "oracle (tests)"
    needs = Needs(rgb="optional", points="optional", support=0)
    params = (Param("sign", 1.0, min=-1.0, max=1.0, stage="fusion"),)

    def extract(self, sample, progress=None, cancel=None):
        gt = sample.pixel_gt().astype(np.float32)
        return Components(maps={"gt": gt}, shape=gt.shape, extra={"valid": sample.valid_index() if sample.organized else None})

    def fuse(self, components, params=None):
        p = self.merged_params(params)
        m = components.maps["gt"] * p["sign"]
        pts = m.ravel()[components.extra["valid"]] if components.extra["valid"] is not None else None
        return DetectorResult(components, m, pts, float(m.max()) if p["sign"] > 0 else float(m.min()))


@pytest.fixture()
def oracle():
    registry.register(_OracleDetector)
    yield _OracleDetector.id
    registry.unregister(_OracleDetector.id)


def test_oracle_detector_gets_perfect_metrics(tiny_demo, oracle):
    ds = open_dataset(tiny_demo)
    report = evaluate(ds, oracle, shots=0)
    assert set(report.per_class) == set(ds.classes)
    for cls, m in report.per_class.items():
        for k in ("image_auroc", "pixel_auroc", "aupro_30", "aupro_1", "point_auroc"):
            assert m[k] == pytest.approx(1.0), (cls, k, m[k])
    anti = evaluate(ds, oracle, shots=0, params={"sign": -1.0})
    for m in anti.per_class.values():
        assert m["pixel_auroc"] < 0.05 and m["image_auroc"] < 0.05


def test_cli_eval_json_and_saved_maps(tiny_demo, tmp_path, capsys):
    ds = open_dataset(tiny_demo)
    cls = ds.classes[0]
    out_json = tmp_path / "m.json"
    maps = tmp_path / "maps"
    rc = cli.main(["eval", "--data", str(tiny_demo), "--classes", cls, "--detector", "memory-bank",
                   "--shots", "2", "--json", str(out_json), "--save-maps", str(maps), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "I-AUROC" in text and cls in text and "mean" in text
    data = json.loads(out_json.read_text())
    assert set(data) >= {"per_class", "mean"}
    for k in ("image_auroc", "pixel_auroc", "aupro_30", "aupro_1", "point_auroc", "seconds_per_sample"):
        v = data["per_class"][cls][k]
        assert v is not None and np.isfinite(v), k
        assert data["mean"][k] == pytest.approx(v)
    # one float32 TIFF per test sample at the original RGB resolution, official layout
    test_refs = ds.select([cls], split="test")
    for r in test_refs:
        f = maps / cls / "test" / r.label / f"{r.id}.tiff"
        assert f.exists(), f
        m = tifffile.imread(f)
        assert m.dtype == np.float32 and m.shape == ds.load(r).rgb.shape[:2]
        assert np.isfinite(m).all()


def test_eval_skips_corrupt_sample_and_goes_on(tiny_demo, tmp_path, capsys):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(tiny_demo, root)
    ds = open_dataset(root)
    cls = ds.classes[0]
    bad = ds.select([cls], split="test")[0]
    Path(bad.paths["rgb"]).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")  # truncated PNG
    rc = cli.main(["eval", "--data", str(root), "--classes", cls, "--detector", "memory-bank",
                   "--shots", "2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_PARTIAL   # results written, and the exit code says something was skipped
    assert "skipped" in err and Path(bad.paths["rgb"]).name in err
    assert "Traceback" not in err


def _copy(tiny_demo, tmp_path):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(tiny_demo, root)
    ds = open_dataset(root)
    return root, ds, ds.classes[0]


def test_symlink_loop_rgb_is_named_in_score_and_skipped_in_eval(tiny_demo, tmp_path, capsys):
    """A looping symbolic link is "symbolic link loop", not "file not found"; in eval its sample is
    skipped and named, never scored on its point cloud alone."""
    import os
    root, ds, cls = _copy(tiny_demo, tmp_path)
    bad = ds.select([cls], split="test")[0]
    rgb = Path(bad.paths["rgb"])
    rgb.unlink()
    os.symlink(".loop.png", rgb)                     # 000.png -> .loop.png -> 000.png (hidden: not a sample)
    os.symlink(rgb.name, rgb.with_name(".loop.png"))
    rc = cli.main(["score", str(rgb), "--support", str(root / cls / "train" / "good"), "--shots", "2",
                   "--out", str(tmp_path / "o"), "--param", "working_size=64"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_USER and "symbolic link loop" in err and str(rgb) in err and "not found" not in err
    rc = cli.main(["eval", "--data", str(root), "--classes", cls, "--shots", "2", "--quiet",
                   "--param", "working_size=64", "--json", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_PARTIAL
    assert f"skipped {bad.key}" in err and "symbolic link loop" in err and str(rgb) in err
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["per_class"][cls]["n_test"] == len(ds.select([cls], split="test")) - 1
    assert [s["sample"] for s in data["skipped"]] == [bad.key]


def test_integer_xyz_tiff_is_skipped_not_scored(tiny_demo, tmp_path, capsys):
    """An int32 xyz TIFF (coordinates rounded to whole units) is refused naming the file and the
    data type; the other samples are scored as before."""
    root, ds, cls = _copy(tiny_demo, tmp_path)
    bad = [r for r in ds.select([cls], split="test") if not r.is_good][0]
    xyz = Path(bad.paths["points"])
    tifffile.imwrite(xyz, np.round(tifffile.imread(xyz)).astype(np.int32), photometric="rgb")
    rc = cli.main(["score", str(xyz), "--support", str(root / cls / "train" / "good"), "--shots", "2",
                   "--out", str(tmp_path / "o"), "--param", "working_size=64"])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_USER and str(xyz) in err and "data type int32" in err
    rc = cli.main(["eval", "--data", str(root), "--classes", cls, "--shots", "2", "--quiet",
                   "--param", "working_size=64", "--json", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_PARTIAL and f"skipped {bad.key}" in err and "data type int32" in err
    assert [s["sample"] for s in json.loads((tmp_path / "m.json").read_text())["skipped"]] == [bad.key]


def test_eval_refits_a_class_whose_saved_fit_is_broken_and_says_so(tiny_demo, tmp_path, capsys, monkeypatch):
    """A saved fit with NaN bank features (valid checksum) gave I-AUROC 0.500 silently; one with a
    missing array 'class not evaluated (KeyError)'; a zip bomb in the fits folder was decompressed.
    Each is now refused naming its file, the class refitted, the metrics those of a clean fit."""
    from test_fit_validation import tamper_saved_fit, write_zip_bomb
    monkeypatch.setenv("MMAD_CACHE", str(tmp_path / "cache"))
    cls = open_dataset(tiny_demo).classes[0]
    args = ["eval", "--data", str(tiny_demo), "--classes", cls, "--shots", "2", "--quiet",
            "--param", "working_size=64", "--json", str(tmp_path / "m.json")]
    assert cli.main(args) == cli.EXIT_OK
    capsys.readouterr()
    clean = json.loads((tmp_path / "m.json").read_text())["per_class"][cls]
    (saved,) = (tmp_path / "cache" / "fits" / "memory-bank").glob("*.npz")

    def nan_features(a):
        a["rgb.features"] = np.full_like(a["rgb.features"], np.nan)

    for change in (nan_features, lambda a: a.pop("rgb.nominal"), None):
        if change is None:
            write_zip_bomb(saved, 256 << 20)
        else:
            tamper_saved_fit(saved, change)
        assert cli.main(args) == cli.EXIT_OK
        err = capsys.readouterr().err
        assert str(saved) in err and "refitted" in err
        got = json.loads((tmp_path / "m.json").read_text())["per_class"][cls]
        assert got["fit_source"] == "fitted"
        for k in ("image_auroc", "pixel_auroc", "aupro_30", "aupro_1", "point_auroc"):
            assert got[k] == pytest.approx(clean[k]), k


def test_cli_errors_are_one_clear_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["eval", "--data", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and "no samples" in err.lower() and "Traceback" not in err
    assert cli.main(["eval", "--data", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    assert cli.main(["eval", "--data", str(tmp_path), "--detector", "no-such-detector"]) == 2
    assert "memory-bank" in capsys.readouterr().err  # lists what is available


def test_cli_detectors_lists_memory_bank(capsys):
    assert cli.main(["detectors"]) == 0
    assert "memory-bank" in capsys.readouterr().out


def test_cli_score_writes_heatmaps(tiny_demo, tmp_path, capsys):
    ds = open_dataset(tiny_demo)
    cls = ds.classes[0]
    refs = [r for r in ds.select([cls], split="test") if not r.is_good][:2]
    out = tmp_path / "heat"
    rc = cli.main(["score", *[str(r.paths["rgb"]) for r in refs], "--shots", "2", "--out", str(out)])
    assert rc == 0
    pngs = sorted(out.glob("*_heatmap.png"))
    assert len(pngs) == 2
    import cv2
    img = cv2.imread(str(pngs[0]))
    assert img.shape[:2] == ds.load(refs[0]).rgb.shape[:2]
    assert "image score" in capsys.readouterr().out


def test_no_command_opens_the_gui_entry_point_and_core_stays_headless(tmp_path):
    import subprocess
    import sys
    seen = []
    assert cli.main(["--data", str(tmp_path)], gui=lambda data: seen.append(data) or 0) == 0
    assert seen == [str(tmp_path)]
    # importing every core module (CLI, detectors, session, review...) must not load Qt or app/
    code = ("import pkgutil, importlib, sys, core\n"
            "for m in pkgutil.walk_packages(core.__path__, 'core.'):\n"
            "    importlib.import_module(m.name)\n"
            "bad = [n for n in sys.modules if n.split('.')[0] in ('PySide6', 'pyvistaqt', 'qasync', 'app')]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_eval_undefined_metric_is_one_plain_note(tmp_path, capsys):
    """An RGB-only set has no point AUROC: the table says n/a and one plain note says why; no raw
    warning with a file/line reaches the user."""
    from test_datasets_layouts import make_mvtec_ad
    make_mvtec_ad(tmp_path / "ad", classes=("bottle",))
    rc = cli.main(["eval", "--data", str(tmp_path / "ad"), "--shots", "2", "--quiet",
                   "--param", "working_size=64", "--json", str(tmp_path / "m.json")])
    out, err = capsys.readouterr()
    assert rc == cli.EXIT_OK
    assert "n/a" in out and "note: n/a: point AUROC" in out
    assert "UndefinedMetricWarning" not in err and ".py:" not in err
    import json
    notes = json.loads((tmp_path / "m.json").read_text())["notes"]
    assert any("point AUROC" in n["undefined"] and n["classes"] == ["bottle"] for n in notes)
