"""What a weights file is: :class:`WeightSpec`, the catalogue of known files, where a file is
downloaded from, and the message that says how to provide a missing one."""
from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

from .. import paths
from ..errors import MissingWeightsError

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]
PathLike = Union[str, os.PathLike]

RANDOM = "random"
HF_DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class WeightSpec:
    """One weights file a detector needs.

    ``filename`` is the name under :func:`core.paths.weights_dir` (and the default name in the hub
    repository); ``size`` is in bytes (approximate is fine: it is for messages and progress);
    ``sha256`` the full hex digest when known.  The file comes from ``hf_repo``/``hf_filename`` on the
    Hugging Face hub (at ``hf_revision``) or from ``url``.  ``open_clip`` is the ``(model name,
    pretrained tag)`` pair this file is for, used to look in open_clip's caches and in messages.
    """

    id: str
    filename: str
    size: int
    sha256: Optional[str] = None
    url: Optional[str] = None
    hf_repo: Optional[str] = None
    hf_filename: Optional[str] = None
    hf_revision: str = "main"
    env_var: Optional[str] = None
    open_clip: Optional[tuple[str, str]] = None
    description: str = ""
    license: str = ""

    @property
    def size_mb(self) -> float:
        return self.size / 1e6

    @property
    def title(self) -> str:
        return self.description or self.id


def is_random(explicit: Optional[PathLike]) -> bool:
    """True for the explicit choice ``"random"`` (random weights, no file)."""
    return isinstance(explicit, str) and explicit.strip().lower() == RANDOM


# ------------------------------------------------------------------------------------ catalogue
# Hub locations as open_clip 3.3 declares them (open_clip.pretrained._PRETRAINED; a test checks them
# against open_clip when it is installed).  Kept here so the GUI process can say what is missing
# without importing open_clip (which imports torch).  Sizes are the fp32 safetensors files.
CATALOG: dict[str, WeightSpec] = {s.id: s for s in (
    WeightSpec(
        id="clip-vit-b-16-openai", filename="vit_b_16_openai.safetensors", size=598_600_000,
        sha256="4b8699299b1e8997753c64b052ba32031449d5d853f55a039148560ee02b820f",
        hf_repo="timm/vit_base_patch16_clip_224.openai", hf_filename="open_clip_model.safetensors",
        env_var="MMAD_CLIP_WEIGHTS", open_clip=("ViT-B-16", "openai"),
        description="OpenAI CLIP ViT-B/16 (224 px)", license="MIT (OpenAI CLIP)"),
    WeightSpec(
        id="clip-vit-l-14-336-openai", filename="vit_l_14_336_openai.safetensors", size=1_712_000_000,
        hf_repo="timm/vit_large_patch14_clip_336.openai", hf_filename="open_clip_model.safetensors",
        env_var="MMAD_CLIP_WEIGHTS", open_clip=("ViT-L-14-336", "openai"),
        description="OpenAI CLIP ViT-L/14 (336 px)", license="MIT (OpenAI CLIP)"),
    WeightSpec(
        id="clip-vit-b-16-plus-240-laion400m-e31", filename="vit_b_16_plus_240_laion400m_e31.safetensors",
        size=834_000_000,
        hf_repo="timm/vit_base_patch16_plus_clip_240.laion400m_e31", hf_filename="open_clip_model.safetensors",
        url="https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/"
            "vit_b_16_plus_240-laion400m_e31-8fb26589.pt",
        env_var="MMAD_CLIP_WEIGHTS", open_clip=("ViT-B-16-plus-240", "laion400m_e31"),
        description="OpenCLIP ViT-B/16+ (240 px, LAION-400M epoch 31; WinCLIP's backbone)",
        license="MIT (OpenCLIP)"),
)}


def get_spec(spec_or_id: Union[WeightSpec, str]) -> WeightSpec:
    """A spec from the catalogue by id (or ``(model, tag)`` as ``"ViT-B-16:openai"``), or the spec itself."""
    if isinstance(spec_or_id, WeightSpec):
        return spec_or_id
    if spec_or_id in CATALOG:
        return CATALOG[spec_or_id]
    for s in CATALOG.values():
        if s.open_clip and ":".join(s.open_clip).lower() == spec_or_id.lower():
            return s
    raise KeyError(f"unknown weights {spec_or_id!r} (known: {', '.join(sorted(CATALOG))})")


def spec_from_open_clip(model: str, tag: str, env_var: Optional[str] = "MMAD_CLIP_WEIGHTS") -> WeightSpec:
    """A spec for any open_clip ``(model, pretrained tag)``: the catalogue's when it has one, else built
    from ``open_clip.pretrained.get_pretrained_cfg`` (imports open_clip, hence torch: call it in the
    worker process, not the GUI)."""
    for s in CATALOG.values():
        if s.open_clip == (model, tag):
            return s
    from open_clip import pretrained as ocp  # lazy: imports torch
    cfg = ocp.get_pretrained_cfg(model, tag)
    if not cfg:
        raise KeyError(f"open_clip has no pretrained weights {model!r} / {tag!r}")
    hub = cfg.get("hf_hub") or ""
    repo, hub_file = os.path.split(hub.rstrip("/")) if hub.count("/") >= 2 else (hub.rstrip("/"), "")
    url = cfg.get("url") or None
    safe = lambda s: "".join(c if c.isalnum() else "_" for c in s.lower())  # noqa: E731
    ext = os.path.splitext(hub_file or (url or ""))[1] or ".safetensors"
    return WeightSpec(
        id=f"open_clip-{safe(model)}-{safe(tag)}", filename=f"{safe(model)}_{safe(tag)}{ext}", size=0,
        hf_repo=repo or None, hf_filename=(hub_file or "open_clip_model.safetensors") if repo else None,
        url=url, env_var=env_var, open_clip=(model, tag),
        description=f"open_clip {model} / {tag}", license="see the model card")


def missing_message(spec: WeightSpec, tried: Sequence[tuple[Path, str]] = (), reason: str = "") -> str:
    """What is missing, its size, where we looked and every way to provide it."""
    target = paths.weights_dir(create=False) / spec.filename
    what = f"{spec.title} weights ({spec.id}, {spec.size_mb:.0f} MB)" if spec.size else f"{spec.title} weights ({spec.id})"
    lines = [f"missing {what}" + (f": {reason}" if reason else "")]
    origin = f" ({spec.hf_filename} of {spec.hf_repo})" if spec.hf_repo and spec.hf_filename else ""
    ways = [f"put the file{origin} at {target}"]
    if spec.env_var:
        ways.append(f"or set {spec.env_var}=/path/to/file")
    ways += ["or pass --weights FILE", "or choose the file in the GUI (Detector panel > Weights...)",
             "or run with network access once"]
    lines.append("To provide it: " + ", ".join(ways) + ".")
    src = download_url(spec)
    if src:
        lines.append(f"It is downloaded from {src}" + (f" (SHA-256 {spec.sha256})." if spec.sha256 else "."))
    if spec.open_clip:
        lines.append(f"A copy in open_clip's cache for {spec.open_clip[0]} / {spec.open_clip[1]} "
                     f"(Hugging Face hub cache or ~/.cache/clip) is used as is.")
    if tried:
        lines.append("Looked in: " + "; ".join(f"{p} ({why})" for p, why in tried) + ".")
    if spec.license:
        lines.append(f"License: {spec.license}.")
    return "\n".join(lines)


def missing_error(spec: WeightSpec, tried: Sequence[tuple[Path, str]], reason: str = "") -> MissingWeightsError:
    return MissingWeightsError(missing_message(spec, tried, reason), spec=spec, tried=tuple(tried))


def download_url(spec: WeightSpec) -> Optional[str]:
    """Where the file is downloaded from: the hub (``$HF_ENDPOINT``) when the spec names a hub file, else ``url``."""
    if spec.hf_repo and spec.hf_filename:
        base = (os.environ.get("HF_ENDPOINT", "").strip() or HF_DEFAULT_ENDPOINT).rstrip("/")
        rev = urllib.parse.quote(spec.hf_revision, safe="")
        return f"{base}/{spec.hf_repo}/resolve/{rev}/{urllib.parse.quote(spec.hf_filename)}"
    return spec.url


def part_path(spec: WeightSpec) -> Path:
    """Where an unfinished download of the spec's file lies (resumed by the next download)."""
    return paths.weights_dir(create=False) / (spec.filename + ".part")


