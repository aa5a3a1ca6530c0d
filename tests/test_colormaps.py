"""core.colormaps: the one colour table / score-range rule shared by the GUI and the CLI's PNGs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.colormaps import apply_colormap, heatmap_overlay, lut, score_range

ROOT = Path(__file__).resolve().parents[1]


def test_score_range_rules():
    assert score_range(None) == (0.0, 1.0)
    m = np.linspace(0.0, 10.0, 101).reshape(1, -1)
    assert score_range(SimpleNamespace(threshold=2.5, pixel_map=m, point_scores=None)) == (0.0, 5.0)
    lo, hi = score_range(SimpleNamespace(threshold=None, pixel_map=m, point_scores=np.array([np.nan, 3.0])))
    both = np.concatenate([m.ravel(), [3.0]])
    assert (lo, hi) == pytest.approx(tuple(np.percentile(both, [1, 99.5])))
    flat = score_range(SimpleNamespace(threshold=0.0, pixel_map=np.ones((2, 2)), point_scores=None))
    assert flat[1] > flat[0] == 1.0                              # degenerate: a tiny positive span
    assert score_range(SimpleNamespace(threshold=None, pixel_map=np.full((2, 2), np.nan), point_scores=None)) \
        == (0.0, 1.0)


def test_session_score_range_is_the_same_rule():
    from core import session
    rng = np.random.default_rng(0)
    for t in (None, 0.7):
        r = SimpleNamespace(threshold=t, pixel_map=rng.random((8, 8)), point_scores=rng.random(20))
        assert session.score_range(r) == pytest.approx(score_range(r))


def test_heatmap_overlay_blends_the_shared_lut():
    rgb = np.full((2, 3, 3), 100, np.uint8)
    pm = np.array([[0.0, 0.5, 1.0], [np.nan, 2.0, -1.0]])
    out = heatmap_overlay(rgb, pm, 0.0, 1.0, opacity=0.5, name="viridis")
    heat = apply_colormap(pm, 0.0, 1.0, "viridis").astype(float)
    exp = np.rint(0.5 * 100 + 0.5 * heat)
    exp[1, 0] = 100                                               # NaN: the photo shows through
    np.testing.assert_array_equal(out, exp.astype(np.uint8))
    alone = heatmap_overlay(None, pm, 0.0, 1.0)
    assert (alone[0, 2] == lut("inferno")[255]).all() and (alone[1, 0] == (128, 128, 128)).all()
    with pytest.raises(ValueError, match="map is"):
        heatmap_overlay(rgb, np.zeros((3, 3)), 0, 1)


def test_colormaps_is_headless():
    code = ("import sys, core.colormaps; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('PySide6', 'shiboken6', 'pyvista', 'vtk', 'vtkmodules', 'qasync', 'app')]; print(bad); "
            "sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
