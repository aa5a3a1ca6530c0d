"""Shared test configuration and fixtures.

* Qt runs on the ``offscreen`` platform unless a test asks otherwise (set before any Qt import).
* ``MMAD_CACHE`` and ``MMAD_DATA`` point to per-session temporary directories so no test touches the
  user's cache (demo data, older review journals) or data folder (projects of datasets whose folder
  cannot hold one).
* ``FakeDetector`` (registered only by the ``fake_detector`` fixture) is a small, fast detector with
  a fusion weight ``alpha``, text prompts (``needs.text_prompts``), a fit on the support set, and a
  slow ``extract`` that checks ``cancel`` every 10 ms: for GUI and session tests that must not wait
  for a real detector.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MMAD_CACHE", tempfile.mkdtemp(prefix="mmad-test-cache-"))
os.environ.setdefault("MMAD_DATA", tempfile.mkdtemp(prefix="mmad-test-data-"))
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

# A torch optimiser imports torch._dynamo, which loads triton and its own LLVM; loaded after the GL
# stack (Mesa's LLVM, pulled in by the first offscreen render of a GUI test) that segfaults the
# process, so load it before any GUI test renders.  (The app trains in a child process only.)
try:
    import torch._dynamo  # noqa: F401,E402
except Exception:  # noqa: BLE001 - torch builds without dynamo/triton need nothing here
    pass

import numpy as np
import pytest

from core.datasets.base import Dataset, SampleRef
from core.detectors import registry
from core.detectors.base import (STAGE_FIT, STAGE_FUSION, STAGE_SCORE, STAGE_TEXT, Components, Detector,
                                 DetectorResult, Needs, Param)
from core.errors import SampleLoadError
from core.sample import Sample, map_to_points


# ---------------------------------------------------------------------- a fake detector
class FakeDetector(Detector):
    """Deterministic toy detector with real dependencies on support, prompts and fusion params.

    * fit: the mean colour of the support images (``fit_calls`` counts calls).
    * text: a "prompt embedding" derived from the prompt strings, cached until a text param changes
      (``text_encodes`` counts encodings).
    * extract: ``rgb`` map = distance of each pixel's colour to the support mean; ``geometry`` map =
      |z - median z| on valid points (NaN elsewhere); sleeps ``delay`` seconds in 10 ms steps,
      checking ``cancel`` each step (``extract_calls`` counts calls).
    * fuse: ``alpha * rgb + (1 - alpha) * geometry`` (NaN-aware), scaled by the prompt factor;
      ``fuse_calls`` counts calls.
    """

    id = "fake-test"
    name = "Fake (tests)"
    description = "A fast deterministic detector used by the test-suite."
    needs = Needs(rgb="optional", points="optional", text_prompts=True, support=1, default_support=2)
    params = (
        Param("alpha", 0.5, "float", "α (RGB weight)", 0.0, 1.0, 0.01, stage=STAGE_FUSION),
        Param("threshold", 1.0, "float", "threshold", 0.0, 10.0, 0.01, stage=STAGE_FUSION),
        Param("gain", 1.0, "float", "gain", 0.1, 10.0, 0.1, stage=STAGE_SCORE),
        Param("delay", 0.0, "float", "delay (s)", 0.0, 30.0, 0.1, stage=STAGE_SCORE),
        Param("bank_size", 10, "int", "bank size", 1, 100, 1, stage=STAGE_FIT),
        Param("normal_states", ("flawless {}", "perfect {}"), "textlist", stage=STAGE_TEXT),
        Param("anomalous_states", ("damaged {}", "{} with defect"), "textlist", stage=STAGE_TEXT),
        Param("templates", ("a photo of a {}.",), "textlist", stage=STAGE_TEXT),
        Param("object_name", "object", "text", stage=STAGE_TEXT),
        Param("mode", "fast", "choice", choices=("fast", "precise"), stage=STAGE_SCORE),
        Param("use_geometry", True, "bool", stage=STAGE_SCORE),
        Param("ignore_cancel", False, "bool", stage=STAGE_SCORE),   # a detector that never checks cancel
        Param("crash", False, "bool", stage=STAGE_SCORE),           # exits its process in extract
    )

    counters = {"fit": 0, "extract": 0, "fuse": 0, "text": 0, "rescore": 0}

    def __init__(self, device: str = "cpu", **params):
        self._text = None
        self._mean = None
        super().__init__(device, **params)

    def on_invalidate(self, stages):
        if STAGE_TEXT in stages:
            self._text = None

    def _text_factor(self) -> float:
        if self._text is None:
            FakeDetector.counters["text"] += 1
            words = sum(len(s) for k in ("normal_states", "anomalous_states", "templates") for s in self[k])
            self._text = 1.0 + (words + len(self["object_name"])) % 7 / 100.0
        return self._text

    def build_state(self, support, class_name, progress=None, cancel=None):
        FakeDetector.counters["fit"] += 1
        cols = [s.rgb.reshape(-1, 3).mean(0) for s in support if s.rgb is not None]
        return {"mean": np.mean(cols, 0) if cols else np.zeros(3)}, {"class_name": class_name}

    def restore_state(self, state):
        self._mean = np.asarray(state.arrays["mean"], np.float64)

    def rescore(self, components, progress=None, cancel=None):
        # text-dependent part re-derived from the cached components only (no extract)
        FakeDetector.counters["rescore"] += 1
        components.extra["text"] = self._text_factor()
        return components

    def extract(self, sample, progress=None, cancel=None):
        self.require_fitted()
        FakeDetector.counters["extract"] += 1
        if self["crash"]:
            os._exit(3)
        if self["ignore_cancel"]:
            time.sleep(self["delay"])
        steps = 0 if self["ignore_cancel"] else int(round(self["delay"] / 0.01))
        t_end = time.perf_counter() + self["delay"]
        for i in range(steps):
            self.check_cancel(cancel)
            self.report(progress, i / max(steps, 1), "working")
            time.sleep(max(0.0, min(0.01, t_end - time.perf_counter())))
        self.check_cancel(cancel)
        maps = {}
        shape = sample.grid_shape
        if sample.rgb is not None:
            d = np.abs(sample.rgb.astype(np.float32) - self._mean[None, None]).mean(-1) / 64.0
            maps["rgb"] = (d * self["gain"]).astype(np.float32)
        point_maps = {}
        if sample.organized and self["use_geometry"]:
            z = sample.points[..., 2]
            g = np.abs(z - np.nanmedian(z)).astype(np.float32)
            maps["geometry"] = g * self["gain"]
        elif sample.has_points and not sample.organized:
            pts = sample.valid_points()
            point_maps["geometry"] = np.abs(pts[:, 2] - np.median(pts[:, 2])).astype(np.float32)
        return Components(maps=maps, point_maps=point_maps, shape=shape, valid=sample.valid_mask(),
                          extra={"sample": sample, "text": self._text_factor()})

    def fuse(self, components, params=None):
        FakeDetector.counters["fuse"] += 1
        p = self.merged_params(params)
        a = p["alpha"]
        sample = components.extra["sample"]
        k = components.extra["text"]
        pixel = None
        if components.maps:
            num = np.zeros(components.shape, np.float32)
            den = np.zeros(components.shape, np.float32)
            for name, w in (("rgb", a), ("geometry", 1 - a)):
                m = components.maps.get(name)
                if m is None or w <= 0:
                    continue
                ok = np.isfinite(m)
                num += np.where(ok, m, 0) * w
                den += ok * w
            pixel = np.where(den > 0, num / np.maximum(den, 1e-12), np.nan).astype(np.float32) * k
        points = None
        if sample.organized and pixel is not None:
            points = map_to_points(pixel, sample)
        elif "geometry" in components.point_maps:
            points = components.point_maps["geometry"] * k
        vals = pixel if pixel is not None else points
        score = float(np.nanmax(vals)) if vals is not None and np.isfinite(vals).any() else float("nan")
        return DetectorResult(components, pixel, points, score, p["threshold"], dict(p))


@pytest.fixture
def fake_detector():
    """Register :class:`FakeDetector` for one test; reset its call counters."""
    registry.discover()
    registry.register(FakeDetector)
    for k in FakeDetector.counters:
        FakeDetector.counters[k] = 0
    yield FakeDetector
    registry.unregister(FakeDetector.id)


# ---------------------------------------------------------------------- an in-memory dataset
def make_part(seed: int, size: int = 32, defect: bool = False, rgb: bool = True, points: bool = True) -> Sample:
    """A synthetic part: a grey disc on a dark plane, an organized cloud with a dome; a defect is a
    bright red blob on the disc and a bump in the cloud."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    c = size / 2
    r = np.hypot(yy - c, xx - c)
    disc = r < size * 0.35
    img = np.full((size, size, 3), 60, np.float32)
    img[disc] = 150
    img += rng.normal(0, 3, img.shape)
    z = 300 - np.where(disc, 5 * np.cos(np.clip(r / (size * 0.35), 0, 1) * np.pi / 2), 0)
    gt = np.zeros((size, size), bool)
    if defect:
        blob = np.hypot(yy - c - size * 0.12, xx - c) < size * 0.08
        img[blob] = (230, 40, 40)
        z = z - blob * 3.0
        gt = blob
    pts = np.stack([xx - c, yy - c, z], -1).astype(np.float32)
    pts[0, :4] = np.nan  # a few missing points
    return Sample(id=f"{seed:03d}", class_name="", label="", split="",
                  rgb=np.clip(img, 0, 255).astype(np.uint8) if rgb else None,
                  points=pts if points else None, gt_mask=gt if defect else None)


class MemoryDataset(Dataset):
    """A dataset whose samples are made in memory; ref ids in ``corrupt`` fail to load."""

    layout = "memory"

    def __init__(self, root: Path, classes=("disc", "ring"), n_train=3, n_good=2, n_bad=2, size=32,
                 corrupt=(), rgb=True, points=True):
        refs = []
        self._make = {}
        seed = 0
        for cls in classes:
            for split, label, n in (("train", "good", n_train), ("test", "good", n_good), ("test", "blob", n_bad)):
                for i in range(n):
                    seed += 1
                    where = Path(root) / cls / split / label
                    paths = {"rgb": where / f"{i:03d}.png"}
                    if points:
                        paths["points"] = where / f"{i:03d}.ply"
                    ref = SampleRef(id=f"{i:03d}", class_name=cls, split=split, label=label, paths=paths)
                    refs.append(ref)
                    self._make[ref.key] = (seed, label != "good")
        super().__init__(root, refs)
        self.size = size
        self.corrupt = set(corrupt)
        self.rgb, self.points = rgb, points
        self.loads = 0
        self._lock = threading.Lock()

    def load(self, ref: SampleRef) -> Sample:
        with self._lock:
            self.loads += 1
        if ref.key in self.corrupt:
            raise SampleLoadError(ref.paths["rgb"], "truncated or corrupt PNG")
        seed, bad = self._make[ref.key]
        s = make_part(seed, self.size, defect=bad, rgb=self.rgb, points=self.points)
        s.id, s.class_name, s.split, s.label = ref.id, ref.class_name, ref.split, ref.label
        s.paths = dict(ref.paths)
        return s


@pytest.fixture
def memory_dataset(tmp_path):
    return MemoryDataset(tmp_path / "mem")


# ---------------------------------------------------------------------- the demo data (small)
@pytest.fixture(scope="session")
def small_demo(tmp_path_factory):
    """A small demo dataset (1 class, 96 px) generated once per test session."""
    demo = pytest.importorskip("core.demo", reason="core.demo (the demo generator) is not available")
    out = tmp_path_factory.mktemp("demo") / "demo"
    cls = demo.DEMO_CLASSES[0]
    return demo.generate_demo(out, classes=[cls], n_train=3, n_val=0, n_test_good=2, n_per_defect=1, size=96)
