"""Score maths on numpy arrays: text softmax maps, visual discrepancy, upsampling (the smoothing is
:func:`core.detectors.postprocess.smooth_maps`)."""
from __future__ import annotations

import cv2
import numpy as np

from .text import l2n

TEMPERATURE = 0.07


def anomaly_prob(features: np.ndarray, text: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """softmax(cos(f, [t_normal, t_anomalous]) / T)[anomalous] for features (..., D); text (2, D)
    normalised.  With two classes this equals AnomalyCLIP's (p_anom + 1 - p_norm) / 2."""
    f = l2n(features)
    logits = (f @ np.asarray(text, np.float32).T) / float(temperature)      # (..., 2)
    logits = logits - logits.max(-1, keepdims=True)
    e = np.exp(logits)
    return (e[..., 1] / e.sum(-1)).astype(np.float32)


def layer_text_maps(tokens: dict, text: np.ndarray, grid: tuple[int, int],
                    temperature: float = TEMPERATURE) -> np.ndarray:
    """Per-patch anomaly probability, averaged over layers: tokens {layer: (B, N, D)} -> (B, gh, gw)."""
    maps = [anomaly_prob(t, text, temperature) for _, t in sorted(tokens.items())]
    m = np.mean(maps, 0)
    return m.reshape(m.shape[0], grid[0], grid[1])


def discrepancy(tokens: np.ndarray, memory: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """CMAD / WinCLIP visual association: 0.5 * (1 - max cosine to the memory) per token.
    tokens (..., D), memory (M, D) -> (...)."""
    shape = tokens.shape[:-1]
    f = l2n(tokens.reshape(-1, tokens.shape[-1]))
    mem = l2n(memory)
    out = np.empty(len(f), np.float32)
    for i in range(0, len(f), chunk):
        out[i:i + chunk] = (f[i:i + chunk] @ mem.T).max(1)
    return (0.5 * (1.0 - out)).reshape(shape)


def layer_visual_maps(tokens: dict, memory: dict, grid: tuple[int, int]) -> np.ndarray:
    """Mean over layers of the discrepancy to that layer's memory -> (B, gh, gw)."""
    maps = [discrepancy(tokens[l], memory[l]) for l in sorted(tokens)]
    m = np.mean(maps, 0)
    return m.reshape(m.shape[0], grid[0], grid[1])


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(B, gh, gw) -> (B, H, W) bilinear (half-pixel centres, as torch align_corners=False)."""
    h, w = int(size[0]), int(size[1])
    return np.stack([cv2.resize(np.asarray(m, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                     for m in maps])


def global_prob(global_emb: np.ndarray, text: np.ndarray, temperature: float = TEMPERATURE) -> np.ndarray:
    """Image-level anomaly probability of global embeddings (B, D) -> (B,)."""
    return anomaly_prob(global_emb, text, temperature)
