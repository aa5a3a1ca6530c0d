"""WinCLIP scoring (Jeong et al. 2023, as anomalib implements it), on our CLIP handle.

Written from the description, in torch, so that the same random-weight model gives anomalib's numbers
(``benchmarks/parity_winclip.py`` measures it):

* input: 240 px (ViT-B-16-plus-240), bicubic antialiased resize, CLIP mean/std (``clip_dense.preprocess``);
* text: every state x every template (state-major, as anomalib), the plain mean of the UNnormalised
  embeddings per class, stacked [normal, anomalous]; class score softmax(cos / 0.07)[anomalous];
* windows: k x k patch windows (k = 2, 3; stride 1).  Each window is CLS + its tokens taken from the
  tokens before ``ln_pre`` (positional embeddings kept), re-encoded alone: ln_pre -> transformer ->
  ln_post -> CLS -> proj;
* zero-shot map: per scale the harmonic mean of the window scores covering each patch; then the
  harmonic mean of [image score, scale maps];
* few-shot: association min over every reference vector of (1 - cos) / 2 for the 896-d ln_post patch
  tokens (unprojected) and for the window embeddings of each scale; the mean of the patch map and the
  harmonic-aggregated window maps;
* combination: pixel = (zero-shot + few-shot) / 2, image = (s_img + max few-shot) / 2; bilinear to the
  input size.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .prompting import ANOMALOUS_STATES, NORMAL_STATES, TEMPLATES

TEMPERATURE = 0.07
SCALES = (2, 3)


def prompts_state_major(states: Sequence[str], templates: Sequence[str], obj: str) -> list[str]:
    """anomalib's order: for every state, every template."""
    return [t.format(s.format(obj)) for s in states for t in templates]


def window_masks(grid: tuple[int, int], k: int) -> np.ndarray:
    """(n_windows, k*k) patch indices of every k x k window, stride 1, windows and patches row-major."""
    h, w = grid
    if h < k or w < k:
        raise ValueError(f"grid {grid} smaller than the window {k}")
    idx = np.arange(h * w).reshape(h, w)
    return np.stack([idx[i:i + k, j:j + k].ravel() for i in range(h - k + 1) for j in range(w - k + 1)])


def coverage(grid: tuple[int, int], masks: np.ndarray) -> np.ndarray:
    """(n_patches, n_windows) bool: patch p lies in window w."""
    cov = np.zeros((grid[0] * grid[1], len(masks)), bool)
    for wi, m in enumerate(masks):
        cov[m, wi] = True
    return cov


def harmonic_aggregation(window_scores, cov):
    """(B, n_windows) window scores -> (B, n_patches): n / sum(1 / s) over the windows covering each patch
    (inf / NaN -> 0)."""
    import torch
    c = torch.as_tensor(cov, device=window_scores.device)
    inv = (1.0 / window_scores) @ c.to(window_scores.dtype).T
    out = c.sum(1).to(window_scores.dtype) / inv
    return torch.nan_to_num(out, nan=0.0, posinf=0.0)


def _cos(a, b):
    """cosine similarities of a (B, N, D) to b (M, D) -> (B, N, M)."""
    import torch.nn.functional as F
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def class_scores(emb, text, temperature: float = TEMPERATURE):
    """softmax(cos(emb, text) / T)[..., 1] for emb (..., D), text (2, D) unnormalised."""
    import torch.nn.functional as F
    logits = (F.normalize(emb, dim=-1) @ F.normalize(text, dim=-1).T) / temperature
    return logits.softmax(-1)[..., 1]


def association(emb, reference):
    """min over all reference vectors of (1 - cos) / 2: emb (B, N, D), reference (..., D) -> (B, N)."""
    ref = reference.reshape(-1, emb.shape[-1])
    return (1.0 - _cos(emb, ref)).min(-1)[0] / 2


@dataclass
class Encoded:
    image: object                 # (B, E) projected image embedding
    patches: object               # (B, N, W) ln_post patch tokens, unprojected
    windows: list = field(default_factory=list)   # per scale (B, n_windows, E)


class WinClip:
    """WinCLIP on an open_clip CLIP model (float32 recommended for parity)."""

    def __init__(self, model, tokenizer, scales: Sequence[int] = SCALES, temperature: float = TEMPERATURE):
        self.model, self.tokenizer = model, tokenizer
        self.scales = tuple(int(s) for s in scales)
        self.temperature = float(temperature)
        vis = model.visual
        g = vis.grid_size if hasattr(vis, "grid_size") else None
        self.grid = (int(g[0]), int(g[1]))
        self.masks = [window_masks(self.grid, k) for k in self.scales]
        self.cov = [coverage(self.grid, m) for m in self.masks]
        self.text = None
        self.ref: Optional[Encoded] = None

    # ---------------------------------------------------------------- text
    def encode_text(self, prompts: Sequence[str]):
        import torch
        dev = next(self.model.parameters()).device
        with torch.inference_mode():
            return self.model.encode_text(self.tokenizer(list(prompts)).to(dev))

    def set_class(self, obj: str, normal_states=NORMAL_STATES, anomalous_states=ANOMALOUS_STATES,
                  templates=TEMPLATES):
        """[normal, anomalous] = mean of the unnormalised prompt embeddings of each class."""
        import torch
        n = self.encode_text(prompts_state_major(normal_states, templates, obj)).mean(0)
        a = self.encode_text(prompts_state_major(anomalous_states, templates, obj)).mean(0)
        self.text = torch.stack([n, a])
        return self.text

    # ---------------------------------------------------------------- image
    def encode(self, x) -> Encoded:
        """x (B, 3, S, S) preprocessed -> image embedding, ln_post patch tokens, window embeddings."""
        import torch
        vis = self.model.visual
        if not getattr(vis.transformer, "batch_first", True):
            raise ValueError("WinClip needs a batch-first open_clip transformer (open_clip >= 2.26)")
        with torch.inference_mode():
            t = vis.conv1(x)
            t = t.reshape(t.shape[0], t.shape[1], -1).permute(0, 2, 1)
            cls = vis.class_embedding.to(t.dtype).view(1, 1, -1).expand(t.shape[0], -1, -1)
            t = torch.cat([cls, t], 1) + vis.positional_embedding.to(t.dtype)
            t = vis.patch_dropout(t)                          # identity at inference: the window source
            y = vis.ln_post(vis.transformer(vis.ln_pre(t)))
            image = y[:, 0] @ vis.proj if vis.proj is not None else y[:, 0]
            windows = [self._windows(t, m) for m in self.masks]
        return Encoded(image=image, patches=y[:, 1:], windows=windows)

    def _windows(self, t, masks: np.ndarray):
        """Each window (CLS + its tokens) encoded alone; all windows of the batch in one pass,
        window-major (window 0 of every image, then window 1, ...)."""
        import torch
        vis = self.model.visual
        b = t.shape[0]
        idx = np.concatenate([np.zeros((len(masks), 1), np.int64), masks + 1], 1)     # (n_w, 1 + k*k)
        sel = t[:, torch.as_tensor(idx, device=t.device)]                             # (B, n_w, L, D)
        sel = sel.transpose(0, 1).reshape(len(masks) * b, idx.shape[1], t.shape[-1])
        y = vis.ln_post(vis.transformer(vis.ln_pre(vis.patch_dropout(sel)))[:, 0])
        if vis.proj is not None:
            y = y @ vis.proj
        return y.reshape(len(masks), b, -1).transpose(0, 1)

    def set_references(self, x) -> Encoded:
        """Few-shot: the reference images' patch tokens and window embeddings."""
        self.ref = self.encode(x)
        return self.ref

    # ---------------------------------------------------------------- scores
    def zero_shot(self, enc: Encoded):
        """(s_img (B,), per-scale window maps [(B, gh, gw)], multiscale map (B, gh, gw))."""
        import torch
        b = enc.image.shape[0]
        s_img = class_scores(enc.image, self.text, self.temperature)
        maps = [harmonic_aggregation(class_scores(w, self.text, self.temperature), c).reshape(b, *self.grid)
                for w, c in zip(enc.windows, self.cov)]
        stack = torch.stack([s_img.view(-1, 1, 1).expand(b, *self.grid)] + maps)
        return s_img, maps, (len(self.scales) + 1) / (1.0 / stack).sum(0)

    def few_shot(self, enc: Encoded):
        """(patch association map (B, gh, gw), per-scale window maps, few-shot map (B, gh, gw))."""
        import torch
        b = enc.image.shape[0]
        patch = association(enc.patches, self.ref.patches).reshape(b, *self.grid)
        maps = [harmonic_aggregation(association(w, r), c).reshape(b, *self.grid)
                for w, r, c in zip(enc.windows, self.ref.windows, self.cov)]
        return patch, maps, torch.stack([patch] + maps).mean(0)

    def score(self, x) -> dict:
        """Every output of WinCLIP for a batch, as float32 numpy arrays (keys as the parity table)."""
        import torch
        enc = self.encode(x)
        s_img, zs_win, zs = self.zero_shot(enc)
        out = {"image_zero_shot": s_img, "zs_map": zs}
        out.update({f"zs_window_{k}": m for k, m in zip(self.scales, zs_win)})
        pixel, image = zs, s_img
        if self.ref is not None:
            patch, fs_win, fs = self.few_shot(enc)
            out.update({"fs_patch": patch, "fs_map": fs})
            out.update({f"fs_window_{k}": m for k, m in zip(self.scales, fs_win)})
            pixel = (zs + fs) / 2
            image = (s_img + fs.amax(dim=(-2, -1))) / 2
        out["pixel_map"] = torch.nn.functional.interpolate(pixel[:, None], size=x.shape[-2:], mode="bilinear",
                                                           align_corners=False)[:, 0]
        out["image_score"] = image
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}
