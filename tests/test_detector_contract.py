"""The detector contract, run on every registered detector (anomalib's model integration test is the
pattern): declaration -> fit -> state round trip through a file -> extract -> fuse -> decision
threshold -> calibration (where declared) -> the Session.

Nothing here names a detector: a new package under ``core.detectors`` is picked up by discovery and
must pass.  Weight-dependent detectors run on the tiny random CLIP (their declared ``backbone`` /
``weights`` choices); trained detectors on a checkpoint trained here for two epochs.  Random weights
prove the plumbing, never quality.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from core.detectors import registry
from core.detectors.base import STAGES, Capabilities, Components, Detector, DetectorResult, Needs
from core.detectors.state import FitState
from core.errors import NotFittedError
from core.session import Session

from conftest import MemoryDataset

DETECTORS = registry.available()


def test_discovery_finds_every_detector_package_without_a_list():
    import pkgutil

    import core.detectors as pkg
    packages = {m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg}
    assert not registry.unavailable(), registry.unavailable()
    owners = {registry.get(i).__module__.split(".")[2] for i in DETECTORS}
    assert owners == packages          # every package registers at least one detector, and only packages do
    assert len(DETECTORS) >= 5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return MemoryDataset(tmp_path_factory.mktemp("contract") / "mem", n_train=4, n_good=1, n_bad=1, size=48)


@pytest.fixture(scope="module")
def checkpoints(dataset, tmp_path_factory):
    """One two-epoch checkpoint per trainable detector (found from the declaration)."""
    from core.features.grid import FeatureConfig
    from core.training import train
    out = {}
    d = tmp_path_factory.mktemp("ck")
    for i in DETECTORS:
        if registry.get(i).trainable():
            out[i] = str(train(dataset, i, epochs=2, out=d / i, features=FeatureConfig(working_size=64, stride=4),
                               batch_size=128).path)
    return out


def _params(cls: type[Detector], checkpoints: dict[str, str]) -> dict:
    """Parameters that make a detector runnable here, read from its own declaration."""
    names = {p.name: p for p in cls.params}
    params = {}
    if "backbone" in names and "tiny-test" in names["backbone"].choices:
        params["backbone"] = "tiny-test"
    if "weights" in names and cls.needs.weights:
        params["weights"] = "random"
    if cls.trainable():
        params["checkpoint"] = checkpoints[cls.id]
    return params


@pytest.mark.parametrize("did", DETECTORS)
def test_declaration_is_complete(did):
    cls = registry.get(did)
    assert cls.id == did and cls.name and cls.description
    assert isinstance(cls.needs, Needs) and isinstance(cls.capabilities, Capabilities)
    assert cls.needs.rgb in ("required", "optional", "unused") and cls.needs.points in ("required", "optional", "unused")
    assert cls.trainable() == cls.needs.training
    seen = set()
    for p in cls.params:
        assert p.name not in seen and p.stage in STAGES and p.help or p.label, p.name
        seen.add(p.name)
        assert p.coerce(p.default) == p.coerce(p.coerce(p.default))      # defaults are valid values
    json.dumps(cls.describe(), default=str)
    # calibrating detectors declare what they calibrate on and the hook to do it
    if cls.capabilities.calibrates:
        assert cls.calibrate is not Detector.calibrate and "threshold" in names_of(cls)


def names_of(cls) -> set[str]:
    return {p.name for p in cls.params}


@pytest.mark.parametrize("did", DETECTORS)
def test_fit_state_round_trip_extract_fuse_and_threshold(did, dataset, checkpoints, tmp_path):
    cls = registry.get(did)
    params = _params(cls, checkpoints)
    det = registry.create(did, **params)
    assert not det.fitted
    cname = "disc"
    test_refs = dataset.select([cname], split="test")
    sample = dataset.load(next(r for r in test_refs if not r.is_good))
    with pytest.raises(NotFittedError):
        det.score(sample)
    assert det.decision_threshold() is None or not cls.capabilities.calibrates or det["threshold"] > 0

    support = [dataset.load(r) for r in dataset.support_refs(cname, max(cls.needs.default_support, cls.needs.support, 2))]
    state = det.fit(support, class_name=cname)
    assert det.fitted and isinstance(state, FitState) and state.detector == did and state.class_name == cname

    comps = det.extract(sample)
    assert isinstance(comps, Components)
    h, w = sample.grid_shape
    for name, m in comps.maps.items():
        assert m.shape == (h, w), name
    n_pts = sample.n_points
    for name, v in comps.point_maps.items():
        assert v.shape == (n_pts,), name

    res = det.fuse(comps)
    assert isinstance(res, DetectorResult) and math.isfinite(res.image_score)
    assert res.pixel_map is not None and res.pixel_map.shape == (h, w)
    if res.point_scores is not None:
        assert res.point_scores.shape == (n_pts,)
    # the result's threshold is the declared decision threshold, and the decision follows it
    assert res.threshold == det.decision_threshold()
    if res.threshold is not None:
        assert res.is_anomalous == (res.image_score >= res.threshold)
    # fuse is pure: the same components give the same result; a fusion override leaves the detector as it was
    again = det.fuse(comps)
    np.testing.assert_array_equal(np.nan_to_num(again.pixel_map, nan=-1), np.nan_to_num(res.pixel_map, nan=-1))
    before = det.get_params()
    if "threshold" in names_of(cls):
        typed = det.fuse(comps, {"threshold": 0.123})
        assert typed.threshold == pytest.approx(0.123) and det.get_params() == before

    # the fit state survives a file round trip into a fresh instance, which then gives the same result
    saved = FitState.load(state.save(tmp_path / "fit"))
    other = registry.create(did, **params)
    other.load_state(saved)
    res2 = other.fuse(other.extract(sample))
    np.testing.assert_allclose(np.nan_to_num(res2.pixel_map, nan=-1), np.nan_to_num(res.pixel_map, nan=-1),
                               rtol=1e-4, atol=1e-5)
    assert res2.image_score == pytest.approx(res.image_score, rel=1e-4, abs=1e-6)
    assert res2.threshold == pytest.approx(res.threshold) if res.threshold is not None else res2.threshold is None

    if cls.capabilities.calibrates:
        goods = [dataset.load(r) for r in dataset.select([cname], split="test", label="good")]
        st = det.calibrate([det.extract(s) for s in goods])
        assert isinstance(st, FitState) and st.key == state.key
        t = det.decision_threshold()
        assert t is not None and math.isfinite(t) and t > 0
        assert det.fuse(comps).threshold == t


@pytest.mark.parametrize("did", DETECTORS)
def test_session_results_are_decided_at_the_sessions_per_class_threshold(did, dataset, checkpoints, tmp_path):
    cls = registry.get(did)
    s = Session(dataset, detector=did, params=_params(cls, checkpoints), fit_store=tmp_path / "fits")
    refs = [r for r in dataset.refs if r.split == "test"]
    summary = s.run(refs)
    assert not summary.skipped, summary.skipped
    for c in dataset.classes:
        t = s.decision_threshold(c)
        for r in refs:
            if r.class_name == c:
                rec = s.record(r)
                assert rec.threshold == t and (t is None or rec.anomalous == (rec.image_score >= t))
    s.close()
