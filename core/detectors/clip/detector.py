"""The CLIP detectors: ``clip-zero-shot`` (typed prompts) and ``clip-few-shot`` (+ support memory).

Pipeline per sample: RGB image (if any) and the K rendered views of the cloud (if any) go through CLIP
in ONE batch (:func:`core.backbones.clip_dense.encode_dense`: V-V attention dual path, per-layer tokens
in the joint space, global embedding).  The normalised tokens are cached in ``Components.extra`` so
that a prompt edit (``rescore``) only re-encodes the text (cached per prompt set) and re-derives:

* text maps: per-patch softmax(cos/T) anomaly probability averaged over layers, bilinear up to the
  working size, Gaussian sigma; views are back-projected to the points (visibility-weighted mean,
  unseen points take their nearest seen neighbour's score); organized clouds map points to the grid;
* global scores: softmax of the global embedding (RGB; mean over the views for 3D).

The few-shot detector adds per-layer memories of support tokens (the FitState): visual maps
``q = 1/2 (1 - max cos)``, combined in ``fuse`` as ``lambda * text + (1 - lambda) * visual``.
"""
from __future__ import annotations

import time
from typing import Any, Optional

import cv2
import numpy as np

from ...fusion import image_score, weighted_mean
from ...render.views import resize_maps
from ...sample import resize_map
from ..base import (Capabilities, STAGE_FIT, STAGE_FUSION, STAGE_SCORE, STAGE_TEXT, Components, Detector, DetectorResult,
                    Needs, Param)
from ..postprocess import rgb_weight_param, sample_points, sigma_param, smooth_maps
from ..schema import ArraySpec, StateSchema
from ..registry import register
from . import multiview, scoring, zuma
from .prompting import ANOMALOUS_STATES, NORMAL_STATES, TEMPLATES, object_name
from .text import PromptCache, TextCache, l2n, text_pair

ARCHS = ("ViT-B-16", "ViT-L-14-336", "ViT-B-16-plus-240", "tiny-test")
DEFAULT_TAGS = {"ViT-B-16": "openai", "ViT-L-14-336": "openai", "ViT-B-16-plus-240": "laion400m_e31",
                "tiny-test": ""}

MODES = ("winclip-prompts", "zuma")

COMMON_PARAMS = (
    Param("mode", "winclip-prompts", "choice", "pipeline", choices=MODES, stage=STAGE_SCORE,
          help="winclip-prompts: text maps per branch; zuma: ZUMA's training-free pipeline (view tokens "
               "calibrated on the RGB tokens, Mahalanobis + text/sparsity per view, weighted global scores)"),
    Param("backbone", "ViT-B-16", "choice", "CLIP backbone", choices=ARCHS, stage=STAGE_FIT,
          help="ViT-B-16 (default), ViT-L-14-336 (quality, slower), ViT-B-16-plus-240 (WinCLIP's)"),
    Param("pretrained", "", "text", "pretrained tag", stage=STAGE_FIT,
          help="open_clip pretrained tag; empty: the backbone's default (openai / laion400m_e31)"),
    Param("weights", "", "text", "weights file", stage=STAGE_FIT,
          help="empty: find the published file (open_clip cache, weights folder, $MMAD_CLIP_WEIGHTS); "
               "a file path; or 'random' (random weights: runs, but the scores are MEANINGLESS)"),
    Param("image_size", 0, "int", "input size (px)", 0, 1024, 1, stage=STAGE_FIT,
          help="0: the backbone's own size (224 / 336 / 240)"),
    Param("precision", "auto", "choice", "precision", choices=("auto", "float32", "bfloat16", "float16"),
          stage=STAGE_FIT,
          help="auto: float16 on CUDA; bfloat16 on CPUs that compute it natively (AMX / AVX512-BF16, "
               "about 2x faster), else float32; float32 reproduces the reference implementations exactly"),
    Param("layers", "auto", "text", "token layers", stage=STAGE_FIT,
          help="1-indexed blocks whose tokens are scored, e.g. '3,6,9,12'; auto: quarter depths"),
    Param("vv_attention", True, "bool", "V-V attention", stage=STAGE_FIT,
          help="AnomalyCLIP's training-free value-value attention on the last blocks (localisable tokens)"),
    Param("view_set", "mvtec", "choice", "3D views", choices=tuple(multiview.VIEW_SETS), stage=STAGE_FIT,
          help="rotations used to render the cloud: mvtec (PointAD, 9), real3d (9 about x), front (1)"),
    Param("normal_states", NORMAL_STATES, "textlist", "normal states", stage=STAGE_TEXT,
          help="one per line; {} is the object name"),
    Param("anomalous_states", ANOMALOUS_STATES, "textlist", "anomalous states", stage=STAGE_TEXT),
    Param("templates", TEMPLATES, "textlist", "templates", stage=STAGE_TEXT, help="{} is the state phrase"),
    Param("object_name", "", "text", "object name", stage=STAGE_TEXT, help="empty: the part class name"),
    Param("temperature", scoring.TEMPERATURE, "float", "temperature", 0.001, 10.0, 0.01, stage=STAGE_TEXT),
    sigma_param(100 * 4.0 / 224, STAGE_SCORE,      # 4 px of the default backbone's 224 px input
                "each branch's text and visual maps and of the rendered views' maps, on the CLIP input, "
                "before fusion"),
    Param("use_rgb", True, "bool", "use RGB", stage=STAGE_SCORE),
    Param("use_3d", True, "bool", "use 3D (views)", stage=STAGE_SCORE),
    Param("fusion", "weighted", "choice", "fusion", choices=("weighted", "product"), stage=STAGE_FUSION,
          help="weighted: rgb_weight * RGB + (1 - rgb_weight) * 3D; "
               "product: alpha * (visual_rgb * visual_3d) + beta * (text_rgb * text_3d)"),
    rgb_weight_param("the weighted fusion of the two branches' maps, renormalised where one is undefined, "
                     "and of their global scores (fusion = weighted)", step=0.01),
    Param("alpha", 0.5, "float", "alpha (cross-modal term)", 0.0, 1.0, 0.01, stage=STAGE_FUSION,
          help="fusion = product: map = alpha * (visual_rgb * visual_3d) + beta * (text_rgb * text_3d); "
               "alpha weighs the cross-modal product of the two branches' visual maps (zero-shot: their "
               "text maps), as alpha weighs the cross-modal term in cross-modal's eq. 16"),
    Param("beta", 0.5, "float", "beta (text term)", 0.0, 1.0, 0.01, stage=STAGE_FUSION,
          help="fusion = product: map = alpha * (visual_rgb * visual_3d) + beta * (text_rgb * text_3d); "
               "beta weighs the text term, the product of the two branches' text maps"),
    Param("threshold", 0.5, "float", "threshold", 0.0, 2.0, 0.01, stage=STAGE_FUSION),
)


def _parse_layers(text: str, depth: int) -> tuple[int, ...]:
    from ...backbones.clip_dense import default_layers
    from ...errors import InvalidParameterError
    t = (text or "auto").strip().lower()
    if t == "auto":
        return default_layers(depth)
    try:
        ls = tuple(sorted({int(x) for x in t.replace(" ", "").split(",") if x}))
    except ValueError:
        raise InvalidParameterError(f"parameter 'layers': {text!r} is not a list of layer numbers") from None
    if not ls or ls[0] < 1 or ls[-1] > depth:
        raise InvalidParameterError(f"parameter 'layers': {text!r} must be numbers in 1..{depth}")
    return ls


class ClipZeroShot(Detector):
    id = "clip-zero-shot"
    name = "CLIP zero-shot (prompts)"
    description = ("Zero-shot: CLIP patch tokens (V-V attention) against typed normal/anomalous prompts, "
                   "on the RGB image and on the cloud rendered into views (back-projected to the points).")
    needs = Needs(rgb="optional", points="optional", text_prompts=True, support=0, default_support=0,
                  weights=True)
    capabilities = Capabilities(rescores_text=True, views=True)
    params = COMMON_PARAMS
    state_version = "1"
    state_schema = StateSchema()        # zero-shot: the class name (in the meta) is all it learns
    few_shot = False

    def __init__(self, device: str = "cpu", **params: Any):
        self._text_cache = TextCache()
        self._prompt_cache = PromptCache()
        self._class_name = ""
        self._memory: dict[str, dict[int, np.ndarray]] = {}
        super().__init__(device, **params)

    # ------------------------------------------------------------------ weights / backbone
    @classmethod
    def _arch_tag(cls, p: dict) -> tuple[str, str]:
        arch = p.get("backbone", "ViT-B-16")
        return arch, (p.get("pretrained") or DEFAULT_TAGS.get(arch, "openai"))

    @classmethod
    def weight_specs(cls, params: Optional[dict[str, Any]] = None) -> tuple:
        p = {x.name: x.default for x in cls.params}
        p.update(params or {})
        arch, tag = cls._arch_tag(p)
        from ...weights import is_random
        if arch == "tiny-test" or is_random(p.get("weights")):
            return ()
        from ...weights import CATALOG
        for s in CATALOG.values():
            if s.open_clip == (arch, tag):
                return (s,)
        from ...weights import spec_from_open_clip
        return (spec_from_open_clip(arch, tag),)

    def _handle(self):
        from ...backbones import get_clip
        arch, tag = self._arch_tag(self._values)
        from ...devices import resolve_dtype
        try:
            dtype = resolve_dtype(self["precision"], self.device)
        except ValueError as e:
            from ...errors import InvalidParameterError
            raise InvalidParameterError(f"precision: {e}") from None
        return get_clip(arch, tag, weights=self["weights"] or None, device=self.device, dtype=dtype)

    def _size(self, h) -> int:
        return int(self["image_size"]) or h.image_size

    # ------------------------------------------------------------------ fit
    def on_invalidate(self, stages):
        if STAGE_TEXT in stages or STAGE_FIT in stages:
            self._text_cache.clear()
        if STAGE_FIT in stages:
            self._prompt_cache.clear()    # another backbone: other embeddings

    def build_state(self, support, class_name, progress, cancel):
        h = self._handle()       # loads (or finds) the weights now, so a missing file is reported at fit
        meta = {"class_name": class_name, "backbone": h.arch, "weights": h.weights if h.random else "file"}
        return {}, meta

    def restore_state(self, state) -> None:
        self._class_name = state.class_name or state.meta.get("class_name", "")
        self._memory = {}
        for k, a in state.arrays.items():
            if k.startswith("mem_"):
                _, branch, layer = k.split("_")
                self._memory.setdefault(branch, {})[int(layer)] = np.asarray(a, np.float32)

    # ------------------------------------------------------------------ image side
    def _encode(self, h, images, cancel=None, batch: int = 16):
        """List of uint8 images -> ({layer: (B, N, D) normalised float32}, (B, D) normalised, grid)."""
        from ...backbones.clip_dense import encode_dense, preprocess
        import torch
        size = self._size(h)
        layers = _parse_layers(self["layers"], h.depth)
        toks: dict[int, list] = {l: [] for l in layers}
        glob, grid = [], None
        dev, dt = torch.device(h.device), getattr(torch, h.dtype)
        for i in range(0, len(images), batch):
            self.check_cancel(cancel)
            x = preprocess(images[i:i + batch], size, dev, dt)
            out = encode_dense(h.model, x, layers, vv=bool(self["vv_attention"]))
            for l in layers:
                toks[l].append(l2n(out.tokens[l].float().cpu().numpy()))
            glob.append(l2n(out.global_emb.float().cpu().numpy()))
            grid = out.grid
        return {l: np.concatenate(v, 0) for l, v in toks.items()}, np.concatenate(glob, 0), grid

    def _inputs(self, sample, size: int):
        """(images, n_rgb, views: (BackProjection, ViewStrip) or None)."""
        images, n_rgb, views = [], 0, None
        if sample.rgb is not None and self["use_rgb"]:
            images.append(sample.rgb)
            n_rgb = 1
        if sample.has_points and self["use_3d"] and sample.n_points > 0:
            vimgs, bp, thumbs = multiview.prepare(sample.valid_points(), self["view_set"], size)
            images.extend(list(vimgs))
            views = (bp, thumbs)
        if not images:
            from ...errors import InputError
            raise InputError(sample.paths.get("rgb") or sample.paths.get("points"),
                             f"nothing to score: the sample has no {'RGB image' if not sample.has_rgb else 'point cloud'} "
                             "and the other modality is switched off (use_rgb / use_3d)")
        return images, n_rgb, views

    def extract(self, sample, progress=None, cancel=None) -> Components:
        self.require_fitted()
        t0 = time.perf_counter()
        h = self._handle()
        size = self._size(h)
        self.report(progress, 0.05, "rendering views" if sample.has_points else "encoding")
        images, n_rgb, views = self._inputs(sample, size)
        self.check_cancel(cancel)
        self.report(progress, 0.2, f"CLIP on {len(images)} image(s)")
        tokens, glob, grid = self._encode(h, images, cancel)
        extra: dict[str, Any] = {
            "tokens": tokens, "global": glob, "grid": grid, "size": size, "n_rgb": n_rgb,
            "weights": "random" if h.random else "pretrained", "backbone": f"{h.arch}/{h.pretrained or '-'}",
            "grid_shape": sample.grid_shape, "organized": sample.organized,
        }
        if views is not None:
            extra["backprojection"], extra["views"] = views
        if sample.organized:
            extra["points_grid"] = tuple(sample.points.shape[:2])
            extra["valid_index"] = sample.valid_index().astype(np.int64)
        comps = Components(shape=sample.grid_shape, valid=sample.valid_mask(), extra=extra)
        if self.few_shot:
            self._visual_maps(comps)
        self._text_maps(comps)
        comps.seconds = time.perf_counter() - t0
        self.report(progress, 1.0, "done")
        return comps

    # ------------------------------------------------------------------ derived maps
    def _to_outputs(self, comps: Components, kind: str, grid_maps: np.ndarray) -> None:
        """(B, gh, gw) per-image maps -> maps['rgb_<kind>'], point_maps['3d_<kind>'] (+ maps['3d_<kind>'])."""
        ex = comps.extra
        size = ex["size"]
        up = smooth_maps(scoring.upsample(grid_maps, (size, size)), float(self["sigma_pct"]))
        n_rgb = ex["n_rgb"]
        if n_rgb:
            shape = ex["grid_shape"] or (size, size)
            comps.maps[f"rgb_{kind}"] = resize_map(up[0], shape)
        if "backprojection" in ex:
            ex.setdefault("view_maps", {})[kind] = resize_maps(up[n_rgb:], ex["views"].size)   # small: kept per sample
            pts = ex["backprojection"].apply(up[n_rgb:])
            comps.point_maps[f"3d_{kind}"] = pts
            if ex.get("organized"):
                gh, gw = ex["points_grid"]
                full = np.full(gh * gw, np.nan, np.float32)
                full[ex["valid_index"]] = pts
                m = full.reshape(gh, gw)
                shape = ex["grid_shape"]
                if shape is not None and tuple(shape) != (gh, gw):
                    m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
                comps.maps[f"3d_{kind}"] = m

    def _text(self) -> np.ndarray:
        h = self._handle()
        obj = object_name(self["object_name"], self._class_name)
        key = (tuple(self["normal_states"]), tuple(self["anomalous_states"]), tuple(self["templates"]), obj)

        def make():
            from ...backbones.clip_dense import encode_text
            enc = self._prompt_cache.encoder(lambda ps: encode_text(h.model, h.tokenizer, ps).cpu().numpy())
            return text_pair(enc, *key)
        return self._text_cache.get(key, make)

    def _text_maps(self, comps: Components) -> None:
        ex = comps.extra
        t = self._text()
        temp = float(self["temperature"])
        m = scoring.layer_text_maps(ex["tokens"], t, ex["grid"], temp)
        n_rgb = ex["n_rgb"]
        zuma_b = None
        if self["mode"] == "zuma" and len(ex["global"]) > n_rgb:
            m = m.copy()
            m[n_rgb:], zuma_b = self._zuma_view_maps(ex, t, temp)
        self._to_outputs(comps, "text", m)
        g = scoring.global_prob(ex["global"], t, temp)
        if n_rgb:
            comps.image["rgb_global"] = float(g[0])
        if len(g) > n_rgb:
            comps.image["3d_global"] = float(g[n_rgb:].mean())
        if zuma_b is not None and "backprojection" in ex:
            up = smooth_maps(scoring.upsample(zuma_b, (ex["size"], ex["size"])), float(self["sigma_pct"]))
            pts = ex["backprojection"].apply(up)
            comps.image["hybrid_global"] = float(np.nanmax(pts)) if np.isfinite(pts).any() else float("nan")

    def _zuma_view_maps(self, ex: dict, text: np.ndarray, temp: float):
        """ZUMA on the views: hybrid tokens (calibrated on the RGB tokens when there is an RGB image) of
        the first token layer (ZUMA uses layer 6 of 24), then DSI.  The hybrid tokens and the Mahalanobis
        term do not depend on the prompts: cached in ``extra`` for ``rescore``."""
        n_rgb = ex["n_rgb"]
        if "zuma_hybrid" not in ex:
            tok = ex["tokens"][min(ex["tokens"])]
            views = tok[n_rgb:]
            ex["zuma_hybrid"] = zuma.calibrate(views, tok[0]) if n_rgb else views
            ex["zuma_maha"] = np.stack([zuma.minmax(zuma.mahalanobis(h)) for h in ex["zuma_hybrid"]])
        return zuma.dsi_maps(ex["zuma_hybrid"], text, temp, ex["grid"], ex["zuma_maha"])

    def _visual_maps(self, comps: Components) -> None:
        ex = comps.extra
        n_rgb = ex["n_rgb"]
        tok = ex["tokens"]
        parts = []
        if n_rgb:
            mem = self._memory.get("rgb") or self._memory.get("3d")
            parts.append(scoring.layer_visual_maps({l: t[:n_rgb] for l, t in tok.items()}, mem, ex["grid"])
                         if mem else None)
        if len(ex["global"]) > n_rgb:
            mem = self._memory.get("3d") or self._memory.get("rgb")
            parts.append(scoring.layer_visual_maps({l: t[n_rgb:] for l, t in tok.items()}, mem, ex["grid"])
                         if mem else None)
        if any(p is None for p in parts):
            return    # no support of either modality: text only
        self._to_outputs(comps, "visual", np.concatenate(parts, 0))

    def rescore(self, components: Components, progress=None, cancel=None) -> Components:
        """After a prompt edit: only the text side is recomputed (no image backbone)."""
        for d in (components.maps, components.point_maps):
            d.pop("rgb_text", None)
            d.pop("3d_text", None)
        components.image.pop("rgb_global", None)
        components.image.pop("3d_global", None)
        components.image.pop("hybrid_global", None)
        self._text_maps(components)
        return components

    # ------------------------------------------------------------------ fusion
    def _lambda(self, p: dict) -> float:
        return 1.0

    def fuse(self, components: Components, params: Optional[dict[str, Any]] = None) -> DetectorResult:
        p = self.merged_params(params)
        lam = self._lambda(p)
        c = components
        weights = {"rgb": float(p["rgb_weight"]), "3d": 1.0 - float(p["rgb_weight"])}

        def branch(store: dict, mod: str):
            t, v = store.get(f"{mod}_text"), store.get(f"{mod}_visual")
            if t is None:
                return None, None, None
            v = t if v is None else v
            return t, v, lam * t + (1 - lam) * v

        def combine(store: dict):
            r, d = branch(store, "rgb"), branch(store, "3d")
            if p["fusion"] == "product":
                vis = [x[1] for x in (r, d) if x[1] is not None]
                txt = [x[0] for x in (r, d) if x[0] is not None]
                if not vis:
                    return None
                vprod = np.prod(np.stack(vis), 0) if len(vis) > 1 else vis[0]
                tprod = np.prod(np.stack(txt), 0) if len(txt) > 1 else txt[0]
                return (p["alpha"] * vprod + p["beta"] * tprod).astype(np.float32)
            parts = {k: m[2] for k, m in (("rgb", r), ("3d", d)) if m[2] is not None}
            if len(parts) == 1:
                return next(iter(parts.values())).astype(np.float32)
            return weighted_mean(parts, weights)

        pixel = combine(c.maps) if c.maps else None
        ex = c.extra
        points = None
        if ex.get("organized") and pixel is not None:
            points = sample_points(pixel, c.valid, cv2.INTER_LINEAR)
        elif c.point_maps:
            points = combine(c.point_maps)
        # image score: half the top local score, half the weighted global score(s)
        local = pixel if pixel is not None else points
        top = image_score(local) if local is not None else float("nan")
        gl = [(c.image[k + "_global"], w) for k, w in weights.items() if k + "_global" in c.image]
        wsum = sum(w for _, w in gl)
        g = (sum(s * w for s, w in gl) / wsum) if wsum > 0 else (np.mean([s for s, _ in gl]) if gl else top)
        score = 0.5 * top + 0.5 * float(g)
        if p["mode"] == "zuma":
            score = zuma.image_score({"hybrid_global": c.image.get("hybrid_global"),
                                      "view_global": c.image.get("3d_global"),
                                      "rgb_global": c.image.get("rgb_global")})
        out = dict(p)
        out["weights"] = ex.get("weights", "")
        if out["weights"] == "random":
            out["note"] = "random weights: scores are meaningless"
        views = self._view_strip(c, lam)
        has_rgb = any(k.startswith("rgb_") for k in c.maps)
        has_3d = any(k.startswith("3d_") for k in c.point_maps)
        used = f"RGB {'✓' if has_rgb else '✗'} 3D {'✓' if has_3d else '✗'}"
        if views is not None:
            used += f" ({views.k} views)"
        return DetectorResult(c, pixel, points, score, p["threshold"], out, modalities=used, views=views)

    @staticmethod
    def _view_strip(c: Components, lam: float):
        """The rendered views with each view's map (the 3D branch's lambda mix), for the GUI."""
        strip, vm = c.extra.get("views"), c.extra.get("view_maps") or {}
        t = vm.get("text")
        if strip is None or t is None:
            return strip
        v = vm.get("visual", t)
        return strip.with_maps(lam * t + (1 - lam) * v)


class ClipFewShot(ClipZeroShot):
    id = "clip-few-shot"
    name = "CLIP few-shot (prompts + support)"
    description = ("Few-shot: the zero-shot text maps combined with CMAD's visual discrepancy to a memory of "
                   "support patch tokens per layer (q = 1/2 (1 - max cos)), for RGB and for the rendered views.")
    needs = Needs(rgb="optional", points="optional", text_prompts=True, support=1, default_support=4,
                  weights=True)
    params = COMMON_PARAMS + (
        Param("text_weight", 0.5, "float", "lambda (text weight)", 0.0, 1.0, 0.01, stage=STAGE_FUSION,
              help="map = lambda * zero-shot + (1 - lambda) * visual discrepancy"),
    )
    #: per branch (RGB / rendered views) and layer: the support's patch tokens (one width D)
    state_schema = StateSchema(arrays=(ArraySpec(r"mem_(?P<b>rgb|3d)_(?P<l>\d+)", shape=("N{b}", "D")),))
    few_shot = True

    def _lambda(self, p: dict) -> float:
        return float(p["text_weight"])

    def build_state(self, support, class_name, progress, cancel):
        arrays, meta = super().build_state(support, class_name, progress, cancel)
        h = self._handle()
        size = self._size(h)
        mem: dict[str, dict[int, list]] = {"rgb": {}, "3d": {}}
        for i, s in enumerate(support):
            self.check_cancel(cancel)
            self.report(progress, i / max(len(support), 1), f"support {i + 1}/{len(support)}")
            images, n_rgb, views = self._inputs(s, size)
            tokens, _, _ = self._encode(h, images, cancel)
            for l, t in tokens.items():
                if n_rgb:
                    mem["rgb"].setdefault(l, []).append(t[:n_rgb].reshape(-1, t.shape[-1]))
                if len(t) > n_rgb:
                    mem["3d"].setdefault(l, []).append(t[n_rgb:].reshape(-1, t.shape[-1]))
        for branch, per in mem.items():
            for l, chunks in per.items():
                arrays[f"mem_{branch}_{l}"] = np.concatenate(chunks, 0).astype(np.float32)
        meta["n_memory"] = {k: int(v.shape[0]) for k, v in arrays.items()}
        return arrays, meta


register(ClipZeroShot)
register(ClipFewShot)
