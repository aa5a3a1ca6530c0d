"""A plain folder of PNG + PLY pairs (an image and an unorganized cloud of one stem): one sample,
whose 3D score is kept, coloured per point and fused at image level (issue: it was dropped)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_part
from core import io
from core.datasets import open_dataset
from core.session import Session


def _write_pair(folder, stem, seed, defect=False):
    s = make_part(seed, size=48, defect=defect)
    folder.mkdir(parents=True, exist_ok=True)
    io.write_rgb(folder / f"{stem}.png", s.rgb)
    pts = s.points.reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(1)]
    io.write_cloud(folder / f"{stem}.ply", pts)


@pytest.fixture
def pair_folder(tmp_path):
    root = tmp_path / "parts"
    for i in range(3):
        _write_pair(root / "good", f"g{i}", i)
    _write_pair(root, "p1", 10, defect=True)
    return root


def test_png_and_ply_of_one_stem_are_one_fused_sample(pair_folder):
    ds = open_dataset(pair_folder)
    test = [r for r in ds if r.split == "test"]
    assert len(test) == 1 and {"rgb", "points"} <= set(test[0].paths)
    s = Session(ds, "memory-bank", params={"working_size": 64, "target_points": 1000}, fit_store=None)
    a = s.analyze(test[0])
    res = a.result
    assert res.pixel_map is not None and res.point_scores is not None
    assert len(res.point_scores) == a.sample.n_points and np.isfinite(res.point_scores).all()
    assert "RGB ✓" in res.modalities and "3D ✓" in res.modalities and "image level" in res.modalities
    s.set_params(rgb_weight=1.0)
    rgb_only = s.result(test[0]).image_score
    s.set_params(rgb_weight=0.0)
    geo_only = s.result(test[0]).image_score
    assert rgb_only != geo_only            # rgb_weight reaches the verdict
    comps = s.components_of(test[0])
    assert geo_only == pytest.approx(float(np.max(comps.point_maps["geometry"])), rel=1e-6)


def test_score_cli_pairs_image_and_cloud(pair_folder, tmp_path):
    from core.scoring import score_paths
    got, errs = [], []
    support = [str(pair_folder / "good" / f"g{i}.png") for i in range(2)]
    out = score_paths([pair_folder / "p1.png", pair_folder / "p1.ply"], "memory-bank", tmp_path / "o",
                      support=support, shots=2, params={"working_size": 64, "target_points": 1000},
                      on_line=lambda _: None, on_error=errs.append, fit_store=None, on_analysis=got.append)
    assert not errs and len(got) == 1 and len(out.lines) == 1
    assert got[0].sample.has_rgb and got[0].sample.has_points
