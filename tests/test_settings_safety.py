"""No code from the settings file (app/settings.py): a planted pickled @Variant never runs."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
from PySide6.QtCore import QSettings  # noqa: E402

from app.settings import Settings, decode, default_path  # noqa: E402


class Planted:
    """Unpickling this runs ``touch MARKER`` (pickling it does not)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def plant(ini: Path, marker: Path, keys=("data/last_folder", "window/geometry", "view/opacity")) -> None:
    """Write what a hostile user file holds: QSettings' own @Variant encoding of a pickle, next to
    plain values."""
    qs = QSettings(str(ini), QSettings.Format.IniFormat)
    for k in keys:
        qs.setValue(k, Planted(marker))
    qs.setValue("view/colormap", "viridis")
    qs.setValue("detector/id", "memory-bank")
    qs.sync()
    del qs
    assert "@Variant(" in ini.read_text(errors="replace")
    assert not marker.exists()


def settings_warnings(caplog):
    return [r for r in caplog.records if r.name == "app.settings" and r.levelno == logging.WARNING]


def test_planted_file_is_really_hostile_for_qsettings(tmp_path):
    """Control: the planted file does run code when QSettings reads it (in a child process), so the
    test below checks something real."""
    ini, marker = tmp_path / "s.ini", tmp_path / "PWNED"
    plant(ini, marker)
    code = f"from PySide6.QtCore import QSettings; QSettings({str(ini)!r}, QSettings.Format.IniFormat).value('data/last_folder')"
    subprocess.run([sys.executable, "-c", code], check=False, timeout=60, capture_output=True)
    assert marker.exists()


def test_planted_variant_never_runs_and_other_values_survive(tmp_path, caplog):
    ini, marker = tmp_path / "s.ini", tmp_path / "PWNED"
    plant(ini, marker)
    s = Settings(ini)
    assert not marker.exists()
    assert s.value("data/last_folder") is None and s.last_folder is None
    assert s.value("view/opacity", 0.55, float) == 0.55           # ignored -> the default
    assert s.view_options()["colormap"] == "viridis" and s.detector_id == "memory-bank"
    assert len(settings_warnings(caplog)) == 1 and "3 value(s) ignored" in s.warnings[0]
    assert "@Variant" in s.warnings[0]
    # the next save drops the planted values from the file
    s.last_folder = tmp_path
    assert s.sync()
    text = ini.read_text()
    assert "@" not in text and "viridis" in text
    assert Settings(ini).last_folder == str(tmp_path) and not marker.exists()


def test_default_settings_file_is_read_safely(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    path = default_path()
    assert path == tmp_path / "config" / "MMAD" / "MMAD Inspector.ini"
    path.parent.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    plant(path, marker)
    s = Settings()
    assert s.path == str(path) and not marker.exists() and s.detector_id == "memory-bank"


def test_window_start_with_a_planted_file_runs_nothing(qtbot, tmp_path, fake_detector):
    from core.session import Session
    from app.main_window import MainWindow
    ini, marker = tmp_path / "s.ini", tmp_path / "PWNED"
    plant(ini, marker, keys=("window/geometry", "window/state", "window/splitter", "view/opacity",
                             "view/show_gt", "review/annotator", "params/fake-test"))
    win = MainWindow(Settings(ini), Session(detector="fake-test"), restore_layout=True)
    qtbot.addWidget(win)
    assert not marker.exists()
    assert win.review_panel.annotator.text() == ""
    win.close()
    assert not marker.exists() and "@" not in ini.read_text()


@pytest.mark.parametrize("raw", ["@Variant(\\0\\0\\0\\x7f)", "@ByteArray(abc)", "@Rect(1 2 3 4)", "@Invalid()",
                                 '{"a": 1}', "[[1]]", "[" * 5000, "null", "b64:not base64!"])
def test_values_that_are_not_plain_are_refused(raw):
    with pytest.raises(ValueError):
        decode(raw)


@pytest.mark.parametrize("raw,value", [('"inferno"', "inferno"), ("0.5", 0.5), ("3", 3), ("true", True),
                                       ('["a", 1, false]', ["a", 1, False]), ("b64:AAH/", b"\x00\x01\xff"),
                                       ("inferno", "inferno"), ('"/a/my data, v2"', "/a/my data, v2"),
                                       ("@@ana", "@ana"), ("", "")])
def test_plain_values_and_older_files_are_read(raw, value):
    assert decode(raw) == value and type(decode(raw)) is type(value)


def test_round_trip_of_plain_types_and_other_types_ignored(tmp_path, caplog):
    import numpy as np
    ini = tmp_path / "s.ini"
    s = Settings(ini)
    vals = {"a/text": "x = y ; # [z]", "a/int": 7, "a/float": 0.25, "a/bool": False, "a/list": ["p", 2, 0.5, True],
            "a/bytes": bytes(range(256)), "a/np": np.float32(1.5), "a/path": tmp_path, "top": "level",
            "a/newline": "two\nlines", "a/unicode": "café ✓"}
    for k, v in vals.items():
        s.set_value(k, v)
    s.set_value("a/dict", {"x": 1})
    s.set_value("a/object", object())
    s.set_value("a/nested", [[1]])
    assert len(settings_warnings(caplog)) == 3
    assert s.sync()
    s2 = Settings(ini)
    assert s2.warnings == []
    for k, v in vals.items():
        expected = float(v) if k == "a/np" else str(v) if k == "a/path" else v
        assert s2.value(k) == expected, k
    assert s2.value("a/dict") is None and s2.value("a/object") is None and s2.value("a/nested") is None
    s2.set_value("a/int", None)                                     # None removes
    s2.sync()
    assert Settings(ini).value("a/int", "gone") == "gone"


@pytest.mark.parametrize("content", [bytes(range(256)) * 8, b"\xef\xbb\xbf[view]\ncolormap=\"viridis\"\n",
                                     b"colormap=1\n[view\n", b"[view]\n  indented continuation\n=novalue\n",
                                     b"[view]\ncolormap=\"viridis\"\n[view]\ncolormap=\"magma\"\n",
                                     b"\x00" * 1000, b"[DEFAULT]\nx=1\n[view]\ncolormap=\"viridis\"\n"])
def test_corrupt_files_give_defaults_or_what_parses_never_an_exception(tmp_path, content):
    ini = tmp_path / "s.ini"
    ini.write_bytes(content)
    s = Settings(ini)
    assert s.view_options()["colormap"] in ("inferno", "viridis", "magma")
    assert s.view_options()["opacity"] == 0.55
    if b'colormap="viridis"' in content and b"magma" not in content:
        assert s.view_options()["colormap"] == "viridis"
    s.set_value("view/colormap", "magma")
    assert s.sync() and Settings(ini).view_options()["colormap"] == "magma"


def test_huge_or_unreadable_file_and_failed_save_only_warn(tmp_path, monkeypatch):
    import app.settings as settings_mod
    ini = tmp_path / "s.ini"
    ini.write_bytes(b"[a]\nb=1\n" + b"#" * 100 + b"\n")
    monkeypatch.setattr(settings_mod, "MAX_FILE_BYTES", 50)
    s = Settings(ini)
    assert s.value("a/b") is None and "not read" in s.warnings[0]
    folder = tmp_path / "dir.ini"
    folder.mkdir()
    s = Settings(folder)                       # a folder where the file should be
    assert s.value("a/b") is None and s.warnings
    s.set_value("a/b", 1)
    assert s.sync() is False and "cannot save" in s.warnings[-1]


def test_a_crash_during_save_keeps_the_old_file(tmp_path, monkeypatch):
    ini = tmp_path / "s.ini"
    s = Settings(ini)
    s.set_value("view/colormap", "viridis")
    s.sync()
    before = ini.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    s.set_value("view/colormap", "magma")
    assert s.sync() is False
    assert ini.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.ini"]


@pytest.mark.parametrize("raw,point_size,opacity", [
    ("point_size=3000000000\nopacity=1e308\n", 15, 1.0),        # both far out of range: the nearest bound
    ("point_size=-7\nopacity=-0.5\n", 1, 0.0),
    ("point_size=nan\nopacity=inf\n", 3, 0.55),                 # not finite: the default
    ('point_size="big"\nopacity=[1, 2]\n', 3, 0.55),            # not a number: the default
    ("point_size=4.6\nopacity=0.25\n", 5, 0.25),                # valid values are kept (an int is rounded)
])
def test_view_settings_are_validated_and_clamped(tmp_path, raw, point_size, opacity):
    p = tmp_path / "s.ini"
    p.write_text("[view]\n" + raw + "colormap=\"=cmd|' /C calc'!A0\"\n")
    s = Settings(p)
    o = s.view_options()
    assert (o["point_size"], o["opacity"]) == (point_size, opacity)
    assert isinstance(o["point_size"], int) and o["colormap"] == "inferno"
    bad = (point_size, opacity) != (5, 0.25)
    assert any("view/point_size" in w for w in s.warnings) == bad and any("view/colormap" in w for w in s.warnings)


def test_window_starts_with_out_of_range_view_settings(qtbot, tmp_path, fake_detector):
    from core.session import Session
    from app.main_window import MainWindow
    p = tmp_path / "s.ini"
    p.write_text("[view]\npoint_size=3000000000\nopacity=1e308\n")
    w = MainWindow(Settings(p), Session(detector="fake-test"), restore_layout=False)   # was: OverflowError
    qtbot.addWidget(w)
    assert w.inspector.point_size.value() == 15 and w.inspector.opacity_slider.value() == 100
    w.close()
