"""Saved fits that load but are wrong: the declared structure of a fit state (core.detectors.schema)
is checked in load_state, a fit that fails it is refused naming its file and the class is refitted;
a zip-bomb .npz is refused before anything is decompressed; a NaN score is never a result."""
from __future__ import annotations

import json
import logging
import resource
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.detectors import create
from core.detectors.schema import ArraySpec, StateSchema
from core.detectors.state import FitState, FitStateError, FitStore, arrays_hash
from core.errors import InvalidResultError
from core.session import Session

from conftest import MemoryDataset, make_part

FAST = dict(working_size=64, target_points=1000)


def _state(arrays, meta=None, source=None) -> FitState:
    return FitState(detector="d", version="1", arrays=arrays, meta=meta or {}, source=source)


# ---------------------------------------------------------------------- the declaration
SCHEMA = StateSchema(arrays=(
    ArraySpec(r"(?P<m>a|b)\.features", shape=("B{m}", "K"), required=True),
    ArraySpec(r"(?P<m>a|b)\.mean", shape=("K",), required=True),
    ArraySpec(r"(?P<m>a|b)\.strata", kinds="iu", shape=("B{m}",)),
    ArraySpec(r"maps\.(?P<c>a|b)", shape=(None, "gh", "gw"), finite=False),
), members={"m": "modalities"})


def _good():
    return {"a.features": np.zeros((5, 3), np.float32), "a.mean": np.zeros(3, np.float32),
            "a.strata": np.zeros(5, np.int8), "b.features": np.ones((7, 3), np.float32),
            "b.mean": np.ones(3, np.float32), "maps.a": np.full((2, 4, 6), np.nan, np.float32)}


def test_a_state_that_matches_its_declaration_passes():
    SCHEMA.check(_state(_good(), {"modalities": ["a", "b"]}), {"gh": 4, "gw": 6})
    SCHEMA.check(_state({k: v for k, v in _good().items() if not k.startswith("b.")}, {"modalities": ["a"]}))


@pytest.mark.parametrize("change,words", [
    (lambda a: a.pop("a.mean"), ["array 'a.mean' is missing"]),                       # a member's array
    (lambda a: [a.pop("b.features"), a.pop("b.mean")], ["'b.features' is missing"]),  # listed in the meta
    (lambda a: a.__setitem__("a.features", np.zeros((5, 4), np.float32)), ["'a.features'", "K = 4", "K = 3"]),
    (lambda a: a.__setitem__("a.features", np.zeros(15, np.float32)), ["'a.features'", "shape (15,)", "2 dimension"]),
    (lambda a: a.__setitem__("a.strata", np.zeros(6, np.int8)), ["'a.strata'", "Ba = 6", "Ba = 5"]),
    (lambda a: a.__setitem__("a.strata", np.zeros(5, np.float32)), ["'a.strata'", "data type float32", "integer"]),
    (lambda a: a.__setitem__("a.features", np.full((5, 3), np.nan, np.float32)), ["'a.features'", "15 NaN"]),
    (lambda a: a.__setitem__("b.mean", np.array([1.0, np.inf, 0.0], np.float32)), ["'b.mean'", "1 NaN or infinite"]),
    (lambda a: a.__setitem__("maps.a", np.zeros((2, 5, 6), np.float32)), ["'maps.a'", "gh = 5", "gh = 4"]),
    (lambda a: a.__setitem__("extra", np.zeros(3)), ["'extra'", "does not use"]),
])
def test_each_departure_from_the_declaration_is_named(tmp_path, change, words):
    arrays = _good()
    change(arrays)
    with pytest.raises(FitStateError) as ei:
        SCHEMA.check(_state(arrays, {"modalities": ["a", "b"]}, source=tmp_path / "fit.npz"), {"gh": 4, "gw": 6})
    msg = str(ei.value)
    assert msg.startswith(str(tmp_path / "fit.npz")) and "declared structure" in msg, msg
    for w in words:
        assert w in msg, msg


# ---------------------------------------------------------------------- memory-bank: refused, then refitted
@pytest.fixture(scope="module")
def bank_state():
    det = create("memory-bank", **FAST)
    return det.fit([make_part(i, size=48) for i in range(2)], class_name="disc")


def edit_header(base, **fields):
    """Set fields of a saved fit's JSON header (None: remove the field)."""
    jpath = Path(base).with_suffix(".json")
    header = json.loads(jpath.read_text())
    for k, v in fields.items():
        header.pop(k, None) if v is None else header.__setitem__(k, v)
    jpath.write_text(json.dumps(header))


def as_old_fit(base):
    """Make a saved fit look like one saved before the file's hash, size and bytes were recorded."""
    edit_header(base, npz_sha256=None, npz_size=None, npz_bytes=None)


def tamper_saved_fit(base, change):
    """Change a saved fit's arrays and write a *valid* checksum for them (as a careless tool would)."""
    npath = Path(base).with_suffix(".npz")
    arrays = dict(np.load(npath))
    change(arrays)
    np.savez(npath, **arrays)
    edit_header(base, arrays_sha256=arrays_hash(arrays))
    as_old_fit(base)


def write_zip_bomb(npath, n_bytes, name="rgb.features.npy"):
    """An .npz whose one deflated member declares ``n_bytes`` of float32 zeros (a few MB on disk)."""
    with zipfile.ZipFile(npath, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(name, "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                     "shape": (n_bytes // 4,)})
            block = bytes(1 << 22)
            for _ in range(n_bytes // len(block)):
                f.write(block)


def _nan_features(a):
    a["rgb.features"] = np.full_like(a["rgb.features"], np.nan)


@pytest.mark.parametrize("change,words", [
    (_nan_features, ["'rgb.features'", "NaN"]),
    (lambda a: a.__setitem__("rgb.features", a["rgb.features"][:, :5].copy()), ["'rgb.features'", "Krgb = 5"]),
    (lambda a: a.pop("rgb.nominal"), ["'rgb.nominal' is missing"]),
    (lambda a: a.__setitem__("calib.rgb", a["calib.rgb"][:, :3]), ["'calib.rgb'", "gh = 3"]),
    (lambda a: a.__setitem__("geometry.strata", a["geometry.strata"][:-1]), ["'geometry.strata'", "Ngeometry"]),
])
def test_memory_bank_refuses_a_saved_fit_that_does_not_match(bank_state, tmp_path, change, words):
    bank_state.save(tmp_path / "s")
    tamper_saved_fit(tmp_path / "s", change)
    st = FitState.load(tmp_path / "s")                # the checksum is valid ...
    det = create("memory-bank", **FAST)
    with pytest.raises(FitStateError) as ei:          # ... the structure is not
        det.load_state(st)
    msg = str(ei.value)
    assert str(tmp_path / "s.npz") in msg
    for w in words:
        assert w in msg, msg
    assert not det.fitted


def test_session_refits_a_class_whose_saved_fit_is_wrong_and_says_so(tmp_path, caplog):
    ds = MemoryDataset(tmp_path / "mem", classes=("disc",), n_train=2, n_good=1, n_bad=1, size=48)
    store = FitStore(tmp_path / "fits")
    ref = ds.select(["disc"], split="test", label="blob")[0]
    first = Session(ds, "memory-bank", params=FAST, fit_store=store)
    clean = first.analyze(ref).result
    saved = store.path_for("memory-bank", first.fit_state("disc").key)
    for change in (_nan_features, lambda a: a.pop("rgb.nominal"),
                   lambda a: a.__setitem__("rgb.features", a["rgb.features"][:, :5].copy())):
        tamper_saved_fit(saved, change)
        s = Session(ds, "memory-bank", params=FAST, fit_store=store)
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            got = s.analyze(ref).result
        assert s.fit_sources["disc"] == "fitted"                 # refitted, not the broken one
        assert got.image_score == pytest.approx(clean.image_score) and got.is_anomalous == clean.is_anomalous
        assert any("refitted" in r.getMessage() and str(saved) in r.getMessage() for r in caplog.records)
        again = Session(ds, "memory-bank", params=FAST, fit_store=store)   # the refit replaced it
        again.fit("disc")
        assert again.fit_sources["disc"] == "saved"


# ---------------------------------------------------------------------- zip bombs and bounded loading
@pytest.mark.parametrize("header", ["ours", "old", "forged"])
def test_zip_bomb_npz_is_refused_before_anything_is_decompressed(bank_state, tmp_path, header):
    """ours: the header of the fit that was replaced; old: a fit saved before the file hash
    existed; forged: a header rewritten to match the bomb's size and SHA-256 (and its bytes)."""
    from core.checkpoint import file_sha256
    bank_state.save(tmp_path / "s")
    write_zip_bomb(tmp_path / "s.npz", 400 << 20)
    assert (tmp_path / "s.npz").stat().st_size < 5 << 20
    if header == "old":
        as_old_fit(tmp_path / "s")
    elif header == "forged":
        edit_header(tmp_path / "s", npz_sha256=file_sha256(tmp_path / "s.npz"),
                    npz_size=(tmp_path / "s.npz").stat().st_size, npz_bytes=400 << 20)
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(FitStateError) as ei:
        FitState.load(tmp_path / "s")
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak0
    assert grew_kb < 50_000, f"peak memory grew by {grew_kb} kB"      # 400 MB never decompressed
    msg = str(ei.value)
    assert str(tmp_path / "s.npz") in msg and "no array of it was read" in msg
    assert ("bytes" in msg) if header == "ours" else ("compressed" in msg)


def test_stored_member_whose_header_lies_about_its_shape_is_refused(bank_state, tmp_path):
    bank_state.save(tmp_path / "s")
    as_old_fit(tmp_path / "s")
    with zipfile.ZipFile(tmp_path / "s.npz", "w", zipfile.ZIP_STORED) as z:
        with z.open("rgb.features.npy", "w") as f:     # declares 40 GB, holds 1 kB
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**10,)})
            f.write(bytes(1024))
    with pytest.raises(FitStateError, match="declares shape"):
        FitState.load(tmp_path / "s")


def test_object_array_in_an_old_fit_is_refused_unread(bank_state, tmp_path):
    bank_state.save(tmp_path / "s")
    as_old_fit(tmp_path / "s")
    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    np.savez(tmp_path / "s.npz", evil=np.array([Boom()], dtype=object))
    with pytest.raises(FitStateError, match="Python objects"):
        FitState.load(tmp_path / "s")
    assert not marker.exists()


def test_new_header_records_the_file_hash_and_bytes_and_old_fits_still_load(bank_state, tmp_path):
    bank_state.save(tmp_path / "s")
    h = json.loads((tmp_path / "s.json").read_text())
    assert h["npz_size"] == (tmp_path / "s.npz").stat().st_size
    assert h["npz_bytes"] == sum(a.nbytes for a in bank_state.arrays.values())
    assert len(h["npz_sha256"]) == 64
    as_old_fit(tmp_path / "s")
    back = FitState.load(tmp_path / "s")              # an old fit: member checks, then the arrays' hash
    assert back.key == bank_state.key and back.source == tmp_path / "s.npz"
    create("memory-bank", **FAST).load_state(back)


def test_a_changed_byte_is_caught_by_the_file_hash_before_reading(bank_state, tmp_path):
    bank_state.save(tmp_path / "s")
    raw = bytearray((tmp_path / "s.npz").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / "s.npz").write_bytes(bytes(raw))
    with pytest.raises(FitStateError, match="checksum"):
        FitState.load(tmp_path / "s")


# ---------------------------------------------------------------------- a NaN score is no result
def test_nan_score_is_skipped_and_named_never_ok(fake_detector, memory_dataset):
    s = Session(memory_dataset, fake_detector.id, params={"use_geometry": False}, fit_store=None)
    s.fit("disc")
    inst = s.instance("disc")
    st = inst.state
    inst.load_state(FitState(detector=st.detector, version=st.version, class_name="disc", params=st.params,
                             arrays={"mean": np.full(3, np.nan)}, meta=st.meta))
    ref = memory_dataset.select(["disc"], split="test")[0]
    with pytest.raises(InvalidResultError) as ei:
        s.analyze(ref)
    assert str(ref.paths["rgb"]) in str(ei.value) and "no finite image score" in str(ei.value)
    summary = s.run([ref])
    assert summary.done == [] and summary.skipped and "no finite image score" in summary.skipped[0][1]
    r = inst.fuse(inst.extract(memory_dataset.load(ref)))
    assert not np.isfinite(r.image_score) and r.is_anomalous is None
