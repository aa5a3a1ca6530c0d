"""Process-wide cache of backbone models, shared by every part class and every detector.

A model is keyed by ``(architecture, pretrained tag, weights file or "random", device, dtype)``: the
ten part classes of a dataset, or the zero-shot and few-shot CLIP detectors, use ONE copy.
:func:`release` drops every model (``Session.set_device`` calls it).

Weights are found exactly as on a user's machine: :func:`core.weights.resolve` looks for the
open_clip ``(arch, tag)`` file (explicit file, ``$MMAD_CLIP_WEIGHTS``, our weights folder, open_clip /
Hugging Face caches) and ``open_clip.create_model(arch, pretrained=<that local file>)`` loads it.
Nothing is downloaded unless ``allow_download``.  ``weights="random"`` builds seeded random weights
(same seed, same weights, in any process): the pipeline runs but its scores mean nothing.

``tiny-test`` is a small CLIP (see :data:`TINY_TEST_CFG`) for tests: random weights only (or a file).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from ..weights import RANDOM, is_random

TINY_TEST = "tiny-test"
#: a 4-layer CLIP at 64 px (8x8 patches of 8 px) that runs an image in a few milliseconds
TINY_TEST_CFG = dict(embed_dim=64,
                     vision_cfg=dict(layers=4, width=64, patch_size=8, head_width=32, image_size=64),
                     text_cfg=dict(width=64, heads=2, layers=2, context_length=77, vocab_size=49408))
RANDOM_SEED = 0

DEFAULT_ARCH, DEFAULT_TAG = "ViT-B-16", "openai"
QUALITY_ARCH, QUALITY_TAG = "ViT-L-14-336", "openai"
WINCLIP_ARCH, WINCLIP_TAG = "ViT-B-16-plus-240", "laion400m_e31"

# OpenAI CLIP normalisation (all the open_clip models used here)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipHandle:
    """A loaded CLIP model and what to feed it."""
    model: Any               # open_clip.CLIP, eval mode, on ``device`` in ``dtype``
    tokenizer: Any           # callable: list[str] -> LongTensor
    arch: str
    pretrained: str
    weights: str             # the file loaded, or "random"
    device: str
    dtype: str
    image_size: int
    patch_size: int

    @property
    def random(self) -> bool:
        return self.weights == RANDOM

    @property
    def depth(self) -> int:
        return len(self.model.visual.transformer.resblocks)


_lock = threading.RLock()
_cache: dict[tuple, ClipHandle] = {}
#: how many models were built (tests check that caches are reused)
BUILD_COUNT = {"clip": 0}


def _size_of(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def _build_random(arch: str):
    import open_clip
    import torch
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        if arch == TINY_TEST:
            return open_clip.CLIP(**TINY_TEST_CFG)
        return open_clip.create_model(arch, pretrained=None)


def _build_from_file(arch: str, path: Path):
    import open_clip
    if arch == TINY_TEST:
        model = _build_random(arch)
        open_clip.load_checkpoint(model, str(path))
        return model
    return open_clip.create_model(arch, pretrained=str(path))


def resolve_weights(arch: str, pretrained: str, weights: Union[None, str, Path] = None,
                    allow_download: bool = False, progress=None, cancel=None) -> str:
    """The weights file for ``(arch, pretrained)`` (``"random"`` stays ``"random"``); raises
    :class:`~core.errors.MissingWeightsError` naming what is missing and how to provide it."""
    if is_random(weights):
        return RANDOM
    if arch == TINY_TEST and not weights:
        return RANDOM   # the test model has no published weights
    from .. import weights as W
    explicit = str(weights) if weights else None
    if arch == TINY_TEST:
        p = Path(explicit)
        if not p.is_file():
            from ..errors import InputError
            raise InputError(p, "weights file not found")
        return str(p)
    spec = W.spec_from_open_clip(arch, pretrained)
    return str(W.resolve(spec, explicit=explicit, allow_download=allow_download, progress=progress,
                         cancel=cancel))


def get_clip(arch: str = DEFAULT_ARCH, pretrained: str = DEFAULT_TAG,
             weights: Union[None, str, Path] = None, device: str = "cpu", dtype: Optional[str] = None,
             allow_download: bool = False, progress=None, cancel=None) -> ClipHandle:
    """The shared CLIP model for these settings, built on first use.

    ``weights``: None (find the published file), ``"random"`` (seeded random weights) or a file.
    ``dtype``: ``"float16"``/``"float32"``; default from :func:`core.devices.default_dtype`.
    """
    from ..devices import default_dtype
    dtype = dtype or default_dtype(device)
    wfile = resolve_weights(arch, pretrained, weights, allow_download, progress, cancel)
    key = (arch, pretrained if wfile != RANDOM else "", wfile, str(device), dtype)
    with _lock:
        h = _cache.get(key)
        if h is not None:
            return h
        import open_clip
        import torch
        model = _build_random(arch) if wfile == RANDOM else _build_from_file(arch, Path(wfile))
        model = model.to(device=torch.device(device), dtype=getattr(torch, dtype)).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        tok = open_clip.get_tokenizer("ViT-B-16") if arch == TINY_TEST else open_clip.get_tokenizer(arch)
        vis = model.visual
        h = ClipHandle(model=model, tokenizer=tok, arch=arch, pretrained=pretrained, weights=wfile,
                       device=str(device), dtype=dtype, image_size=_size_of(vis.image_size),
                       patch_size=_size_of(vis.patch_size))
        BUILD_COUNT["clip"] += 1
        _cache[key] = h
        return h


def loaded() -> list[tuple]:
    """Keys of the models held now."""
    with _lock:
        return list(_cache)


def release() -> None:
    """Drop every cached model (and free the GPU memory they held)."""
    with _lock:
        had_cuda = any(str(k[3]).startswith("cuda") for k in _cache)
        _cache.clear()
    if had_cuda:
        try:
            import torch
            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 - best effort
            pass


__all__ = ["ClipHandle", "get_clip", "release", "loaded", "resolve_weights", "TINY_TEST", "TINY_TEST_CFG",
           "DEFAULT_ARCH", "DEFAULT_TAG", "QUALITY_ARCH", "QUALITY_TAG", "WINCLIP_ARCH", "WINCLIP_TAG",
           "CLIP_MEAN", "CLIP_STD", "BUILD_COUNT", "RANDOM"]
