"""Text side: prompt ensembles -> the [normal, anomalous] embedding pair, cached per prompt set."""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Sequence

import numpy as np

from .prompting import build_prompts

EncodeFn = Callable[[Sequence[str]], np.ndarray]   # prompts -> (P, D) unnormalised embeddings


def l2n(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def ensemble(embeddings: np.ndarray) -> np.ndarray:
    """WinCLIP's ensemble: the plain mean of the UNnormalised prompt embeddings (normalised later)."""
    return np.asarray(embeddings, np.float32).mean(0)


def text_pair(encode: EncodeFn, normal_states, anomalous_states, templates, obj: str) -> np.ndarray:
    """(2, D) L2-normalised [normal, anomalous] class embeddings."""
    if not normal_states or not anomalous_states or not templates:
        raise ValueError("the prompts need at least one normal state, one anomalous state and one template")
    n = build_prompts(normal_states, templates, obj)
    a = build_prompts(anomalous_states, templates, obj)
    emb = np.asarray(encode(n + a), np.float32)
    return l2n(np.stack([ensemble(emb[:len(n)]), ensemble(emb[len(n):])]))


class PromptCache:
    """Embeddings of single prompts, so an edit re-encodes only the prompts that are new."""

    def __init__(self, capacity: int = 8192):
        self.capacity = capacity
        self._d: OrderedDict = OrderedDict()

    def encoder(self, encode: EncodeFn) -> EncodeFn:
        def run(prompts: Sequence[str]) -> np.ndarray:
            new = [p for p in dict.fromkeys(prompts) if p not in self._d]
            if new:
                for p, e in zip(new, np.asarray(encode(new), np.float32)):
                    self._d[p] = e
            out = np.stack([self._d[p] for p in prompts])
            for p in prompts:
                self._d.move_to_end(p)
            while len(self._d) > self.capacity:
                self._d.popitem(last=False)
            return out
        return run

    def clear(self) -> None:
        self._d.clear()


class TextCache:
    """A few recent prompt sets -> their text pair (so toggling a prompt back costs nothing)."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._d: OrderedDict = OrderedDict()

    def get(self, key, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self._d:
            self._d.move_to_end(key)
            return self._d[key]
        v = make()
        self._d[key] = v
        while len(self._d) > self.capacity:
            self._d.popitem(last=False)
        return v

    def clear(self) -> None:
        self._d.clear()
