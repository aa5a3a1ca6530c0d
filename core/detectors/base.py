"""The detector interface every detector implements.

A detector *declares* what it needs (:class:`Needs`) and its tunable parameters (:class:`Param`,
with defaults, ranges and the *stage* they affect), so that front-ends (CLI, GUI) can build their
controls from the declaration alone.

Work is split in stages so that cheap changes never redo expensive work:

* ``fit(support, *, class_name)`` - builds whatever depends on the support (few-shot) samples of
  one part class and returns a :class:`~core.detectors.state.FitState` (arrays + JSON-able
  metadata, saved without pickle).  Zero-shot detectors are fitted too, on an empty support: the
  class name is what they use ("a photo of a {cookie}").  ``load_state(state)`` puts a state
  computed elsewhere (another process, a saved file) into an instance, so the instance that fuses
  is never hollow.
* ``extract(sample)``   - the expensive part: backbones, descriptors, nearest-neighbour search.
                          Returns :class:`Components`: per-modality maps kept apart.
* ``rescore(components)`` - re-derives the text-dependent maps from cached image/view tokens
                          after a ``text``-stage parameter (a prompt) changed; never reruns the
                          image backbone.  The default returns the components unchanged.
* ``fuse(components)``  - a *pure* and cheap function of the components and the ``fusion``-stage
                          parameters (weights, smoothing, threshold).  Changing a fusion weight
                          only reruns this (milliseconds).

``score(sample)`` is ``fuse(extract(sample))``.

**Construction is cheap.**  ``__init__`` stores parameter values and nothing else: no backbone, no
weights, no file.  Heavy objects are created on first use (``fit``/``extract``) through
:mod:`core.backbones`, whose cache is shared by every class and detector of a process, so creating
one instance per part class (or listing detectors in the GUI process) costs nothing.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional, Sequence

import numpy as np

from ..errors import Cancelled, InvalidParameterError, MMADError, NotFittedError, UnknownParameterError
from ..sample import Sample
from .schema import StateSchema
from .state import FitState, FitStateError, support_hash

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
            raise InvalidParameterError(f"parameter '{self.name}': {value!r} is not a valid {self.kind}"
                             + (f" (one of {', '.join(map(str, self.choices))})" if self.choices else "")) from None
        if self.kind in ("float", "int"):
            if self.min is not None and v < self.min or self.max is not None and v > self.max:
                raise InvalidParameterError(f"parameter '{self.name}': {v} is outside [{self.min}, {self.max}]")
        return v


@dataclass(frozen=True)
class Needs:
    """What a detector needs. rgb/points: 'required', 'optional' or 'unused'."""
    rgb: str = "optional"
    points: str = "optional"
    text_prompts: bool = False
    support: int = 0            # minimum number of good support samples (0: zero-shot)
    default_support: int = 0    # the default number of shots
    training: bool = False      # needs a training run beyond fit(support) (:mod:`core.training`);
                                # the one answer to "is it trainable" (:meth:`Detector.trainable`)
    weights: bool = False       # needs downloaded/pretrained weights


@dataclass(frozen=True)
class Capabilities:
    """What a detector does beyond the required ``fit`` / ``extract`` / ``fuse``; front ends ask
    these flags and call the declared hooks, never probe with ``getattr``.

    calibrates:    ``calibrate(components)`` learns the decision threshold from good parts it never
                   saw (:meth:`Detector.calibration_refs` chooses them), and ``decision_threshold``
                   depends on the fit (``threshold`` = 0 means "calibrated")
    rescores_text: ``rescore`` re-derives text-dependent maps from cached tokens (prompt edits)
    views:         results carry rendered views (:class:`core.render.ViewStrip`)
    """
    calibrates: bool = False
    rescores_text: bool = False
    views: bool = False


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
    modalities: str = ""                 # what was used, in words: "RGB ✓ 3D ✓ fused at image level"
    views: Any = None                    # view-based 3D: core.render.ViewStrip (rendered views + per-view maps)

    @property
    def is_anomalous(self) -> Optional[bool]:
        """None when undecided: no threshold, or no finite score (NaN is neither anomalous nor ok)."""
        if self.threshold is None or not math.isfinite(self.image_score):
            return None
        return bool(self.image_score >= self.threshold)


class Detector(abc.ABC):
    """Base class. Subclasses set the class attributes and implement ``build_state`` /
    ``restore_state`` (what ``fit`` learns), ``extract`` and ``fuse``.

    The lifecycle, the same in the GUI, ``eval`` and ``score`` (all through
    :class:`core.session.Session`)::

        det = create("memory-bank")                          # cheap: parameters only
        state = det.fit(support, class_name="cookie")        # -> FitState (also loaded into det)
        other.load_state(state)                              # e.g. the GUI-side instance
        comps = det.extract(sample)                          # expensive, per sample
        comps = det.rescore(comps)                           # after a prompt edit (text stage)
        result = det.fuse(comps)                             # pure, milliseconds
    """

    id: ClassVar[str] = ""
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    needs: ClassVar[Needs] = Needs()
    capabilities: ClassVar[Capabilities] = Capabilities()
    params: ClassVar[tuple[Param, ...]] = ()
    #: bumped whenever the meaning of a saved FitState changes (old saved fits are then refitted)
    state_version: ClassVar[str] = "1"
    #: the arrays a FitState of this detector holds (:mod:`core.detectors.schema`); ``load_state``
    #: refuses a state that does not match it (None: nothing declared, nothing checked)
    state_schema: ClassVar[Optional[StateSchema]] = None

    def __init__(self, device: str = "cpu", **params: Any):
        self.device = device
        self._values: dict[str, Any] = {p.name: p.default for p in self.params}
        self._state: Optional[FitState] = None
        self.set_params(**params)

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param(cls, name: str) -> Param:
        for p in cls.params:
            if p.name == name:
                return p
        raise UnknownParameterError(f"detector '{cls.id}' has no parameter '{name}' "
                                    f"(it has: {', '.join(p.name for p in cls.params)})")

    def get_params(self) -> dict[str, Any]:
        return dict(self._values)

    def fit_params(self) -> dict[str, Any]:
        """The values of the fit-stage parameters (what a FitState depends on)."""
        return {p.name: self._values[p.name] for p in self.params if p.stage == STAGE_FIT}

    def set_params(self, **values: Any) -> set[str]:
        """Set parameters; return the set of stages invalidated by the change.

        Every value is validated first (:class:`InvalidParameterError`, :class:`UnknownParameterError`):
        a bad value changes nothing.
        """
        coerced = {k: self.param(k).coerce(v) for k, v in values.items()}
        touched: set[str] = set()
        for k, v in coerced.items():
            if self._values.get(k) != v:
                self._values[k] = v
                touched.add(self.param(k).stage)
        if STAGE_FIT in touched or STAGE_TEXT in touched:
            self.on_invalidate(touched)
        if STAGE_FIT in touched:
            self._state = None
        return touched

    def on_invalidate(self, stages: set[str]) -> None:
        """Hook: drop caches that depend on fit/text parameters."""

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    @classmethod
    def fusion_params(cls) -> tuple[Param, ...]:
        return tuple(p for p in cls.params if p.stage == STAGE_FUSION)

    @classmethod
    def text_params(cls) -> tuple[Param, ...]:
        return tuple(p for p in cls.params if p.stage == STAGE_TEXT)

    # ------------------------------------------------------------------ weights
    @classmethod
    def weight_specs(cls, params: Optional[dict[str, Any]] = None) -> tuple:
        """The :class:`core.weights.WeightSpec` s the detector needs with these parameters
        (none for weight-free detectors), so front-ends can say *before* a run what is missing."""
        return ()

    @classmethod
    def trainable(cls) -> bool:
        """Whether the detector needs a training run (:func:`core.training.train`) before use."""
        return bool(cls.needs.training)

    # ------------------------------------------------------------------ decision threshold
    def decision_threshold(self, params: Optional[dict[str, Any]] = None) -> Optional[float]:
        """The threshold ``fuse`` decides with (an image is anomalous when its score is at least
        this), for these fusion parameters (``params`` overrides): the declared ``threshold``
        parameter, or None when the detector has none.  Detectors that calibrate override it
        (``threshold`` = 0: the calibrated value; None while not fitted)."""
        if not any(p.name == "threshold" for p in self.params):
            return None
        t = float(self.merged_params(params)["threshold"])
        return t if math.isfinite(t) else None

    def calibration_refs(self, dataset: Any, class_name: str, support: Sequence[Any] = ()) -> list:
        """The held-out good parts to calibrate on (``capabilities.calibrates`` only): by default
        :meth:`Dataset.calibration_refs <core.datasets.base.Dataset.calibration_refs>`."""
        return list(dataset.calibration_refs(class_name, list(support)))

    def calibrate(self, components: Sequence[Components]) -> FitState:
        """Learn the decision threshold from the extracted ``components`` of held-out good parts
        and return the (extended) fit state.  Only called when ``capabilities.calibrates``."""
        raise NotImplementedError(f"detector '{self.id}' does not calibrate a threshold")

    # ------------------------------------------------------------------ fit state
    @property
    def fitted(self) -> bool:
        return self._state is not None

    @property
    def state(self) -> Optional[FitState]:
        return self._state

    def fit(self, support: Sequence[Sample], *, class_name: str = "", progress: Optional[ProgressFn] = None,
            cancel: Optional[CancelFn] = None, support_key: Optional[str] = None) -> FitState:
        """Learn from the good ``support`` samples of part class ``class_name`` (may be empty for
        zero-shot detectors); returns the :class:`FitState`, which this instance now holds.

        ``support_key`` is the support set's content hash when the caller already computed it
        (see :func:`core.detectors.state.support_hash`).
        """
        support = list(support)
        if len(support) < self.needs.support:
            from ..errors import InputError
            raise InputError(None, f"detector '{self.id}' needs at least {self.needs.support} good "
                                   f"support sample(s) of class '{class_name or '?'}', got {len(support)}")
        self._state = None
        self.on_invalidate({STAGE_FIT})
        arrays, meta = self.build_state(support, class_name, progress, cancel)
        state = FitState(detector=self.id, version=str(self.state_version), class_name=class_name,
                         params=self.fit_params(),
                         support_hash=support_key if support_key is not None else support_hash(support),
                         n_support=len(support), arrays=dict(arrays), meta=dict(meta))
        self.load_state(state)
        self.report(progress, 1.0, "fitted")
        return state

    def load_state(self, state: FitState) -> None:
        """Hold a state computed elsewhere (a worker process, a saved file).

        Refuses (:class:`~core.detectors.state.FitStateError`, naming the state's file) a state of
        another detector, version or fit parameters, one whose arrays do not match the declared
        structure (:meth:`check_state`), and one that ``restore_state`` cannot use.
        """
        if state.detector != self.id or str(state.version) != str(self.state_version):
            raise FitStateError(state.source, f"a fit of '{state.detector}' v{state.version} cannot be loaded into "
                                              f"'{self.id}' v{self.state_version}")
        mine = self.fit_params()
        theirs = {k: state.params.get(k) for k in mine}
        from .state import params_key
        if params_key(mine) != params_key(theirs):
            raise FitStateError(state.source, f"the fit of '{self.id}' was made with other fit parameters")
        self.check_state(state)
        self.on_invalidate({STAGE_FIT})
        try:
            self.restore_state(state)
        except MMADError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as e:   # a state the declaration did not catch
            self.on_invalidate({STAGE_FIT})
            self._state = None
            raise FitStateError(state.source, f"the fit of '{self.id}' cannot be restored "
                                              f"({type(e).__name__}: {e})") from None
        self._state = state

    # ------------------------------------------------------------------ fit state: declared structure
    def check_state(self, state: FitState) -> None:
        """Refuse (:class:`~core.detectors.state.FitStateError`) a state whose arrays do not match
        :attr:`state_schema`: missing, of another data type or shape, sizes that disagree, NaN where
        numbers are needed.  Detectors extend it (calling this) for what a declaration cannot say."""
        if self.state_schema is not None:
            self.state_schema.check(state, self.state_sizes(state))

    def state_sizes(self, state: FitState) -> dict[str, int]:
        """Sizes that named dimensions of :attr:`state_schema` must have with the current
        parameters (e.g. the patch grid); none by default."""
        return {}

    def build_state(self, support: list[Sample], class_name: str, progress: Optional[ProgressFn],
                    cancel: Optional[CancelFn]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Compute what the detector learns: ``(arrays, meta)``, numeric arrays and JSON-able
        metadata only.  The default (nothing to learn) suits detectors that use only the class name."""
        return {}, {}

    def restore_state(self, state: FitState) -> None:
        """Rebuild the detector's working objects from a state (inverse of ``build_state``)."""

    def require_fitted(self) -> FitState:
        if self._state is None:
            raise NotFittedError(f"detector '{self.id}' is not fitted: fit it on the class's support "
                                 f"samples first (or load a saved fit)")
        return self._state

    # ------------------------------------------------------------------ stages
    @abc.abstractmethod
    def extract(self, sample: Sample, progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelFn] = None) -> Components:
        """The expensive part: per-modality component maps for one sample."""

    def rescore(self, components: Components, progress: Optional[ProgressFn] = None,
                cancel: Optional[CancelFn] = None) -> Components:
        """Re-derive text-dependent maps after a ``text``-stage change, from cached tokens only."""
        return components

    @abc.abstractmethod
    def fuse(self, components: Components, params: Optional[dict[str, Any]] = None) -> DetectorResult:
        """Pure, cheap: combine components with the fusion parameters (``params`` overrides)."""

    def score(self, sample: Sample, progress: Optional[ProgressFn] = None,
              cancel: Optional[CancelFn] = None) -> DetectorResult:
        self.check_sample(sample)
        self.require_fitted()
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
            "capabilities": cls.capabilities.__dict__,
            "params": [{k: v for k, v in p.__dict__.items()} for p in cls.params],
            "state_version": cls.state_version,
        }
