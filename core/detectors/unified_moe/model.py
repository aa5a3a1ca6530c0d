"""The network of the ``unified-moe`` detector: a UniMMAD-style feature decompressor.

UniMMAD's code is unreleased; this follows its README ("general -> specific"), with our choices
marked *(choice)*:

* **encoder / compression**: each modality present at a location is projected (``Linear -> GELU
  -> Linear``) to a small ``bottleneck`` code and layer-normalized; the *general* feature is the
  mean of the codes of the modalities present (cross-modal interaction: the same code must rebuild
  both).  In training the inputs get *feature jitter* (Gaussian noise, as UniAD does) and whole
  modalities are dropped at random (*(choice)*: one model for RGB-only, 3D-only and both; the
  bottleneck + jitter suppress latent anomalies and the identity shortcut);
* **sparsely gated cross MoE**: a router sees the general code, a modality embedding and a class
  embedding and picks the ``top_k`` of ``n_experts`` experts (softmax over the selected logits);
  only the selected experts run (sparse dispatch).  Each expert is a two-layer MLP from the
  conditioned code to a hidden width; a per-modality linear head gives the reconstructed
  modality-specific feature.  A Switch-Transformer load-balance term
  ``E * sum_e f_e * P_e`` (``f_e`` the fraction of routed slots, ``P_e`` the mean router
  probability) keeps experts in use *(choice: the README gives no formula)*.  Grouped dynamic
  filtering and MoE-in-MoE (parameter savings) are not implemented;
* anomaly score = ``1 - cos(reconstruction, encoder feature)`` per location and modality.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODALITIES = ("rgb", "geometry")
_KEYS = {"rgb": ("rgb", "has_rgb"), "geometry": ("geo", "has_geo")}


class TopKRouter(nn.Module):
    def __init__(self, d_in: int, n_experts: int, top_k: int):
        super().__init__()
        if not 1 <= top_k <= n_experts:
            raise ValueError(f"top_k must be in [1, {n_experts}], got {top_k}")
        self.lin = nn.Linear(d_in, n_experts)
        self.n_experts, self.top_k = n_experts, top_k

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(gates B x k summing to 1, expert indices B x k, router probabilities B x E)."""
        logits = self.lin(x)
        probs = logits.softmax(-1)
        top, idx = logits.topk(self.top_k, dim=-1)
        return top.softmax(-1), idx, probs


def load_balance(idx: torch.Tensor, probs: torch.Tensor, n_experts: int) -> torch.Tensor:
    """Switch-Transformer auxiliary loss ``E * sum_e f_e * P_e`` (1 when perfectly balanced)."""
    f = torch.bincount(idx.reshape(-1), minlength=n_experts).to(probs.dtype) / max(idx.numel(), 1)
    return n_experts * (f * probs.mean(0)).sum()


class SparseMoE(nn.Module):
    def __init__(self, d_in: int, d_out: int, hidden: int, n_experts: int, top_k: int, d_route: int):
        super().__init__()
        self.router = TopKRouter(d_route, n_experts, top_k)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
                                     for _ in range(n_experts))
        self.d_out = d_out

    def forward(self, x: torch.Tensor, route: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gates, idx, probs = self.router(route)
        out = x.new_zeros(x.shape[0], self.d_out)
        for e, expert in enumerate(self.experts):
            rows, slot = torch.nonzero(idx == e, as_tuple=True)
            if rows.numel():
                out.index_add_(0, rows, gates[rows, slot, None] * expert(x[rows]))
        return out, idx, probs


class UnifiedMoENet(nn.Module):
    modalities = MODALITIES

    def __init__(self, d_rgb: int, d_geo: int, n_classes: int, width: int = 128, bottleneck: int = 24,
                 n_experts: int = 8, top_k: int = 2, jitter: float = 0.2, drop_modality: float = 0.3,
                 balance_weight: float = 0.01):
        super().__init__()
        self.config = dict(d_rgb=d_rgb, d_geo=d_geo, n_classes=n_classes, width=width, bottleneck=bottleneck,
                           n_experts=n_experts, top_k=top_k, jitter=jitter, drop_modality=drop_modality,
                           balance_weight=balance_weight)
        dims = {"rgb": d_rgb, "geometry": d_geo}
        self.enc = nn.ModuleDict({m: nn.Sequential(nn.Linear(dims[m], width), nn.GELU(), nn.Linear(width, bottleneck))
                                  for m in MODALITIES})
        self.norm = nn.LayerNorm(bottleneck)
        self.mod_emb = nn.Embedding(len(MODALITIES), bottleneck)
        self.cls_emb = nn.Embedding(max(n_classes, 1), bottleneck)
        self.moe = SparseMoE(bottleneck, width, width, n_experts, top_k, d_route=3 * bottleneck)
        self.heads = nn.ModuleDict({m: nn.Linear(width, dims[m]) for m in MODALITIES})

    def _present(self, batch: dict) -> dict[str, torch.Tensor]:
        return {m: batch[_KEYS[m][1]] for m in MODALITIES}

    def encode(self, batch: dict, present: dict[str, torch.Tensor], noise: float = 0.0) -> torch.Tensor:
        num, den = 0.0, 0.0
        for m in MODALITIES:
            x = batch[_KEYS[m][0]]
            if noise > 0:
                x = x + noise * torch.randn_like(x)
            w = present[m].to(x.dtype)[:, None]
            num = num + self.norm(self.enc[m](x)) * w
            den = den + w
        return num / den.clamp_min(1.0)

    def decode(self, z: torch.Tensor, modality: str, cls: torch.Tensor):
        mi = torch.full_like(cls, MODALITIES.index(modality))
        e_m, e_c = self.mod_emb(mi), self.cls_emb(cls)
        h, idx, probs = self.moe(z + e_m + e_c, torch.cat([z, e_m, e_c], -1))
        return self.heads[modality](h), idx, probs

    def _forward(self, batch: dict, present: dict[str, torch.Tensor], noise: float):
        z = self.encode(batch, present, noise)
        out = {}
        for m in MODALITIES:
            out[m] = self.decode(z, m, batch["cls"])
        return out

    def discrepancies(self, batch: dict) -> dict[str, torch.Tensor]:
        present = self._present(batch)
        out = self._forward(batch, present, 0.0)
        res = {}
        for m in MODALITIES:
            d = 1.0 - F.cosine_similarity(out[m][0], batch[_KEYS[m][0]], dim=-1, eps=1e-6)
            res[m] = torch.where(present[m], d, torch.full_like(d, float("nan")))
        return res

    def loss(self, batch: dict, train: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
        present = self._present(batch)
        if train and self.config["drop_modality"] > 0:
            both = present["rgb"] & present["geometry"]
            u = torch.rand(both.shape, device=both.device)
            p = self.config["drop_modality"] / 2
            present = {"rgb": present["rgb"] & ~(both & (u < p)),
                       "geometry": present["geometry"] & ~(both & (u >= p) & (u < 2 * p))}
        # the encoder sees what is present after the drop; every originally present modality is a target
        out = self._forward(batch, present, self.config["jitter"] if train else 0.0)
        targets = self._present(batch)
        rec, bal, n = 0.0, 0.0, 0
        stats = {}
        for m in MODALITIES:
            t = targets[m]
            pred, idx, probs = out[m]
            if bool(t.any()):
                d = (1.0 - F.cosine_similarity(pred[t], batch[_KEYS[m][0]][t], dim=-1, eps=1e-6)).mean()
                rec = rec + d
                bal = bal + load_balance(idx[t], probs[t], self.config["n_experts"])
                n += 1
                stats[m] = float(d.detach())
        if n == 0:
            return sum(p.sum() * 0 for p in self.parameters()), {"rec": 0.0, "balance": 0.0}
        loss = rec / n + self.config["balance_weight"] * bal / n
        stats.update(rec=float(rec.detach()) / n, balance=float(bal.detach()) / n)
        return loss, stats
