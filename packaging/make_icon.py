"""Draw resources/icon.png (256x256) from resources/icon.svg with Qt's SVG renderer (run once; both are committed).

    QT_QPA_PLATFORM=offscreen python packaging/make_icon.py
"""
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ROOT = Path(__file__).resolve().parent.parent


def render(svg: Path, png: Path, size: int = 256) -> None:
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    img = QImage(size, size, QImage.Format.Format_ARGB32)
    img.fill(Qt.GlobalColor.transparent)
    painter = QPainter(img)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not img.save(str(png)):
        raise SystemExit(f"{png}: could not write")


if __name__ == "__main__":
    app = QGuiApplication(sys.argv[:1])
    render(ROOT / "resources" / "icon.svg", ROOT / "resources" / "icon.png")
    print(ROOT / "resources" / "icon.png")
