"""The detector interface every detector implements.

A detector *declares* what it needs (:class:`Needs`) and its tunable parameters (:class:`Param`,
with defaults, ranges and the *stage* they affect), so that front-ends (CLI, GUI) can build their
controls from the declaration alone.

Work is split in three stages so that cheap changes never redo expensive work:

* ``fit(support)``      - builds whatever depends on the support (few-shot) samples / prompts.
* ``extract(sample)``   - the expensive part: backbones, descriptors, nearest-neighbour search.
                          Returns :class:`Components`: per-modality maps kept apart.
* ``fuse(components)``  - a *pure* and cheap function of the components and the ``fusion``-stage
                          parameters (weights, smoothing, threshold).  Changing a fusion weight
                          only reruns this (milliseconds).

``score(sample)`` is ``fuse(extract(sample))``.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, ClassVar, Iterable, Optional, Sequence

import numpy as np

from ..errors import Cancelled
from ..sample import Sample

# stages, from most to least expensive to redo
STAGE_FIT = "fit"        # needs fit() again (support set, bank size, prompts...)
STAGE_TEXT = "text"      # only text-side caches (prompt embeddings)
STAGE_SCORE = "score"    # needs extract() again on each sample
STAGE_FUSION = "fusion"  # only fuse() again (cheap)
STAGES = (STAGE_FIT, STAGE_TEXT, STAGE_SCORE, STAGE_FUSION)

ProgressFn = Callable[[float, str], None]  # (fraction 0..1, message)
CancelFn = Callable[[], bool]              # returns True when the user asked to stop


@dataclass(frozen=True)
class Param:
    """One tunable parameter, as the GUI shows it."""
    name: str
    default: Any
    kind: str = "float"          # float | int | bool | choice | text | textlist
    label: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None
    choices: tuple = ()
    stage: str = STAGE_SCORE
    help: str = ""

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"param {self.name}: unknown stage {self.stage!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " "))

    def coerce(self, value: Any) -> Any:
        """Validate and convert a user value; raise ValueError with a clear message."""
        try:
            if self.kind == "float":
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError
            elif self.kind == "int":
                v = int(round(float(value)))
            elif self.kind == "bool":
                v = value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")
            elif self.kind == "choice":
                if value not in self.choices:
                    raise ValueError
                v = value
            elif self.kind == "textlist":
                v = tuple(str(s) for s in (value.split("\n") if isinstance(value, str) else value) if str(s).strip())
            else:
                v = str(value)
        except (TypeError, ValueError):
            raise ValueError(f"parameter '{self.name}': {value!r} is not a valid {self.kind}"
                             + (f" (one of {', '.join(map(str, self.choices))})" if self.choices else "")) from None
        if self.kind in ("float", "int"):
            if self.min is not None and v < self.min or self.max is not None and v > self.max:
                raise ValueError(f"parameter '{self.name}': {v} is outside [{self.min}, {self.max}]")
        return v


@dataclass(frozen=True)
class Needs:
    """What a detector needs. rgb/points: 'required', 'optional' or 'unused'."""
    rgb: str = "optional"
    points: str = "optional"
    text_prompts: bool = False
    support: int = 0            # minimum number of good support samples (0: zero-shot)
    default_support: int = 0    # the default number of shots
    training: bool = False      # needs a training run beyond fit(support)
    weights: bool = False       # needs downloaded/pretrained weights


@dataclass
class Components:
    """Per-modality outputs of ``extract``, kept apart so fusion can be redone cheaply.

    maps:        name -> H x W float32 pixel map on the sample's grid (NaN where undefined)
    point_maps:  name -> N float32 per-point scores (aligned with ``sample.valid_points()``)
    image:       name -> image-level scalar per component
    shape:       (H, W) of the sample's pixel grid, or None for cloud-only unorganized samples
    valid:       H x W bool of pixels with a 3D point, when the sample is organized
    extra:       anything else a detector's fuse() needs (must stay cheap to keep around)
    """
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    point_maps: dict[str, np.ndarray] = field(default_factory=dict)
    image: dict[str, float] = field(default_factory=dict)
    shape: Optional[tuple[int, int]] = None
    valid: Optional[np.ndarray] = None
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class DetectorResult:
    """What a detector returns for one sample."""
    components: Components
    pixel_map: Optional[np.ndarray]      # fused H x W float32 map at the sample's grid (None: no grid)
    point_scores: Optional[np.ndarray]   # N float32 fused per-point scores (None: no cloud)
    image_score: float
    threshold: Optional[float] = None    # decision threshold on the fused scores (fusion stage)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_anomalous(self) -> Optional[bool]:
        if self.threshold is None:
            return None
        return bool(self.image_score >= self.threshold)


class Detector(abc.ABC):
    """Base class. Subclasses set the class attributes and implement fit/extract/fuse."""

    id: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs()
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, device: str = "cpu", **params: Any):
        self.device = device
        self._values: dict[str, Any] = {p.name: p.default for p in self.params}
        self.fitted = False
        self.set_params(**params)

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.params:
            if p.name == name:
                return p
        raise KeyError(f"detector '{cls.id}' has no parameter '{name}' "
                       f"(it has: {', '.join(p.name for p in cls.params)})")

    def get_params(self) -> dict[str, Any]:
        return dict(self._values)

    def set_params(self, **values: Any) -> set[str]:
        """Set parameters; return the set of stages invalidated by the change."""
        touched: set[str] = set()
        for k, v in values.items():
            p = self.param(k)
            v = p.coerce(v)
            if self._values.get(k) != v:
                self._values[k] = v
                touched.add(p.stage)
        if STAGE_FIT in touched or STAGE_TEXT in touched:
            self.on_invalidate(touched)
        if STAGE_FIT in touched:
            self.fitted = False
        return touched

    def on_invalidate(self, stages: set[str]) -> None:
        """Hook: drop caches that depend on fit/text parameters."""

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    @classmethod
    def fusion_params(cls) -> tuple[Param, ...]:
        return tuple(p for p in cls.params if p.stage == STAGE_FUSION)

    # ------------------------------------------------------------------ stages
    def fit(self, support: Sequence[Sample], progress: Optional[ProgressFn] = None,
            cancel: Optional[CancelFn] = None) -> None:
        """Build support-dependent state. Zero-shot detectors may ignore ``support``."""
        self.fitted = True

    @abc.abstractmethod
    def extract(self, sample: Sample, progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelFn] = None) -> Components:
        """The expensive part: per-modality component maps for one sample."""

    @abc.abstractmethod
    def fuse(self, components: Components, params: Optional[dict[str, Any]] = None) -> DetectorResult:
        """Pure, cheap: combine components with the fusion parameters (``params`` overrides)."""

    def score(self, sample: Sample, progress: Optional[ProgressFn] = None,
              cancel: Optional[CancelFn] = None) -> DetectorResult:
        self.check_sample(sample)
        return self.fuse(self.extract(sample, progress, cancel))

    # ------------------------------------------------------------------ helpers
    def check_sample(self, sample: Sample) -> None:
        """Raise ValueError naming what the sample lacks for this detector."""
        from ..errors import InputError
        src = sample.paths.get("rgb") or sample.paths.get("points") or sample.key
        if self.needs.rgb == "required" and not sample.has_rgb:
            raise InputError(src, f"detector '{self.id}' needs an RGB image and this sample has none")
        if self.needs.points == "required" and not sample.has_points:
            raise InputError(src, f"detector '{self.id}' needs a point cloud and this sample has none")
        if not sample.has_rgb and not sample.has_points:
            raise InputError(src, "sample has neither an RGB image nor a point cloud")

    def merged_params(self, params: Optional[dict[str, Any]]) -> dict[str, Any]:
        vals = dict(self._values)
        if params:
            for k, v in params.items():
                vals[k] = self.param(k).coerce(v)
        return vals

    @staticmethod
    def check_cancel(cancel: Optional[CancelFn]) -> None:
        if cancel is not None and cancel():
            raise Cancelled("cancelled by the user")

    @staticmethod
    def report(progress: Optional[ProgressFn], fraction: float, message: str = "") -> None:
        if progress is not None:
            progress(float(min(max(fraction, 0.0), 1.0)), message)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """A JSON-able description (used by ``main.py detectors`` and the GUI)."""
        return {
            "id": cls.id, "name": cls.name, "description": cls.description,
            "needs": cls.needs.__dict__,
            "params": [{k: v for k, v in p.__dict__.items()} for p in cls.params],
        }
