"""Entry point of the desktop workbench: ``run(argv=None, data=None) -> int``.

Opens the window on ``data`` (a dataset folder or file), else on the last folder used, else on the
built-in demo data (generated in the background on first start) with the memory-bank detector, so
a first-time user sees a result without any setup.  ``--demo`` opens the demo data in demo mode
(:mod:`app.demo_mode`: full screen, cycling through the samples; Esc leaves).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Optional, Sequence


def _parse(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="mmad-inspector gui", description="MMAD Inspector workbench")
    ap.add_argument("data", nargs="?", help="dataset folder or file to open (default: last folder, else the demo)")
    ap.add_argument("--demo", action="store_true",
                    help="demo mode: full screen on the built-in demo data, cycling through the samples (Esc leaves)")
    ap.add_argument("--settings", help="use this ini file for the settings (portable / testing)")
    ap.add_argument("--reset-layout", action="store_true", help="ignore the saved window layout")
    return ap.parse_args(list(argv) if argv is not None else [])


def load_stylesheet() -> str:
    qss = Path(__file__).resolve().parent.parent / "resources" / "style.qss"
    try:
        return qss.read_text(encoding="utf-8")
    except OSError:
        return ""


def create_window(data: Optional[str] = None, settings=None, demo: bool = False, restore_layout: bool = True):
    """Build the main window and start opening ``data`` / the last folder / the demo (needs a QApplication)."""
    from .main_window import MainWindow
    from .settings import Settings

    settings = settings if settings is not None else Settings()
    win = MainWindow(settings=settings, restore_layout=restore_layout)
    target = None if demo else (data or settings.last_folder)
    if target and Path(target).exists():
        if not win.open_folder(target) and data is None:
            win.open_demo()
    elif target and data is not None:
        win.banner.error(f"{target}: no such file or folder. Showing the demo data instead.")
        win.open_demo()
    else:
        win.open_demo()
    return win


def run(argv: Optional[Sequence[str]] = None, data: Optional[str] = None) -> int:
    """Create the QApplication, show the window, run Qt's event loop; returns the exit code."""
    args = _parse(argv)
    if data is None:
        data = args.data
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from PySide6.QtWidgets import QApplication

    from .settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "mmad-inspector"])
    app.setApplicationName("MMAD Inspector")
    app.setOrganizationName("MMAD")
    app.setStyle("Fusion")
    app.setStyleSheet(load_stylesheet())
    icon = Path(__file__).resolve().parent.parent / "resources" / "icon.png"
    if icon.is_file():
        from PySide6.QtGui import QIcon
        app.setWindowIcon(QIcon(str(icon)))
    settings = Settings(args.settings) if args.settings else Settings()
    win = create_window(data, settings, demo=args.demo, restore_layout=not args.reset_layout)
    win.show()
    if args.demo:
        win.demo_mode.start()
    return int(app.exec() or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run(sys.argv[1:]))
