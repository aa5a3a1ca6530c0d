"""The networks of the ``cross-modal`` detector: a geometry-aware RGB -> 3D mapper and a 3D -> RGB MLP.

* :class:`GACM` - geometry-aware cross-modal mapper RGB -> 3D::

      F_sem = phi_s(F_rgb),  F_geo = phi_g(F_rgb)                     (eqs. 1, 2: linear embeddings)
      G = sigmoid(W_g F_geo)                                          (geometry prior gating)
      F = F_geo * G + F_sem * (1 - G)                                 (eq. 3)
      F_rgb->3d = R(F_rgb) + W_o GELU(LN(F + e_class))                (eq. 4)

  ``R`` is a linear residual (the dimensions of RGB and 3D features differ, so the identity of the
  paper becomes a linear map) and ``W_o`` maps the hidden width to the 3D feature size; both are
  our choices where the paper leaves the sizes open.  ``e_class`` is a learned class embedding so
  one model serves several part classes (the paper trains one model per class).
* :class:`MLP3dToRgb` - the two-layer MLP 3D -> RGB (the class embedding joins its hidden layer).

Losses (eqs. 9-11, lambda = 1): ``(1 - cos(F_rgb->3d, F_3d)) + (1 - cos(F_3d->rgb, F_rgb))``
averaged over the valid locations (the 3D mask ``M_xyz``).  The text term (eq. 10) needs CLIP text
features (OCTA); none exist in a weight-free installation, so it is 0 and reported as off.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GACM(nn.Module):
    def __init__(self, d_rgb: int, d_geo: int, hidden: int, n_classes: int):
        super().__init__()
        self.phi_s = nn.Linear(d_rgb, hidden)
        self.phi_g = nn.Linear(d_rgb, hidden)
        self.w_g = nn.Linear(hidden, hidden)
        self.ln = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, d_geo)
        self.residual = nn.Linear(d_rgb, d_geo)
        self.cls = nn.Embedding(max(n_classes, 1), hidden)
        nn.init.zeros_(self.cls.weight)

    def gate(self, f_rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G, F_geo, F_sem)."""
        f_sem, f_geo = self.phi_s(f_rgb), self.phi_g(f_rgb)
        return torch.sigmoid(self.w_g(f_geo)), f_geo, f_sem

    def forward(self, f_rgb: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        g, f_geo, f_sem = self.gate(f_rgb)
        fused = f_geo * g + f_sem * (1 - g)
        return self.residual(f_rgb) + self.out(F.gelu(self.ln(fused + self.cls(cls))))


class MLP3dToRgb(nn.Module):
    def __init__(self, d_geo: int, d_rgb: int, hidden: int, n_classes: int):
        super().__init__()
        self.fc1 = nn.Linear(d_geo, hidden)
        self.fc2 = nn.Linear(hidden, d_rgb)
        self.cls = nn.Embedding(max(n_classes, 1), hidden)
        nn.init.zeros_(self.cls.weight)

    def forward(self, f_geo: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(f_geo) + self.cls(cls)))


def cosine_discrepancy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cos(a, b) per row."""
    return 1.0 - F.cosine_similarity(a, b, dim=-1, eps=1e-6)


class CrossModalNet(nn.Module):
    """Both mappers; ``loss`` and ``scores`` take a batch of grid locations."""

    modalities = ("rgb", "geometry")

    def __init__(self, d_rgb: int, d_geo: int, n_classes: int, hidden: int = 128):
        super().__init__()
        self.config = dict(d_rgb=d_rgb, d_geo=d_geo, n_classes=n_classes, hidden=hidden)
        self.rgb_to_3d = GACM(d_rgb, d_geo, hidden, n_classes)
        self.geo_to_rgb = MLP3dToRgb(d_geo, d_rgb, hidden, n_classes)

    @staticmethod
    def usable(batch: dict) -> torch.Tensor:
        return batch["has_rgb"] & batch["has_geo"]

    def discrepancies(self, batch: dict) -> dict[str, torch.Tensor]:
        """Per-location ``Psi_rgb = D(F_rgb, F_3d->rgb)`` and ``Psi_3d = D(F_3d, F_rgb->3d)``
        (cosine), NaN where a location lacks either modality."""
        rgb, geo, cls = batch["rgb"], batch["geo"], batch["cls"]
        ok = self.usable(batch)
        psi_3d = cosine_discrepancy(self.rgb_to_3d(rgb, cls), geo)
        psi_rgb = cosine_discrepancy(self.geo_to_rgb(geo, cls), rgb)
        nan = torch.full_like(psi_3d, float("nan"))
        return {"rgb": torch.where(ok, psi_rgb, nan), "geometry": torch.where(ok, psi_3d, nan)}

    def loss(self, batch: dict, train: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
        ok = self.usable(batch)
        if not bool(ok.any()):
            z = sum(p.sum() * 0 for p in self.parameters())
            return z, {"vis": 0.0, "text": 0.0}
        sub = {k: v[ok] for k, v in batch.items()}
        psi_3d = cosine_discrepancy(self.rgb_to_3d(sub["rgb"], sub["cls"]), sub["geo"]).mean()
        psi_rgb = cosine_discrepancy(self.geo_to_rgb(sub["geo"], sub["cls"]), sub["rgb"]).mean()
        vis = 1.0 * psi_3d + 1.0 * psi_rgb      # eq. 9, lambda_v2g = lambda_g2v = 1
        return vis, {"vis": float(vis.detach()), "v2g": float(psi_3d.detach()), "g2v": float(psi_rgb.detach()),
                     "text": 0.0}
