"""Editors built generically from a detector's declared :class:`core.detectors.base.Param`.

``make_editor(param)`` returns a :class:`ParamEditor` for any ``kind``:

=========  ======================================================
float/int  slider + numeric field (slider only when min and max are declared)
bool       check box
choice     combo box
text       line edit (commits on Enter / focus out)
textlist   multi-line edit, one entry per line (commits on focus out)
=========  ======================================================

:class:`ParamForm` lays out editors for a list of params and emits ``paramChanged(name, value)``.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QSizePolicy, QSlider, QSpinBox, QWidget)

from core.detectors.base import Param

SLIDER_STEPS = 1000


class ParamEditor(QWidget):
    """Base class: ``value()``, ``set_value(v)`` (silent) and ``valueChanged(object)``."""

    valueChanged = Signal(object)

    def __init__(self, param: Param, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.param = param
        self.setToolTip(param.help or param.label)
        self._silent = False

    def value(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_value(self, v: Any) -> None:
        """Show ``v`` without emitting ``valueChanged``."""
        self._silent = True
        try:
            self._show(v)
        finally:
            self._silent = False

    def _show(self, v: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _hold(self, widget: QWidget, changed: Any, slot: Optional[Any] = None) -> None:
        """Lay out the editor's one input ``widget`` (no margins); its signal ``changed`` emits
        :attr:`valueChanged` (through ``slot`` when given)."""
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        changed.connect(slot or self._emit)
        lay.addWidget(widget)

    def _emit(self, *_: Any) -> None:
        if not self._silent:
            self.valueChanged.emit(self.value())


class NumberEditor(ParamEditor):
    """Slider + spin box for float/int params; the two stay in sync."""

    def __init__(self, param: Param, parent: Optional[QWidget] = None):
        super().__init__(param, parent)
        is_int = param.kind == "int"
        lo = param.min if param.min is not None else (-1e9 if param.max is None else min(0.0, param.max))
        hi = param.max if param.max is not None else 1e9
        self._lo, self._hi = float(lo), float(hi)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.slider: Optional[QSlider] = None
        srange = self.slider_range(param)
        if srange is not None:
            self._lo, self._hi = srange
            self.slider = QSlider(Qt.Orientation.Horizontal)
            self.slider.setObjectName(f"slider_{param.name}")
            span = self._hi - self._lo
            n = int(round(span)) if is_int and span <= SLIDER_STEPS else SLIDER_STEPS
            self._n = max(n, 1)
            self.slider.setRange(0, self._n)
            self.slider.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.slider.valueChanged.connect(self._from_slider)
            lay.addWidget(self.slider, 1)
        if is_int:
            self.spin: QSpinBox | QDoubleSpinBox = QSpinBox()
            self.spin.setRange(int(max(lo, -2**31 + 1)), int(min(hi, 2**31 - 1)))
            self.spin.setSingleStep(int(param.step or 1))
        else:
            self.spin = QDoubleSpinBox()
            step = float(param.step) if param.step else (self._hi - self._lo) / 100 if self.slider else 0.1
            decimals = max(2, min(6, int(math.ceil(-math.log10(step))) + 1)) if step > 0 else 3
            self.spin.setDecimals(decimals)
            self.spin.setRange(lo, hi)
            self.spin.setSingleStep(step)
        self.spin.setObjectName(f"spin_{param.name}")
        self.spin.setKeyboardTracking(False)
        self.spin.setMinimumWidth(64)
        self.spin.setMaximumWidth(96)
        self.spin.valueChanged.connect(self._from_spin)
        lay.addWidget(self.spin, 0 if self.slider else 1)
        self.set_value(param.default)

    @staticmethod
    def slider_range(param: Param) -> Optional[tuple[float, float]]:
        """The slider's span, or None for no slider.

        The declared [min, max] when a slider can resolve it (at most ~2000 steps of ``step``);
        otherwise a window around the default (e.g. a threshold declared on [-10, 1000] slides over
        [-3, 5]) and the numeric field still accepts the whole declared range.  Integer params with
        a huge range and no step (seeds) get no slider.
        """
        if param.min is None or param.max is None or not param.max > param.min:
            return None
        lo, hi = float(param.min), float(param.max)
        step = float(param.step) if param.step else None
        if param.kind == "int" and step is None:
            return (lo, hi) if hi - lo <= 10_000 else None
        if step is None or (hi - lo) / step <= 2000:
            return lo, hi
        d = float(param.default)
        w = max(4.0 * abs(d), 20.0 * step)
        return max(lo, d - w), min(hi, d + w)

    def _to_slider(self, v: float) -> int:
        pos = int(round((v - self._lo) / (self._hi - self._lo) * self._n))
        return min(max(pos, 0), self._n)

    def _from_slider(self, pos: int) -> None:
        v = self._lo + (self._hi - self._lo) * pos / self._n
        if self.param.kind == "int":
            v = int(round(v))
        elif self.param.step:
            v = round(round((v - self._lo) / self.param.step) * self.param.step + self._lo, 10)
        self.spin.blockSignals(True)
        self.spin.setValue(v)
        self.spin.blockSignals(False)
        self._emit()

    def _from_spin(self, v: float) -> None:
        if self.slider is not None:
            self.slider.blockSignals(True)
            self.slider.setValue(self._to_slider(v))
            self.slider.blockSignals(False)
        self._emit()

    def value(self) -> Any:
        v = self.spin.value()
        return int(v) if self.param.kind == "int" else float(v)

    def _show(self, v: Any) -> None:
        self.spin.setValue(v)
        if self.slider is not None:
            self.slider.setValue(self._to_slider(float(v)))


class BoolEditor(ParamEditor):
    def __init__(self, param: Param, parent: Optional[QWidget] = None):
        super().__init__(param, parent)
        self.box = QCheckBox()
        self._hold(self.box, self.box.toggled)
        self.set_value(param.default)

    def value(self) -> bool:
        return self.box.isChecked()

    def _show(self, v: Any) -> None:
        self.box.setChecked(bool(v))


class ChoiceEditor(ParamEditor):
    def __init__(self, param: Param, parent: Optional[QWidget] = None):
        super().__init__(param, parent)
        self.combo = QComboBox()
        for c in param.choices:
            self.combo.addItem(str(c), c)
        self._hold(self.combo, self.combo.currentIndexChanged)
        self.set_value(param.default)

    def value(self) -> Any:
        return self.combo.currentData()

    def _show(self, v: Any) -> None:
        i = self.combo.findData(v)
        if i >= 0:
            self.combo.setCurrentIndex(i)


class TextEditor(ParamEditor):
    def __init__(self, param: Param, parent: Optional[QWidget] = None):
        super().__init__(param, parent)
        self.edit = QLineEdit()
        self._hold(self.edit, self.edit.editingFinished)
        self.set_value(param.default)

    def value(self) -> str:
        return self.edit.text()

    def _show(self, v: Any) -> None:
        self.edit.setText("" if v is None else str(v))


class _PlainText(QPlainTextEdit):
    focusLost = Signal()

    def focusOutEvent(self, e) -> None:  # noqa: N802
        super().focusOutEvent(e)
        self.focusLost.emit()


class TextListEditor(ParamEditor):
    """One entry per line; empty lines are dropped."""

    def __init__(self, param: Param, parent: Optional[QWidget] = None):
        super().__init__(param, parent)
        self.edit = _PlainText()
        self.edit.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.edit.setMinimumHeight(64)
        self.edit.setTabChangesFocus(True)
        self._hold(self.edit, self.edit.focusLost, self._maybe_emit)
        self._last: tuple = ()
        self.set_value(param.default)

    def value(self) -> tuple[str, ...]:
        return tuple(s.strip() for s in self.edit.toPlainText().split("\n") if s.strip())

    def _show(self, v: Any) -> None:
        items = v.split("\n") if isinstance(v, str) else list(v or ())
        self.edit.setPlainText("\n".join(str(s) for s in items))
        self._last = self.value()

    def _maybe_emit(self) -> None:
        if self.value() != self._last:
            self._last = self.value()
            self._emit()


def make_editor(param: Param, parent: Optional[QWidget] = None) -> ParamEditor:
    """The editor widget for a declared parameter."""
    cls = {"float": NumberEditor, "int": NumberEditor, "bool": BoolEditor, "choice": ChoiceEditor,
           "textlist": TextListEditor}.get(param.kind, TextEditor)
    ed = cls(param, parent)
    ed.setObjectName(f"param_{param.name}")
    return ed


class ParamForm(QWidget):
    """A form of editors for ``params``; ``paramChanged(name, value)`` when the user edits one."""

    paramChanged = Signal(str, object)

    def __init__(self, params: Iterable[Param] = (), parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.editors: dict[str, ParamEditor] = {}
        self.set_params(params)

    def set_params(self, params: Iterable[Param]) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        self.editors.clear()
        for p in params:
            ed = make_editor(p)
            ed.valueChanged.connect(lambda v, n=p.name: self.paramChanged.emit(n, v))
            label = QLabel(p.label)
            label.setToolTip(p.help or p.label)
            self.form.addRow(label, ed)
            self.editors[p.name] = ed

    def values(self) -> dict[str, Any]:
        return {n: ed.value() for n, ed in self.editors.items()}

    def set_values(self, values: dict[str, Any]) -> None:
        for n, v in values.items():
            ed = self.editors.get(n)
            if ed is not None:
                ed.set_value(v)

    def defaults(self) -> dict[str, Any]:
        return {n: ed.param.default for n, ed in self.editors.items()}

    def is_empty(self) -> bool:
        return not self.editors
