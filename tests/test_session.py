"""Headless tests of the session model (core/session.py): caching, invalidation, batch runs."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from core.errors import Cancelled, InputError
from core.sample import Sample
from core.session import (ByteLRU, Session, display_image, pixel_to_point, point_to_pixel, score_range,
                          thumbnail)
from conftest import FakeDetector, MemoryDataset, make_part


@pytest.fixture
def session(fake_detector, memory_dataset):
    return Session(memory_dataset, "fake-test")


def test_results_match_direct_detector_call(session, memory_dataset):
    ref = memory_dataset.select(["disc"], split="test", label="blob")[0]
    a = session.analyze(ref)
    # the same computation by hand: fit on the class's default support, then score
    det = FakeDetector()
    det.fit([memory_dataset.load(r) for r in memory_dataset.support_refs("disc", 2)])
    direct = det.score(memory_dataset.load(ref))
    np.testing.assert_allclose(a.result.pixel_map, direct.pixel_map, equal_nan=True)
    assert a.result.image_score == pytest.approx(direct.image_score)
    rec = session.record(ref)
    assert rec.image_score == pytest.approx(direct.image_score)
    assert rec.anomalous == direct.is_anomalous and not rec.stale
    # the point scores are the fused map at the valid points
    s = memory_dataset.load(ref)
    assert a.result.point_scores.shape == (s.n_points,)


def test_fusion_change_refuses_without_extracting(session, memory_dataset):
    ref = memory_dataset.select(["disc"], split="test", label="blob")[0]
    before = session.analyze(ref).result
    n_extract, n_fit = FakeDetector.counters["extract"], FakeDetector.counters["fit"]
    assert session.set_params(alpha=1.0) == {"fusion"}
    after = session.result(ref)
    assert FakeDetector.counters["extract"] == n_extract and FakeDetector.counters["fit"] == n_fit
    assert not np.allclose(np.nan_to_num(before.pixel_map), np.nan_to_num(after.pixel_map))
    # alpha = 1: the fused map is the RGB component (times the prompt factor)
    comps = session.components_of(ref)
    k = comps.extra["text"]
    np.testing.assert_allclose(after.pixel_map, comps.maps["rgb"] * k, rtol=1e-5)
    assert session.record(ref).image_score == pytest.approx(after.image_score)
    # analysing again uses the cache
    session.analyze(ref)
    assert FakeDetector.counters["extract"] == n_extract


def test_score_and_text_changes_reextract_but_keep_fit(session, memory_dataset):
    ref = memory_dataset.select(["disc"], split="test")[0]
    session.analyze(ref)
    n_fit = FakeDetector.counters["fit"]
    assert session.set_params(gain=2.0) == {"score"}
    assert session.result(ref) is None and session.record(ref).stale
    session.analyze(ref)
    assert FakeDetector.counters["fit"] == n_fit            # no refit for a score-stage change
    n_text = FakeDetector.counters["text"]
    assert session.set_params(normal_states="spotless {}\nflawless {}") == {"text"}
    assert session.result(ref) is None
    a = session.analyze(ref)
    assert FakeDetector.counters["fit"] == n_fit            # still no refit
    assert FakeDetector.counters["text"] == n_text + 1       # the text cache was rebuilt once
    assert session.params["normal_states"] == ("spotless {}", "flawless {}")
    assert not a.stale


def test_fit_change_and_support_change(session, memory_dataset):
    disc = memory_dataset.select(["disc"], split="test")[0]
    ring = memory_dataset.select(["ring"], split="test")[0]
    session.analyze(disc)
    session.analyze(ring)
    assert FakeDetector.counters["fit"] == 2                 # one fit per class
    # changing the support of one class refits that class only
    cands = session.support_candidates("disc")
    assert all(r.is_good and r.split != "test" for r in cands)
    assert session.set_support("disc", cands[-1:]) is True
    assert session.result(disc) is None and session.result(ring) is not None
    assert not session.is_fitted("disc") and session.is_fitted("ring")
    session.analyze(disc)
    assert FakeDetector.counters["fit"] == 3
    assert session.set_support("disc", cands[-1:]) is False  # unchanged
    # a fit-stage parameter refits every class
    assert session.set_params(bank_size=20) == {"fit"}
    assert not session.is_fitted("disc") and not session.is_fitted("ring")
    assert session.result(ring) is None


def test_invalid_param_changes_nothing(session):
    with pytest.raises(ValueError, match="alpha"):
        session.set_params(gain=3.0, alpha=7.0)
    assert session.params["gain"] == 1.0


def test_batch_skips_corrupt_and_reports(fake_detector, tmp_path):
    ds = MemoryDataset(tmp_path, classes=("disc",), corrupt={"disc/test/blob/000"})
    s = Session(ds, "fake-test")
    errors = []
    refs = ds.select(split="test")
    summary = s.run(refs, on_error=lambda ref, err: errors.append((ref.key, str(err))))
    assert summary.skipped and summary.skipped[0][0] == "disc/test/blob/000"
    assert "000.png" in summary.skipped[0][1] and "corrupt" in summary.skipped[0][1]
    assert len(summary.done) == len(refs) - 1 and not summary.cancelled
    assert errors[0][0] == "disc/test/blob/000"
    assert s.record("disc/test/blob/000").error is not None


def test_cancel_stops_quickly(fake_detector, memory_dataset):
    s = Session(memory_dataset, "fake-test", params={"delay": 5.0})
    flag = threading.Event()
    out = {}

    def work():
        t0 = time.perf_counter()
        out["summary"] = s.run(memory_dataset.select(split="test"), cancel=flag.is_set)
        out["t"] = time.perf_counter() - t0

    th = threading.Thread(target=work)
    th.start()
    time.sleep(0.3)
    t_cancel = time.perf_counter()
    flag.set()
    th.join(5)
    assert not th.is_alive()
    assert time.perf_counter() - t_cancel < 1.0
    assert out["summary"].cancelled and not out["summary"].done


def test_analyze_cancel_raises(fake_detector, memory_dataset):
    s = Session(memory_dataset, "fake-test", params={"delay": 1.0})
    with pytest.raises(Cancelled):
        s.analyze(memory_dataset.select(split="test")[0], cancel=lambda: True)


def test_support_required(fake_detector, tmp_path):
    ds = MemoryDataset(tmp_path, classes=("disc",), n_train=0)
    s = Session(ds, "fake-test")
    with pytest.raises(InputError, match="support"):
        s.analyze(ds.select(split="test")[0])


def test_stale_result_when_param_changes_during_extract(fake_detector, memory_dataset):
    s = Session(memory_dataset, "fake-test", params={"delay": 0.3})
    ref = memory_dataset.select(split="test")[0]
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("a", s.analyze(ref)))
    th.start()
    time.sleep(0.1)
    s.set_params(gain=3.0)
    th.join(5)
    assert out["a"].stale and s.result(ref) is None and s.record(ref).stale


def test_byte_lru_evicts_by_size():
    lru = ByteLRU(max_bytes=3000)
    for i in range(5):
        lru.put(str(i), np.zeros(1000, np.uint8))
    assert lru.keys() == ["2", "3", "4"] and lru.total_bytes == 3000
    lru.get("2")
    lru.put("5", np.zeros(1000, np.uint8))
    assert lru.keys() == ["4", "2", "5"]
    lru.put("big", np.zeros(10_000, np.uint8))  # the newest item is kept even when too big
    assert lru.keys() == ["big"]


def test_component_cache_is_bounded(fake_detector, memory_dataset):
    s = Session(memory_dataset, "fake-test", component_cache_bytes=1)
    refs = memory_dataset.select(split="test")[:3]
    for r in refs:
        s.analyze(r)
    assert len(s.components) == 1 and s.result(refs[-1]) is not None and s.result(refs[0]) is None
    # a fusion change cannot re-fuse the evicted samples: their scores are marked stale
    s.set_params(alpha=0.9)
    assert s.record(refs[0]).stale and not s.record(refs[-1]).stale


def test_pixel_point_mapping_roundtrip():
    s = make_part(1, 16)
    idx = s.valid_index()
    for i in (0, 5, len(idx) - 1):
        r, c = point_to_pixel(s, i)
        assert pixel_to_point(s, r, c) == i
        np.testing.assert_array_equal(s.valid_points()[i], s.points[r, c])
    assert pixel_to_point(s, 0, 0) is None          # a missing point
    assert pixel_to_point(s, 99, 0) is None
    unorg = Sample("u", points=s.valid_points())
    assert pixel_to_point(unorg, 3, 3) is None and point_to_pixel(unorg, 0) is None


def test_display_image_and_thumbnail(memory_dataset):
    s = make_part(2, 24, rgb=False)
    img = display_image(s)
    assert img.shape == (24, 24, 3) and img.dtype == np.uint8 and img.std() > 0
    assert display_image(Sample("x", points=s.valid_points())) is None
    ref = memory_dataset.refs[0]
    th = thumbnail(memory_dataset, ref, 40, sample=memory_dataset.load(ref))
    assert th.shape == (40, 40, 3)
    cloud = Sample("c", points=np.random.default_rng(0).normal(size=(500, 3)).astype(np.float32))
    th2 = thumbnail(memory_dataset, ref, 32, sample=cloud)
    assert th2.shape == (32, 32, 3) and (th2 != 40).any()


def test_score_range():
    assert score_range(None) == (0.0, 1.0)
    from core.detectors.base import Components, DetectorResult
    m = np.linspace(0, 4, 100, dtype=np.float32).reshape(10, 10)
    r = DetectorResult(Components(), m, None, 4.0, threshold=1.5)
    assert score_range(r) == (0.0, 3.0)
    r2 = DetectorResult(Components(), m, None, 4.0, threshold=None)
    lo, hi = score_range(r2)
    assert lo == pytest.approx(np.percentile(m, 1)) and hi == pytest.approx(np.percentile(m, 99.5))


def test_real_detector_on_demo(small_demo):
    """The real memory-bank detector through the session on the small demo data."""
    pytest.importorskip("core.datasets", reason="loaders not available")
    s = Session(detector="memory-bank")
    s.open(small_demo)
    cls = s.classes[0]
    s.set_support(cls, s.support_candidates(cls)[:1])          # one shot keeps the test fast
    tests = [r for r in s.refs if r.split == "test"]
    tests = [r for r in tests if r.is_good][:1] + [r for r in tests if not r.is_good][:2]
    summary = s.run(tests)
    assert not summary.skipped and len(summary.done) == len(tests)
    for r in tests:
        rec = s.record(r)
        assert rec.image_score is not None and np.isfinite(rec.image_score)
        res = s.result(r)
        sample = s.load(r)
        assert res.pixel_map.shape == sample.grid_shape
        assert res.point_scores.shape == (sample.n_points,)
    # re-fusion with another weight changes the maps but runs no extraction
    fusion = [p for p in s.detector.fusion_params() if p.kind == "float" and p.name != "threshold"]
    assert fusion, "the memory-bank detector declares fusion weights"
    p = fusion[0]
    r = [r for r in tests if not r.is_good][0]
    before = s.result(r).pixel_map.copy()
    new = p.max if p.max is not None and p.default != p.max else (p.min if p.min is not None else p.default + 1)
    s.set_params(**{p.name: new})
    assert s.result(r) is not None
    assert not np.allclose(np.nan_to_num(before), np.nan_to_num(s.result(r).pixel_map))


# ---------------------------------------------------------------------- the worker-process backend
@pytest.fixture
def process_session(fake_detector, memory_dataset):
    from core.session import ProcessBackend
    s = Session(memory_dataset, "fake-test", backend=ProcessBackend())
    yield s
    s.close()


def test_process_backend_matches_thread_backend(process_session, memory_dataset):
    ref = memory_dataset.select(["disc"], split="test", label="blob")[0]
    a = process_session.analyze(ref)
    b = Session(memory_dataset, "fake-test").analyze(ref)
    np.testing.assert_allclose(a.result.pixel_map, b.result.pixel_map, equal_nan=True)
    assert a.result.image_score == pytest.approx(b.result.image_score)
    pid = process_session.backend.pid
    assert pid is not None and pid != os.getpid()
    # fusion stays in this process: no round trip to the worker
    process_session.set_params(alpha=1.0)
    assert process_session.result(ref) is not None and process_session.backend.pid == pid
    # a fit-stage change refits in the worker; a text change does not
    assert process_session.set_params(object_name="disc") == {"text"}
    assert process_session.is_fitted("disc")
    process_session.analyze(ref)


def test_process_backend_cancel_and_crash(fake_detector, memory_dataset):
    from core.session import DetectorProcessError, ProcessBackend
    ref = memory_dataset.select(["disc"], split="test")[0]
    s = Session(memory_dataset, "fake-test", backend=ProcessBackend())
    try:
        s.analyze(ref)                                  # start + fit the worker
        for params in ({"delay": 5.0}, {"delay": 5.0, "ignore_cancel": True}):
            s.set_params(**params)
            flag = threading.Event()
            threading.Timer(0.3, flag.set).start()
            t0 = time.perf_counter()
            with pytest.raises(Cancelled):
                s.analyze(ref, cancel=flag.is_set)
            assert time.perf_counter() - t0 - 0.3 < 1.0  # cooperative or killed: within a second
        s.set_params(delay=0.0, ignore_cancel=False, crash=True)
        with pytest.raises(DetectorProcessError, match="stopped unexpectedly"):
            s.analyze(ref)
        s.set_params(crash=False)
        assert s.analyze(ref).result is not None        # the worker restarts (and refits)
    finally:
        s.close()


# ---------------------------------------------------------------------- checks of what callers ask
def test_saved_params_keep_declared_valid_values_and_say_what_was_dropped(fake_detector):
    from core.session import saved_params
    usable, dropped = saved_params(FakeDetector, {"alpha": "0.25", "gain": 99.0, "renamed_long_ago": 1, "bank_size": 7.6})
    assert usable == {"alpha": 0.25, "bank_size": 8}
    assert len(dropped) == 1 and "gain" in dropped[0]


def test_set_detector_drops_invalid_saved_values_but_set_params_refuses_them(fake_detector, memory_dataset, caplog):
    from core.errors import InvalidParameterError
    s = Session(memory_dataset)
    with caplog.at_level("WARNING", logger="core.session.session"):
        s.set_detector("fake-test", alpha=0.2, gain=99.0, gone=1)
    assert s.params["alpha"] == 0.2 and s.params["gain"] == 1.0
    assert any("gain" in r.getMessage() for r in caplog.records)
    with pytest.raises(InvalidParameterError):
        s.set_params(alpha=0.4, gain=99.0)
    assert s.params["alpha"] == 0.2          # a bad value changes nothing


def test_support_shots_is_the_one_check_of_shots(fake_detector):
    from core.errors import UsageError
    from core.session import support_shots
    assert support_shots("fake-test", 3) == 3
    with pytest.raises(UsageError, match="--shots must be at least 1 for detector 'fake-test'"):
        support_shots("fake-test", 0)
