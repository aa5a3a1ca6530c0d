"""Errors raised by the headless core.

Every problem with user input is raised as a :class:`InputError` subclass whose message names the
file (or folder) and the problem in plain words, so the CLI and the GUI can show it as is and never
a library traceback.
"""
from __future__ import annotations

from pathlib import Path


class MMADError(Exception):
    """Base class of all errors the core raises on purpose."""


class InputError(MMADError):
    """A file or folder the user gave cannot be used.

    ``path`` is the offending file/folder, ``problem`` a short human sentence.
    ``str(err)`` is ``"<path>: <problem>"``.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)

    def __reduce__(self):  # survive the trip from a worker process (custom __init__ signature)
        return (type(self), (self.path, self.problem))


class OutputWriteError(InputError, OSError):
    """An output file (an export, a report, a map, a saved fit, a checkpoint, the settings) cannot be
    written.  ``path`` is the file, ``problem`` why; it is also an :class:`OSError` (``filename``,
    ``strerror``), so code that guards file writes with ``except OSError`` keeps working."""

    def __init__(self, path: str | Path | None, problem: str):
        super().__init__(path, problem)
        self.filename = None if path is None else str(path)
        self.strerror = problem

    def __str__(self) -> str:   # OSError's would print "[Errno ...]"
        return f"{self.path}: {self.problem}" if self.path is not None else self.problem

    def __reduce__(self):       # survive the trip from the detector process
        return (type(self), (self.path, self.problem))


class SampleLoadError(InputError):
    """A sample's file is missing, truncated, corrupt or inconsistent with its siblings."""


class EmptyDatasetError(InputError):
    """A folder holds no sample in any known layout."""


class ChecksumError(InputError):
    """A weights file's SHA-256 differs from the published one (truncated, corrupt or another file)."""


class InvalidResultError(InputError):
    """A detector gave no usable result for a sample (a NaN or infinite image score): the sample is
    reported as skipped, never as scored ("ok")."""


class MissingWeightsError(MMADError):
    """A detector's weights are not available locally (and could not be downloaded).

    ``spec`` is the :class:`core.weights.WeightSpec` that is missing (or ``None``), ``tried`` the
    places that were looked at, in order, as ``(path, what was wrong)`` pairs, ``str(err)`` the whole
    message: what is missing, its size, and every way to provide it (see :mod:`core.weights`).
    """

    def __init__(self, message: str, spec: object = None, tried: tuple = ()):
        self.spec = spec
        self.tried = tuple((Path(p), str(why)) for p, why in tried)
        self.message = message
        super().__init__(message)

    def __reduce__(self):  # survive the trip from the detector process (custom __init__ signature)
        return (type(self), (self.message, self.spec, self.tried))


class Cancelled(MMADError):
    """A long operation was cancelled by the user."""


class UnknownDetectorError(MMADError, KeyError):
    """No detector is registered under the id the user gave."""

    def __str__(self) -> str:  # KeyError quotes its argument; a user message must read plainly
        return str(self.args[0]) if self.args else ""


class UnknownParameterError(MMADError, KeyError):
    """A detector has no parameter of the name the user gave."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidParameterError(MMADError, ValueError):
    """A parameter value is out of range or of the wrong kind."""


class NotFittedError(MMADError, RuntimeError):
    """A detector was asked to score before it was fitted (``fit`` or ``load_state``)."""


class UsageError(MMADError, ValueError):
    """A command-line argument or API argument is not valid (e.g. ``--shots 0``)."""
