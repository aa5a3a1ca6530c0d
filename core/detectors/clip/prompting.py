"""Prompt data: WinCLIP's state phrases and templates (anomalib's lists).

Every template x every state gives the ensemble: 147 normal and 84 anomalous prompts.  ``{}`` in a
state takes the object name; ``{}`` in a template takes the state phrase.
"""
from __future__ import annotations

NORMAL_STATES: tuple[str, ...] = (
    "{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
    "{} without damage",
)

ANOMALOUS_STATES: tuple[str, ...] = (
    "damaged {}", "{} with flaw", "{} with defect", "{} with damage",
)

TEMPLATES: tuple[str, ...] = (
    "a cropped photo of the {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of the {}.",
    "a dark photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a jpeg corrupted photo of the {}.",     # listed twice in WinCLIP's list (kept: it weighs the mean)
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of a {}.",
    "a photo of the {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for anomaly detection.",
    "a photo of a {} for anomaly detection.",
)

DEFAULT_OBJECT = "object"


def object_name(name: str, class_name: str) -> str:
    """The object name put in the prompts: the user's text, else the class name (``_`` -> space),
    else "object" (anomalib's fallback)."""
    n = (name or "").strip() or (class_name or "").replace("_", " ").strip()
    return n or DEFAULT_OBJECT


def _fill(pattern: str, value: str) -> str:
    return pattern.replace("{}", value, 1) if "{}" in pattern else f"{pattern} {value}".strip()


def build_prompts(states, templates, obj: str) -> list[str]:
    """Every template filled with every state filled with ``obj`` (template-major order).
    A state or template without ``{}`` gets the value appended."""
    return [_fill(t, _fill(s, obj)) for t in templates for s in states]
