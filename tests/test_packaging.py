"""Packaging files: the PyInstaller spec, the Linux desktop entry and the icon."""
from __future__ import annotations

import ast
import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "packaging" / "mmad-inspector.spec"
DESKTOP = ROOT / "packaging" / "mmad-inspector.desktop"


def _string_constants(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _called_names(tree: ast.AST) -> set[str]:
    return {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def test_spec_is_python_and_builds_a_one_folder_app_from_main():
    tree = ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))
    consts = _string_constants(tree)
    calls = _called_names(tree)
    assert {"Analysis", "PYZ", "EXE", "COLLECT"} <= calls      # COLLECT = one-folder output
    assert "main.py" in consts
    assert "resources" in consts
    for name in ("style.qss", "icon.svg", "icon.png"):
        assert name in consts, name
        assert (ROOT / "resources" / name).is_file(), name
    assert "open_clip" in consts                                   # model configs + BPE vocabulary
    # the CPU build's runtime hook exists where the spec expects it
    assert "rthook_cpu.py" in consts and (ROOT / "packaging" / "rthook_cpu.py").is_file()
    # EXE must not bundle the binaries (that would be a one-file build)
    exe = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "EXE")
    kw = {k.arg: k.value for k in exe.keywords}
    assert isinstance(kw.get("exclude_binaries"), ast.Constant) and kw["exclude_binaries"].value is True


def test_desktop_entry_fields():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(DESKTOP, encoding="utf-8")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "MMAD Inspector"
    assert entry["Exec"].split()[0] == "mmad-inspector"
    assert entry["Icon"] == "mmad-inspector"
    cats = entry["Categories"].rstrip(";").split(";")
    assert {"Graphics", "Science", "Engineering"} <= set(cats)


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_passes_desktop_file_validate():
    r = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "error" not in (r.stdout + r.stderr).lower()


def test_icon_png_is_256_square_and_not_blank():
    from PIL import Image

    with Image.open(ROOT / "resources" / "icon.png") as im:
        assert im.size == (256, 256)
        rgba = im.convert("RGBA")
        alpha = rgba.getchannel("A")
        assert alpha.getextrema() == (0, 255)        # transparent corners, opaque body
        colours = rgba.convert("RGB").getcolors(maxcolors=256 * 256)
        assert colours is not None and len(colours) > 50   # drawn, not a flat fill


def test_icon_svg_is_well_formed_256_box():
    import xml.etree.ElementTree as ET

    root = ET.parse(ROOT / "resources" / "icon.svg").getroot()
    assert root.tag.endswith("svg")
    assert root.get("viewBox") == "0 0 256 256"


def test_main_script_calls_freeze_support_before_main():
    # the detector worker process (spawn) and multiprocessing's resource tracker re-run the frozen executable;
    # without freeze_support() in the script the CLI parser receives their arguments and the worker never starts
    tree = ast.parse((ROOT / "main.py").read_text(encoding="utf-8"))
    guard = next(n for n in tree.body if isinstance(n, ast.If) and "__main__" in _string_constants(n.test))
    calls = [n.func for n in ast.walk(guard) if isinstance(n, ast.Call)]
    names = [c.attr if isinstance(c, ast.Attribute) else getattr(c, "id", None) for c in calls]
    assert "freeze_support" in names and "main" in names
    assert names.index("freeze_support") < names.index("main")
