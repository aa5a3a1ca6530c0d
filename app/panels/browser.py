"""Sample browser: a table (name, class, label, image score, verdict) and a thumbnail grid over the
same model, with class / label / split filters, sort by any column, and keyboard navigation.

Thumbnails are made lazily in the background the first time a row becomes visible (the model asks
for them through ``thumbnailWanted``; :meth:`SampleTableModel.set_thumbnail` stores them).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import (QAbstractTableModel, QItemSelectionModel, QModelIndex, QSize, QSortFilterProxyModel, Qt, Signal)
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QComboBox, QHBoxLayout, QHeaderView, QLabel,
                               QLineEdit, QListView, QSizePolicy, QStackedWidget, QTableView, QToolButton,
                               QVBoxLayout, QWidget)

from core.datasets.base import SampleRef
from core.project import Project
from core.session import Session

COLUMNS = ("Name", "Class", "Label", "Score", "Verdict")
COL_NAME, COL_CLASS, COL_LABEL, COL_SCORE, COL_VERDICT = range(5)
KEY_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2
THUMB_SIZE = 96
ROW_THUMB = 28
ALL = "(all)"
ANOMALOUS = "(any defect)"

VERDICT_STYLE = {"confirmed": ("✓ confirmed", "#63c174"), "rejected": ("✗ rejected", "#e26464"),
                 "unsure": ("? unsure", "#e0b03a")}


def to_qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class SampleTableModel(QAbstractTableModel):
    """One row per sample of the session's dataset."""

    thumbnailWanted = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.session: Optional[Session] = None
        self.reviews: Optional[Project] = None       # the verdicts shown in the Verdict column
        self.refs: list[SampleRef] = []
        self._row: dict[str, int] = {}
        self._thumbs: dict[str, tuple[QIcon, QPixmap]] = {}
        self._asked: set[str] = set()
        self._placeholder = QPixmap(ROW_THUMB, ROW_THUMB)
        self._placeholder.fill(QColor("#2a2d31"))
        self._placeholder_big = QPixmap(THUMB_SIZE, THUMB_SIZE)
        self._placeholder_big.fill(QColor("#2a2d31"))
        self.grid_mode = False

    def set_session(self, session: Optional[Session], reviews: Optional[Project]) -> None:
        self.beginResetModel()
        self.session = session
        self.reviews = reviews
        self.refs = session.refs if session is not None else []
        self._row = {r.key: i for i, r in enumerate(self.refs)}
        self._thumbs.clear()
        self._asked.clear()
        self.endResetModel()

    # ------------------------------------------------------------------ Qt model API
    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.refs)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.session is None:
            return None
        ref = self.refs[index.row()]
        col = index.column()
        rec = self.session.records.get(ref.key)
        if role == KEY_ROLE:
            return ref.key
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_NAME:
                return ref.id if not self.grid_mode else f"{ref.label or '?'} {ref.id}"
            if col == COL_CLASS:
                return ref.class_name
            if col == COL_LABEL:
                return ref.label or "?"
            if col == COL_SCORE:
                if rec is None:
                    return ""
                if rec.error:
                    return "error"
                if rec.image_score is None:
                    return ""
                return f"{rec.image_score:.3f}" + (" *" if rec.stale else "")
            if col == COL_VERDICT:
                row = self.reviews.verdict(ref.key) if self.reviews is not None else None
                return VERDICT_STYLE[row.verdict][0] if row is not None and row.verdict else ""
        if role == SORT_ROLE:
            if col == COL_SCORE:
                return rec.image_score if rec is not None and rec.image_score is not None else -math.inf
            if col == COL_NAME:
                return (ref.split, ref.label, ref.id)
            return self.data(index, Qt.ItemDataRole.DisplayRole) or ""
        if role == Qt.ItemDataRole.DecorationRole and col == COL_NAME:
            t = self._thumbs.get(ref.key)
            if t is None:
                if ref.key not in self._asked:
                    self._asked.add(ref.key)
                    self.thumbnailWanted.emit(ref.key)
                return self._placeholder_big if self.grid_mode else self._placeholder
            return t[1] if self.grid_mode else t[0]
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_SCORE and rec is not None:
                if rec.error:
                    return QBrush(QColor("#e26464"))
                if rec.anomalous:
                    return QBrush(QColor("#ff8a5c"))
                if rec.stale:
                    return QBrush(QColor("#8a8f98"))
            if col == COL_VERDICT and self.reviews is not None:
                v = self.reviews.verdict(ref.key)
                if v is not None and v.verdict:
                    return QBrush(QColor(VERDICT_STYLE[v.verdict][1]))
            if col == COL_LABEL and ref.label and ref.label != "good":
                return QBrush(QColor("#e8a87c"))
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = [ref.key]
            if rec is not None and rec.error:
                tip.append(rec.error)
            elif rec is not None and rec.image_score is not None:
                tip.append(f"image score {rec.image_score:.4f} ({rec.decision or 'no threshold'})"
                           + (" - parameters changed since: rerun to update" if rec.stale else ""))
            v = self.reviews.verdict(ref.key) if self.reviews is not None else None
            if v is not None:
                said = " · ".join(t for t in (v.verdict, f"part {v.final.upper()}" if v.final else "") if t)
                tip.append(f"{said} by {v.reviewer or 'anonymous'}" + (f": {v.note}" if v.note else ""))
            return "\n".join(tip)
        if role == Qt.ItemDataRole.TextAlignmentRole and col == COL_SCORE:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    # ------------------------------------------------------------------ updates
    def row_of(self, key: str) -> int:
        return self._row.get(key, -1)

    def refresh_key(self, key: str) -> None:
        r = self._row.get(key)
        if r is not None:
            self.dataChanged.emit(self.index(r, 0), self.index(r, len(COLUMNS) - 1))

    def refresh_all(self) -> None:
        if self.refs:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.refs) - 1, len(COLUMNS) - 1))

    def set_thumbnail(self, key: str, rgb: np.ndarray) -> None:
        big = QPixmap.fromImage(to_qimage(rgb))
        small = big.scaled(ROW_THUMB, ROW_THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                           Qt.TransformationMode.SmoothTransformation)
        self._thumbs[key] = (QIcon(small), big)
        r = self._row.get(key)
        if r is not None:
            i = self.index(r, COL_NAME)
            self.dataChanged.emit(i, i, [Qt.ItemDataRole.DecorationRole])

    def has_thumbnail(self, key: str) -> bool:
        return key in self._thumbs


class SampleFilterProxy(QSortFilterProxyModel):
    """Filters rows by class, label, split and a name search."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.class_name = ALL
        self.label = ALL
        self.split = ALL
        self.text = ""
        self.disagree_only = False
        self.disagree_fn: Optional[Callable[[str], bool]] = None   # key -> reviewer disagrees with the detector
        self.keys: Optional[frozenset] = None     # only these samples (e.g. from the evaluation view)
        self.setSortRole(SORT_ROLE)

    def set_filter(self, class_name: Optional[str] = None, label: Optional[str] = None,
                   split: Optional[str] = None, text: Optional[str] = None,
                   disagree_only: Optional[bool] = None, keys=False) -> None:
        """Set the given filters (``keys``: a set of sample keys, None: no key filter)."""
        self.beginFilterChange()       # (Qt 6.10+: replaces the deprecated invalidateFilter())
        if class_name is not None:
            self.class_name = class_name
        if disagree_only is not None:
            self.disagree_only = bool(disagree_only)
        if keys is not False:
            self.keys = None if keys is None else frozenset(keys)
        if label is not None:
            self.label = label
        if split is not None:
            self.split = split
        if text is not None:
            self.text = text.lower()
        self.endFilterChange()

    def filterAcceptsRow(self, row: int, parent: QModelIndex) -> bool:  # noqa: N802
        model: SampleTableModel = self.sourceModel()
        ref = model.refs[row]
        if self.keys is not None:
            return ref.key in self.keys
        if self.class_name != ALL and ref.class_name != self.class_name:
            return False
        if self.split != ALL and ref.split != self.split:
            return False
        if self.label == ANOMALOUS:
            if ref.is_good or not ref.label:
                return False
        elif self.label != ALL and ref.label != self.label:
            return False
        if self.text and self.text not in ref.key.lower():
            return False
        if self.disagree_only and not (self.disagree_fn is not None and self.disagree_fn(ref.key)):
            return False
        return True

    def lessThan(self, left: QModelIndex, right: QModelIndex) -> bool:  # noqa: N802
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


class BrowserPanel(QWidget):
    """Filters + table/grid of samples.  ``currentChanged(key)`` when the selection moves."""

    currentChanged = Signal(str)
    thumbnailWanted = Signal(str)
    useAsSupport = Signal(str)        # "use this sample as a support sample of its class"

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.model = SampleTableModel(self)
        self.model.thumbnailWanted.connect(self.thumbnailWanted)
        self.proxy = SampleFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.setSpacing(4)
        row1 = QHBoxLayout()
        self.class_combo = QComboBox()
        self.class_combo.setToolTip("Filter by part class")
        self.label_combo = QComboBox()
        self.label_combo.setToolTip("Filter by label (ground truth)")
        self.split_combo = QComboBox()
        self.split_combo.setToolTip("Filter by split")
        for c in (self.class_combo, self.label_combo, self.split_combo):
            c.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            row1.addWidget(c, 1)
        lay.addLayout(row1)
        row2 = QHBoxLayout()
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search name…")
        self.search.setClearButtonEnabled(True)
        row2.addWidget(self.search, 1)
        self.table_btn = QToolButton()
        self.table_btn.setText("☰")
        self.table_btn.setToolTip("Table")
        self.grid_btn = QToolButton()
        self.grid_btn.setText("▦")
        self.grid_btn.setToolTip("Thumbnails")
        grp = QButtonGroup(self)
        for i, b in enumerate((self.table_btn, self.grid_btn)):
            b.setCheckable(True)
            b.setAutoRaise(True)
            grp.addButton(b, i)
            row2.addWidget(b)
        self.table_btn.setChecked(True)
        grp.idClicked.connect(self.set_grid_mode)
        self.disagree_btn = QToolButton()
        self.disagree_btn.setText("≠")
        self.disagree_btn.setObjectName("disagreeFilter")
        self.disagree_btn.setCheckable(True)
        self.disagree_btn.setAutoRaise(True)
        self.disagree_btn.setToolTip("Only samples where the reviewer disagrees with the detector "
                                     "(detection rejected, or a final OK/NOK against its call)")
        self.disagree_btn.toggled.connect(lambda on: self._filter(disagree_only=on))
        row2.addWidget(self.disagree_btn)
        lay.addLayout(row2)
        self.key_filter_btn = QToolButton()
        self.key_filter_btn.setObjectName("keyFilter")
        self.key_filter_btn.setToolTip("The list shows these samples only: click to show all again")
        self.key_filter_btn.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.key_filter_btn.clicked.connect(lambda: self.set_key_filter(None))
        self.key_filter_btn.setVisible(False)
        lay.addWidget(self.key_filter_btn)

        self.table = QTableView()
        self.table.setObjectName("sampleTable")
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setIconSize(QSize(ROW_THUMB, ROW_THUMB))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(ROW_THUMB + 4)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        hh.setStretchLastSection(True)
        hh.setHighlightSections(False)
        for col, w in ((COL_NAME, 78), (COL_CLASS, 70), (COL_LABEL, 64), (COL_SCORE, 58)):
            self.table.setColumnWidth(col, w)

        self.grid = QListView()
        self.grid.setObjectName("sampleGrid")
        self.grid.setModel(self.proxy)
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.grid.setGridSize(QSize(THUMB_SIZE + 12, THUMB_SIZE + 26))
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setUniformItemSizes(True)
        self.grid.setSelectionModel(self.table.selectionModel())

        self.stack = QStackedWidget()
        self.stack.addWidget(self.table)
        self.stack.addWidget(self.grid)
        lay.addWidget(self.stack, 1)
        self.count_label = QLabel()
        self.count_label.setObjectName("browserCount")
        lay.addWidget(self.count_label)

        self.table.selectionModel().currentRowChanged.connect(self._on_current)
        for view in (self.table, self.grid):
            view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            view.customContextMenuRequested.connect(lambda pos, v=view: self._context_menu(v, pos))
        self.class_combo.currentTextChanged.connect(lambda t: self._filter(class_name=t))
        self.label_combo.currentTextChanged.connect(lambda t: self._filter(label=t))
        self.split_combo.currentTextChanged.connect(lambda t: self._filter(split=t))
        self.search.textChanged.connect(lambda t: self._filter(text=t))
        self._current_key: Optional[str] = None

    # ------------------------------------------------------------------ data
    def set_session(self, session: Optional[Session], reviews: Optional[Project]) -> None:
        self._current_key = None
        self.model.set_session(session, reviews)
        refs = self.model.refs
        self._fill_combo(self.class_combo, [ALL] + sorted({r.class_name for r in refs}))
        labels = sorted({r.label for r in refs if r.label})
        self._fill_combo(self.label_combo, [ALL, ANOMALOUS] + labels if len(labels) > 1 else [ALL] + labels)
        splits = sorted({r.split for r in refs if r.split})
        self._fill_combo(self.split_combo, [ALL] + splits)
        # inspect the test split by default when there is one
        self.key_filter_btn.setVisible(False)
        self.proxy.set_filter(ALL, ALL, "test" if "test" in splits else ALL, "", keys=None)
        if "test" in splits:
            self.split_combo.setCurrentText("test")
        self._update_count()

    @staticmethod
    def _fill_combo(combo: QComboBox, items: list[str]) -> None:
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(items)
        combo.blockSignals(False)

    def _filter(self, **kw) -> None:
        self.proxy.set_filter(**kw)
        self._update_count()
        if self._current_key is not None and self.proxy_row(self._current_key) < 0 and self.proxy.rowCount():
            self.select_row(0)

    def set_key_filter(self, keys, caption: str = "") -> None:
        """Show only the samples ``keys`` (None: the combo filters again), with a clear button."""
        self.key_filter_btn.setText(f"✕  {len(keys)} sample(s): {caption}" if keys is not None else "")
        self.key_filter_btn.setVisible(keys is not None)
        self._filter(keys=keys)
        if keys is not None and self._current_key is None and self.proxy.rowCount():
            self.select_row(0)

    def _update_count(self) -> None:
        n, total = self.proxy.rowCount(), self.model.rowCount()
        self.count_label.setText(f"{n} of {total} samples" if n != total else f"{total} samples")

    def toggle_grid_mode(self) -> None:
        self.set_grid_mode(not self.model.grid_mode)

    def set_grid_mode(self, grid: bool) -> None:
        self.model.grid_mode = bool(grid)
        self.stack.setCurrentIndex(1 if grid else 0)
        (self.grid_btn if grid else self.table_btn).setChecked(True)
        self.model.refresh_all()

    # ------------------------------------------------------------------ selection / navigation
    def proxy_row(self, key: str) -> int:
        r = self.model.row_of(key)
        if r < 0:
            return -1
        return self.proxy.mapFromSource(self.model.index(r, 0)).row()

    def current_key(self) -> Optional[str]:
        return self._current_key

    def select_key(self, key: str) -> bool:
        row = self.proxy_row(key)
        if row < 0:
            return False
        self.select_row(row)
        return True

    def select_row(self, row: int) -> None:
        idx = self.proxy.index(row, 0)
        if not idx.isValid():
            return
        self.table.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(idx)
        self.grid.scrollTo(idx)

    def select_next(self, step: int = 1) -> bool:
        """Move the selection by ``step`` visible rows; False at either end."""
        n = self.proxy.rowCount()
        if n == 0:
            return False
        cur = self.proxy_row(self._current_key) if self._current_key else -1
        new = min(max(cur + step, 0), n - 1) if cur >= 0 else 0
        if new == cur:
            return False
        self.select_row(new)
        return True

    def visible_refs(self) -> list[SampleRef]:
        """The samples the filters show, in display order."""
        out = []
        for r in range(self.proxy.rowCount()):
            src = self.proxy.mapToSource(self.proxy.index(r, 0))
            out.append(self.model.refs[src.row()])
        return out

    def _context_menu(self, view, pos) -> None:
        from PySide6.QtWidgets import QMenu
        idx = view.indexAt(pos)
        if not idx.isValid():
            return
        key = idx.data(KEY_ROLE)
        menu = QMenu(self)
        act = menu.addAction("Use as support sample (good reference of its class)")
        act.triggered.connect(lambda: self.useAsSupport.emit(key))
        menu.exec(view.viewport().mapToGlobal(pos))

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        key = current.data(KEY_ROLE)
        if key != self._current_key:
            self._current_key = key
            self.currentChanged.emit(key)

    def focus_list(self) -> None:
        (self.grid if self.model.grid_mode else self.table).setFocus()
