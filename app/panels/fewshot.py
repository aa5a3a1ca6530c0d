"""Few-shot panel: the support set of the current part class, chosen among the dataset's good
(non-test) samples with thumbnails (multi-select) or from files.  Applying a new support set refits
only that class."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from core.datasets.base import SampleRef

from .browser import to_qimage

THUMB = 64
ITEM_ROLE = Qt.ItemDataRole.UserRole + 1
FILE_EXTS = "Images and clouds (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.ply *.pcd *.npy *.txt *.xyz);;All files (*)"


class FewShotPanel(QWidget):
    """``supportApplied(class_name, items)`` (items: SampleRef / Path; ``None`` = reset to default);
    ``thumbnailWanted(key)`` for candidates without a thumbnail yet."""

    supportApplied = Signal(str, object)
    thumbnailWanted = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(6)
        self.title = QLabel()
        self.title.setWordWrap(True)
        lay.addWidget(self.title)
        self.list = QListWidget()
        self.list.setObjectName("supportList")
        self.list.setViewMode(QListWidget.ViewMode.IconMode)
        self.list.setIconSize(QSize(THUMB, THUMB))
        self.list.setGridSize(QSize(THUMB + 14, THUMB + 24))
        self.list.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.list.setMovement(QListWidget.Movement.Static)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        self.list.itemSelectionChanged.connect(self._update_title)
        lay.addWidget(self.list, 1)
        row = QHBoxLayout()
        self.files_btn = QPushButton("Add files…")
        self.files_btn.clicked.connect(self._add_files)
        self.default_btn = QPushButton("Default")
        self.default_btn.setToolTip("Use the first good training samples of the class")
        self.default_btn.clicked.connect(lambda: self.supportApplied.emit(self.class_name, None))
        self.apply_btn = QPushButton("Apply (refit)")
        self.apply_btn.setObjectName("applySupport")
        self.apply_btn.clicked.connect(self.apply)
        row.addWidget(self.files_btn)
        row.addStretch(1)
        row.addWidget(self.default_btn)
        row.addWidget(self.apply_btn)
        lay.addLayout(row)
        self.class_name = ""
        self.needed = 0
        self.start_dir = ""        # file dialogs start at the data folder
        self._items: dict[str, QListWidgetItem] = {}
        self._placeholder = QPixmap(THUMB, THUMB)
        self._placeholder.fill(QColor("#2a2d31"))

    def set_candidates(self, class_name: str, candidates: Sequence[SampleRef], selected: Sequence[object],
                       needed: int, thumbs: Optional[dict[str, np.ndarray]] = None) -> None:
        """Show the good samples of ``class_name``; ``selected`` is the current support."""
        self.class_name = class_name
        self.needed = needed
        self.list.blockSignals(True)
        self.list.clear()
        self._items.clear()
        sel_keys = {s.key if isinstance(s, SampleRef) else str(s) for s in selected}
        items = list(candidates) + [s for s in selected if isinstance(s, Path)]
        for it in items:
            key = it.key if isinstance(it, SampleRef) else str(it)
            text = f"{it.split}/{it.id}" if isinstance(it, SampleRef) else Path(it).name
            w = QListWidgetItem(QIcon(self._placeholder), text)
            w.setData(ITEM_ROLE, it)
            w.setToolTip(key)
            self.list.addItem(w)
            self._items[key] = w
            if key in sel_keys:
                w.setSelected(True)
            if thumbs and key in thumbs:
                self.set_thumbnail(key, thumbs[key])
            elif isinstance(it, SampleRef):
                self.thumbnailWanted.emit(key)
        self.list.blockSignals(False)
        self.setEnabled(bool(class_name))
        self._update_title()

    def set_thumbnail(self, key: str, rgb: np.ndarray) -> None:
        w = self._items.get(key)
        if w is not None:
            w.setIcon(QIcon(QPixmap.fromImage(to_qimage(rgb))))

    def selected_items(self) -> list[object]:
        return [w.data(ITEM_ROLE) for w in self.list.selectedItems()]

    def select_keys(self, keys: Sequence[str]) -> None:
        self.list.clearSelection()
        for k in keys:
            if k in self._items:
                self._items[k].setSelected(True)

    def apply(self) -> None:
        self.supportApplied.emit(self.class_name, self.selected_items())

    def _add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Support samples", str(self.start_dir or ""), FILE_EXTS)
        for f in files:
            p = Path(f)
            if str(p) in self._items:
                continue
            w = QListWidgetItem(QIcon(self._placeholder), p.name)
            w.setData(ITEM_ROLE, p)
            w.setToolTip(str(p))
            self.list.addItem(w)
            self._items[str(p)] = w
            w.setSelected(True)

    def _update_title(self) -> None:
        if not self.class_name:
            self.title.setText("No part class selected.")
            return
        n = len(self.list.selectedItems())
        need = f" (needs ≥ {self.needed})" if self.needed else " (zero-shot detector: support unused)"
        self.title.setText(f"Support for <b>{self.class_name}</b>: {n} selected{need}")
