"""The detector lifecycle: fit states (save/load without pickle, reuse by content), instances that
are never hollow, rescore after a prompt edit, one scoring pipeline for GUI / eval / score, and
user errors as domain errors (one line, exit code 2)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from core import cli
from core.datasets import open_dataset
from core.detectors import create
from core.detectors.state import FitState, FitStateError, FitStore, support_hash
from core.errors import (InvalidParameterError, MMADError, NotFittedError, UnknownDetectorError,
                         UnknownParameterError)
from core.session import ProcessBackend, Session

from conftest import make_part


# ---------------------------------------------------------------------- FitState
def test_fit_returns_state_that_round_trips_through_disk(tmp_path):
    det = create("memory-bank", working_size=64, target_points=1000)
    sup = [make_part(i, size=48) for i in range(2)]
    state = det.fit(sup, class_name="disc")
    assert state.detector == "memory-bank" and state.class_name == "disc" and state.n_support == 2
    assert state.params == det.fit_params() and state.arrays
    state.save(tmp_path / "s")
    assert (tmp_path / "s.npz").exists() and (tmp_path / "s.json").exists()
    meta = json.loads((tmp_path / "s.json").read_text())
    assert meta["detector"] == "memory-bank" and meta["support_hash"] == state.support_hash
    back = FitState.load(tmp_path / "s")
    assert back.key == state.key
    other = create("memory-bank", working_size=64, target_points=1000)
    other.load_state(back)
    test = make_part(7, size=48, defect=True)
    a, b = det.score(test), other.score(test)
    np.testing.assert_array_equal(a.pixel_map, b.pixel_map)
    assert a.image_score == b.image_score


def test_saved_state_never_unpickles_and_refuses_tampering(tmp_path):
    det = create("memory-bank", working_size=64, target_points=1000)
    st = det.fit([make_part(0, size=48)], class_name="disc")
    st.save(tmp_path / "s")
    # an object array (which would need pickle) planted in the npz is refused, nothing is run
    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    np.savez(tmp_path / "s.npz", evil=np.array([Boom()], dtype=object))
    with pytest.raises(FitStateError):
        FitState.load(tmp_path / "s")
    assert not marker.exists()
    # changed numbers: checksum mismatch
    st.save(tmp_path / "t")
    arrays = dict(np.load(tmp_path / "t.npz"))
    k = next(iter(arrays))
    arrays[k] = arrays[k] + 1
    np.savez(tmp_path / "t.npz", **arrays)
    with pytest.raises(FitStateError, match="checksum"):
        FitState.load(tmp_path / "t")
    # another detector's state is refused by load_state
    st.detector = "other"
    with pytest.raises(FitStateError):
        det.load_state(st)


def test_load_state_refuses_other_fit_params():
    a = create("memory-bank", working_size=64, target_points=1000)
    st = a.fit([make_part(0, size=48)], class_name="disc")
    b = create("memory-bank", working_size=96, target_points=1000)
    with pytest.raises(FitStateError, match="fit parameters"):
        b.load_state(st)


def test_support_hash_is_by_content(tmp_path):
    from core.io import write_rgb
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    img = make_part(1).rgb
    write_rgb(a, img)
    write_rgb(b, img)
    assert support_hash([a]) == support_hash([b])          # same bytes, other name
    write_rgb(b, img[::-1].copy())
    assert support_hash([a]) != support_hash([b])
    assert support_hash([a, b]) != support_hash([b, a])    # order matters (bank construction)


def test_zero_shot_style_fit_gets_class_name(fake_detector):
    det = fake_detector()
    st = det.fit([make_part(0)], class_name="cookie")
    assert st.meta["class_name"] == "cookie" and st.class_name == "cookie"


def test_extract_before_fit_is_a_domain_error(fake_detector):
    det = fake_detector()
    with pytest.raises(NotFittedError) as ei:
        det.extract(make_part(0))
    assert isinstance(ei.value, RuntimeError) and isinstance(ei.value, MMADError)


# ---------------------------------------------------------------------- session
def test_session_reuses_saved_fit_by_content(fake_detector, memory_dataset, tmp_path):
    store = FitStore(tmp_path / "fits")
    s1 = Session(memory_dataset, fake_detector.id, fit_store=store)
    ref = memory_dataset.select(["disc"], split="test")[0]
    r1 = s1.analyze(ref)
    assert fake_detector.counters["fit"] == 1 and s1.fit_sources["disc"] == "fitted"
    # "reopening the dataset": a new session, same detector / params / support -> no refit
    s2 = Session(memory_dataset, fake_detector.id, fit_store=store)
    r2 = s2.analyze(ref)
    assert fake_detector.counters["fit"] == 1 and s2.fit_sources["disc"] == "saved"
    np.testing.assert_array_equal(r1.result.pixel_map, r2.result.pixel_map)
    # a fit-stage parameter change -> another key -> refit
    s2.set_params(bank_size=20)
    s2.analyze(ref)
    assert fake_detector.counters["fit"] == 2


def test_process_backend_instance_is_not_hollow(fake_detector, memory_dataset):
    backend = ProcessBackend()
    try:
        s = Session(memory_dataset, fake_detector.id, backend=backend, fit_store=None)
        ref = memory_dataset.select(["disc"], split="test")[0]
        s.analyze(ref)
        inst = s.instance("disc")
        assert inst.fitted and inst.state is not None and "mean" in inst.state.arrays
        np.testing.assert_allclose(inst._mean, inst.state.arrays["mean"])
        # after the worker restarts (stopped), the state is sent again: no refit
        pid = backend.pid
        backend.close()                 # the next call starts a new worker
        s.analyze(ref, force=True)
        assert backend.pid != pid and s.fit_sources["disc"] == "fitted"
    finally:
        backend.close()


def test_text_edit_rescores_without_extracting(fake_detector, memory_dataset):
    s = Session(memory_dataset, fake_detector.id, fit_store=None)
    ref = memory_dataset.select(["disc"], split="test")[0]
    first = s.analyze(ref)
    n_extract = fake_detector.counters["extract"]
    touched = s.set_params(templates=["a close-up photo of a {}."])
    assert touched == {"text"}
    assert s.result(ref) is None                 # needs a rescore (a worker job), not a re-fuse
    again = s.analyze(ref)
    assert fake_detector.counters["extract"] == n_extract      # the image side never reran
    assert fake_detector.counters["rescore"] == 1
    assert again.result.image_score != first.result.image_score  # the text factor changed the map


def test_one_pipeline_gui_eval_score_agree(small_demo, tmp_path):
    """The same sample through the GUI's session (process backend), eval and score."""
    ds = open_dataset(small_demo)
    cls = ds.classes[0]
    ref = ds.select([cls], split="test")[-1]
    params = {"working_size": 64, "target_points": 1500}
    gui = Session(ds, "memory-bank", params=params, backend=ProcessBackend(), fit_store=None)
    try:
        gui.set_support(cls, ds.support_refs(cls, 2))
        g = gui.analyze(ref)
    finally:
        gui.close()
    from core.evaluate import evaluate
    maps = tmp_path / "maps"
    evaluate(ds, "memory-bank", classes=[cls], shots=2, params=params, save_maps=maps, fit_store=None)
    import tifffile
    e_map = tifffile.imread(maps / cls / "test" / ref.label / f"{ref.id}.tiff")
    from core.scoring import score_paths
    got = []
    score_paths([ref.paths["rgb"]], "memory-bank", tmp_path / "out", shots=2, params=params,
                on_line=lambda _: None, on_error=lambda _: None, fit_store=None, on_analysis=got.append)
    assert len(got) == 1
    s = got[0]
    np.testing.assert_allclose(g.result.pixel_map, s.result.pixel_map, rtol=0, atol=1e-6)
    np.testing.assert_allclose(g.result.pixel_map, e_map, rtol=0, atol=1e-6)
    assert g.result.image_score == pytest.approx(s.result.image_score, abs=1e-6)


# ---------------------------------------------------------------------- errors
def test_domain_errors_are_builtin_errors_too():
    with pytest.raises(UnknownDetectorError) as ei:
        create("no-such-detector")
    assert isinstance(ei.value, KeyError) and "no-such-detector" in str(ei.value)
    assert not str(ei.value).startswith("'")          # no KeyError repr quoting
    with pytest.raises(UnknownParameterError):
        create("memory-bank", nonsense=1)
    with pytest.raises(InvalidParameterError) as ei:
        create("memory-bank", rgb_weight=7)
    assert isinstance(ei.value, ValueError)


@pytest.mark.parametrize("argv, needle", [
    (["eval", "--data", "demo", "--detector", "nope"], "unknown detector"),
    (["eval", "--data", "demo", "--param", "rgb_weight=7"], "rgb_weight"),
    (["eval", "--data", "demo", "--param", "alpha=7"], "rgb_weight"),      # the old name, read as today's
    (["eval", "--data", "demo", "--param", "sigma=wide"], "sigma"),
    (["eval", "--data", "demo", "--param", "nonsense=1"], "nonsense"),
    (["eval", "--data", "demo", "--shots", "0"], "--shots"),
    (["score", "x.png", "--shots", "-3"], "--shots"),
])
def test_cli_user_errors_are_one_line_exit_2(argv, needle, capsys, monkeypatch):
    monkeypatch.setattr("core.demo.ensure_demo", lambda *a, **k: Path("/nonexistent-demo"))
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and "Traceback" not in err
    assert len([l for l in err.splitlines() if l.startswith("error:")]) == 1


def test_fit_state_pickles_for_the_worker_but_files_never_use_pickle(tmp_path):
    det = create("memory-bank", working_size=64, target_points=1000)
    st = det.fit([make_part(0, size=48)], class_name="disc")
    assert pickle.loads(pickle.dumps(st)).key == st.key      # process pipe only
    st.save(tmp_path / "s")
    raw = (tmp_path / "s.npz").read_bytes()
    assert b"\x80\x04\x95" not in raw and b"cnumpy" not in raw  # no pickle stream inside the npz


def test_listing_detectors_and_their_params_loads_no_torch():
    """Cheap construction: the GUI process lists detectors, builds panels and creates instances
    without importing torch (or open_clip)."""
    import subprocess
    import sys
    code = ("import sys\nfrom core.detectors import available, create\n"
            "for d in available():\n    create(d).describe()\n"
            "print('torch' in sys.modules, 'open_clip' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.strip().splitlines()[-1] == "False False"
