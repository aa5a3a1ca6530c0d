"""The declared structure of a detector's fit state, and its check.

A detector declares the arrays its :class:`~core.detectors.state.FitState` holds
(:attr:`Detector.state_schema <core.detectors.base.Detector.state_schema>`), e.g. for a memory
bank per modality ``m``::

    StateSchema(arrays=(
        ArraySpec(r"(?P<m>rgb|geometry)\\.features", shape=("B{m}", "K{m}"), required=True),
        ArraySpec(r"(?P<m>rgb|geometry)\\.mean", shape=("D{m}",), required=True),
        ArraySpec(r"calib\\.(?P<m>rgb|geometry)", shape=("n", "gh", "gw"), finite=False),
    ), members={"m": "modalities"})

:meth:`Detector.load_state <core.detectors.base.Detector.load_state>` checks every state against
it before the detector uses it, so a saved fit whose arrays are missing, of another data type or
shape, of sizes that disagree, or hold NaN where the detector needs numbers, is refused with one
:class:`~core.detectors.state.FitStateError` naming the file and the array (the session then
refits the class), never an "unexpected error" on every sample.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import numpy as np

from .state import FitState, FitStateError

Dim = Union[int, str, None]


@dataclass(frozen=True)
class ArraySpec:
    """One array, or a family of arrays, of a fit state.

    name:     a regular expression the array's name matches in full; its named groups (e.g.
              ``(?P<m>rgb|geometry)``) tell the members of a family apart
    kinds:    the data type kinds allowed (numpy ``dtype.kind``: ``f`` float, ``i``/``u`` integer,
              ``b`` bool)
    shape:    one entry per dimension: an int (that size), a name (every dimension of that name,
              in every array, has one size; ``{group}`` in it is replaced by the member, so
              ``"B{m}"`` is one size per modality) or None (any size); ``None`` for the whole
              shape: any number of dimensions of any size
    finite:   every value is finite (False: NaN / inf are allowed, e.g. maps of samples that lack
              a modality)
    required: the array must be there: for a family, for every member that any array of the
              state (or the schema's ``members`` meta key) names
    """
    name: str
    kinds: str = "f"
    shape: Optional[tuple[Dim, ...]] = ()
    finite: bool = True
    required: bool = False

    def match(self, key: str) -> Optional[dict[str, str]]:
        m = re.fullmatch(self.name, key)
        return None if m is None else {k: v for k, v in m.groupdict().items() if v is not None}

    def groups(self) -> tuple[str, ...]:
        return tuple(re.compile(self.name).groupindex)

    def instance(self, values: dict[str, str]) -> str:
        """The array name of the member ``values`` (every named group replaced by its value)."""
        return re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda g: values[g.group(1)], self.name).replace("\\.", ".")


@dataclass(frozen=True)
class StateSchema:
    """The arrays of a detector's fit state (:class:`ArraySpec` s).

    members: group name -> meta key whose list names the members that must be there (e.g.
             ``{"m": "modalities"}``: the modalities the state's meta says it has)
    strict:  arrays that match no spec are refused (a state holds what its detector declares)
    """
    arrays: tuple[ArraySpec, ...] = ()
    members: dict[str, str] = field(default_factory=dict)
    strict: bool = True

    def check(self, state: FitState, sizes: Optional[dict[str, int]] = None) -> None:
        """Raise :class:`FitStateError` (naming the state's file and the array) when ``state``
        does not match; ``sizes`` fixes named dimensions (e.g. the patch grid of the current
        parameters)."""
        where = state.source
        what = f"the {'saved ' if where is not None else ''}fit of detector '{state.detector}'"
        bad = lambda problem: FitStateError(where, f"{what} does not match its declared structure: {problem}")  # noqa: E731
        known: dict[str, int] = dict(sizes or {})
        origin: dict[str, str] = {}
        seen: dict[str, set[str]] = {g: set() for spec in self.arrays for g in spec.groups()}
        for g, key in self.members.items():
            listed = state.meta.get(key) or []
            if not isinstance(listed, list):
                raise bad(f"its metadata '{key}' is not a list")
            seen.setdefault(g, set()).update(str(v) for v in listed)
        matched: dict[str, tuple[ArraySpec, dict[str, str]]] = {}
        for k in sorted(state.arrays):
            hit = next(((s, v) for s in self.arrays for v in [s.match(k)] if v is not None), None)
            if hit is None:
                if self.strict:
                    raise bad(f"it holds an array '{k}' that this detector does not use")
                continue
            matched[k] = hit
            for g, v in hit[1].items():
                seen.setdefault(g, set()).add(v)
        for spec in self.arrays:
            if not spec.required:
                continue
            gs = spec.groups()
            for values in _members(gs, seen):
                name = spec.instance(values)
                if name not in state.arrays:
                    raise bad(f"the array '{name}' is missing")
        for k, (spec, values) in matched.items():
            a = np.asarray(state.arrays[k])
            if a.dtype.kind not in spec.kinds:
                raise bad(f"array '{k}' has data type {a.dtype} (expected {_kinds_text(spec.kinds)})")
            if spec.shape is not None:
                if a.ndim != len(spec.shape):
                    raise bad(f"array '{k}' has shape {tuple(a.shape)}, expected {len(spec.shape)} dimension(s) "
                              f"{_shape_text(spec.shape, values)}")
                for i, (size, want) in enumerate(zip(a.shape, spec.shape)):
                    if want is None:
                        continue
                    if isinstance(want, int):
                        if size != want:
                            raise bad(f"array '{k}' has shape {tuple(a.shape)}, expected size {want} in dimension {i}")
                        continue
                    name = want.format(**values)
                    if name in known and known[name] != size:
                        raise bad(f"array '{k}' has shape {tuple(a.shape)}: its size {name} = {size} disagrees "
                                  f"with {name} = {known[name]} of {origin.get(name, 'the fit parameters')}")
                    if name not in known:
                        known[name], origin[name] = int(size), f"array '{k}'"
            if spec.finite and a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
                n = int(a.size - np.isfinite(a).sum())
                raise bad(f"array '{k}' holds {n:,} NaN or infinite value(s) where numbers are needed")


def _members(groups: tuple[str, ...], seen: dict[str, set[str]]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = [{}]
    for g in groups:
        out = [dict(v, **{g: m}) for v in out for m in sorted(seen.get(g, ()))]
    return out


def _kinds_text(kinds: str) -> str:
    names = {"f": "floating point", "i": "signed integer", "u": "unsigned integer", "b": "bool", "c": "complex"}
    return " or ".join(names.get(k, k) for k in kinds)


def _shape_text(shape: tuple[Dim, ...], values: dict[str, Any]) -> str:
    return "(" + ", ".join("any" if d is None else str(d) if isinstance(d, int) else d.format(**values)
                           for d in shape) + ")"
