"""What the session reports per sample and per run (records, analyses, run summaries) and the
plain-words text of errors; no Qt, no detector work."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..datasets.base import SampleRef
from ..detectors.base import Components, DetectorResult, ProgressFn
from ..errors import MissingWeightsError, MMADError, SampleLoadError
from ..sample import Sample


# ---------------------------------------------------------------------- records
@dataclass
class SampleRecord:
    """What the session knows about one sample; cheap, kept for every sample of the dataset."""
    ref: SampleRef
    image_score: Optional[float] = None
    threshold: Optional[float] = None
    anomalous: Optional[bool] = None
    stale: bool = False            # the score was computed with parameters that changed since
    error: Optional[str] = None    # why the last analysis failed (plain words)
    seconds: float = 0.0           # extract time of the last analysis

    @property
    def key(self) -> str:
        return self.ref.key

    @property
    def decision(self) -> Optional[str]:
        if self.anomalous is None:
            return None
        return "anomalous" if self.anomalous else "good"


@dataclass
class CacheEntry:
    """A sample's cached components and fused result, with the session generations they belong to."""
    components: Components
    result: DetectorResult
    generation: int          # component generation of the sample's class when extracted
    fusion_generation: int   # fusion parameters the result was fused with
    text_generation: int = 0  # text parameters the components were (re)scored with


@dataclass
class Analysis:
    """The outcome of :meth:`Session.analyze` for one sample."""
    ref: SampleRef
    sample: Sample
    result: DetectorResult
    seconds: float
    fit_seconds: float = 0.0
    stale: bool = False


@dataclass
class RunSummary:
    """The outcome of :meth:`Session.run`: analysed keys, skipped samples with the reason."""
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0

    def message(self) -> str:
        parts = [f"{len(self.done)} sample(s) analysed in {self.seconds:.1f} s"]
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        if self.cancelled:
            parts.append("cancelled")
        return ", ".join(parts)


def sub_progress(progress: Optional[ProgressFn], lo: float, hi: float) -> Optional[ProgressFn]:
    """A progress callback whose 0..1 is ``lo``..``hi`` of ``progress`` (None stays None)."""
    if progress is None:
        return None
    return lambda f, msg="": progress(lo + (hi - lo) * min(max(float(f), 0.0), 1.0), msg)


def describe_error(err: BaseException) -> str:
    """A plain-words message for an error, with what to do for the kinds the user can fix."""
    if isinstance(err, MissingWeightsError):
        return (f"{err} (or pick a detector that needs no weights, e.g. memory-bank)")
    if isinstance(err, SampleLoadError):
        return f"{err} - the file is skipped; replace or remove it and reload the folder."
    if isinstance(err, MMADError):
        return str(err)
    if isinstance(err, RecursionError):
        return "a file is nested too deeply to read (corrupt?)"
    if isinstance(err, MemoryError):
        return "out of memory - close other programs or lower the detector's working size."
    return f"unexpected error in the detector ({type(err).__name__}: {err})"
