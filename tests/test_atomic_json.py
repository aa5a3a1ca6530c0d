"""The one atomic-write helper (core.io.atomic) and the one JSON conversion (core.io.json_files)."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from core.errors import InputError, OutputWriteError
from core.io import atomic_open, atomic_path, atomic_write, json_text, to_jsonable, write_json


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    assert atomic_write(target, "first") == target          # the folder is created
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert _leftovers(target.parent) == []


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_new_files_get_the_umask_mode_not_private_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.bin", b"x")
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"y")
    finally:
        os.umask(old)
    for name in ("a.bin", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name


def test_a_failing_writer_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "report.csv"
    target.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with atomic_open(target, "w", encoding="utf-8") as fh:
            fh.write("half a new file")
            1 / 0
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_an_os_error_becomes_output_write_error_naming_the_file(tmp_path):
    target = tmp_path / "maps" / "x.tiff"
    (tmp_path / "maps").write_text("a file where a folder should be")
    with pytest.raises(OutputWriteError) as ei:
        atomic_write(target, b"data")
    err = ei.value
    assert isinstance(err, OSError) and isinstance(err, InputError)
    assert err.path == target and str(err).startswith(f"{target}: cannot write here")
    assert err.filename == str(target) and err.strerror == err.problem


def test_replacing_a_folder_fails_cleanly(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(OutputWriteError, match="cannot write the file"):
        atomic_write(target, b"data")
    assert target.is_dir() and _leftovers(tmp_path) == []


def test_atomic_path_keeps_the_suffix_for_libraries_that_choose_the_format_by_name(tmp_path):
    with atomic_path(tmp_path / "cloud.ply") as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".ply" and tmp.name.startswith(".cloud.ply.")
        tmp.write_bytes(b"ply\n")
    assert (tmp_path / "cloud.ply").read_bytes() == b"ply\n" and _leftovers(tmp_path) == []


def test_output_write_error_survives_pickling():
    import pickle
    e = pickle.loads(pickle.dumps(OutputWriteError("/x/y.png", "disk full")))
    assert isinstance(e, OutputWriteError) and str(e) == "/x/y.png: disk full"


def test_to_jsonable_numpy_nan_paths_and_containers():
    value = {1: np.float32(0.5), "n": np.int64(3), "b": np.bool_(True), "nan": float("nan"),
             "inf": np.float64("inf"), "arr": np.array([[1, 2], [3, 4]], np.uint8), "p": Path("a") / "b",
             "t": (1, 2.5), "s": {"b", "a"}, "none": None, "obj": object}
    out = to_jsonable(value)
    assert out == {"1": 0.5, "n": 3, "b": True, "nan": None, "inf": None, "arr": [[1, 2], [3, 4]],
                   "p": str(Path("a") / "b"), "t": [1, 2.5], "s": ["a", "b"], "none": None, "obj": str(object)}
    assert type(out["n"]) is int and type(out["b"]) is bool and type(out["1"]) is float
    assert json.loads(json_text(value)) == out               # strict JSON: NaN never written


def test_write_json_is_strict_utf8_json(tmp_path):
    p = write_json(tmp_path / "r.json", {"name": "Prüfteil", "score": np.float32(float("nan"))})
    text = p.read_text(encoding="utf-8")
    assert "Prüfteil" in text and "NaN" not in text and text.endswith("\n")
    assert json.loads(text) == {"name": "Prüfteil", "score": None}
