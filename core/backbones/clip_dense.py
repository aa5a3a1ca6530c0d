"""Dense CLIP features: per-layer patch tokens in the joint space, with AnomalyCLIP's training-free
value-value (V-V) attention on the last blocks, and the global (CLS) embedding.

The dual path (AnomalyCLIP's, as above): for every block ``b >= vv_start`` (1-indexed)::

    x_ori <- x_ori + Attn_qk(ln1(x_ori)); x_ori <- x_ori + MLP(ln2(x_ori))      # the usual block
    x_vv  <- x_vv  + Attn_vv(ln1(x_ori))                                       # no FFN

where ``Attn_vv`` reuses the block's in/out projections with q = k = v = the value projection (scale
head_dim^-0.5, softmax).  ``x_vv`` starts as the input of the first replaced block; for blocks before
``vv_start`` the tokens of the original path are used.  Tokens of each requested layer go through
``ln_post`` and ``@ proj``; the global embedding is ``ln_post(CLS of x_ori) @ proj`` (open_clip's).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from . import CLIP_MEAN, CLIP_STD

#: number of image-encoder passes (tests check that a prompt edit does not add any)
CALLS = {"image": 0, "text": 0}


@dataclass
class DenseOut:
    tokens: dict           # layer (1-indexed) -> torch (B, N, D) patch tokens in the joint space (no CLS)
    global_emb: object     # torch (B, D)
    grid: tuple[int, int]  # (gh, gw) patch grid


def default_layers(depth: int) -> tuple[int, ...]:
    """The quarter depths, as AnomalyCLIP's [6, 12, 18, 24] for 24 layers ([3, 6, 9, 12] for 12)."""
    q = max(depth // 4, 1)
    return tuple(sorted({min(q * i, depth) for i in range(1, 5)}))


def default_vv_start(depth: int) -> int:
    """First block with V-V attention: AnomalyCLIP replaces layers 6..24 of 24 (quarter depth)."""
    return max(depth // 4, 1)


def preprocess(images: Sequence[np.ndarray], size: int, device, dtype):
    """uint8 H x W x 3 images -> normalised (B, 3, size, size) tensor: bicubic antialiased resize of the
    whole image (no crop, as anomalib's WinCLIP), CLIP mean/std."""
    import torch
    import torch.nn.functional as F
    out = []
    for im in images:
        im = np.asarray(im)
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, -1)
        t = torch.from_numpy(np.ascontiguousarray(im[..., :3])).permute(2, 0, 1).float()[None] / 255.0
        if t.shape[-2:] != (size, size):
            t = F.interpolate(t, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        out.append(t)
    x = torch.cat(out, 0)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).to(device=device, dtype=dtype)


def dual_attention(attn, y, cls_only: bool = False):
    """Both attentions of a V-V block from ONE input projection: (standard q.k attention of ``y``,
    V-V attention of ``y``), each through the output projection.  ``cls_only``: the standard one for the
    CLS query only (the last block, where only the global embedding reads the original path)."""
    import torch.nn.functional as F
    b, n, c = y.shape
    h = attn.num_heads
    d = c // h
    q, k, v = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
    if cls_only:
        q = q[:, :1]

    def heads(t):
        return t.reshape(b, t.shape[1], h, d).transpose(1, 2)
    qh, kh, vh = heads(q), heads(k), heads(v)
    std = F.scaled_dot_product_attention(qh, kh, vh).transpose(1, 2).reshape(b, q.shape[1], c)
    vv = F.scaled_dot_product_attention(vh, vh, vh).transpose(1, 2).reshape(b, n, c)
    return attn.out_proj(std), attn.out_proj(vv)


def vv_attention(attn, x):
    """V-V self-attention with the weights of ``attn`` (a batch-first ``nn.MultiheadAttention``):
    v = x W_v + b_v; per head softmax(v v^T * d^-0.5) v; then the output projection."""
    import torch
    b, n, c = x.shape
    h = attn.num_heads
    d = c // h
    w_v = attn.in_proj_weight[2 * c:]
    b_v = attn.in_proj_bias[2 * c:] if attn.in_proj_bias is not None else None
    v = torch.nn.functional.linear(x, w_v, b_v).view(b, n, h, d).transpose(1, 2)   # B h N d
    # softmax(v v^T / sqrt(d)) v, with torch's fused kernel (its default scale is d^-0.5)
    o = torch.nn.functional.scaled_dot_product_attention(v, v, v).transpose(1, 2).reshape(b, n, c)
    return attn.out_proj(o)


def _plain_mha(attn) -> bool:
    """A batch-first ``nn.MultiheadAttention`` with one packed input projection (open_clip's ViTs)."""
    import torch
    return (isinstance(attn, torch.nn.MultiheadAttention) and attn.batch_first and attn._qkv_same_embed_dim
            and attn.in_proj_weight is not None and attn.bias_k is None and not attn.add_zero_attn)


def _pos_embed(visual, gh: int, gw: int):
    """The positional embedding, bilinearly resized to a (gh, gw) grid when it differs."""
    import torch.nn.functional as F
    pe = visual.positional_embedding
    n0 = pe.shape[0] - 1
    g0 = int(round(n0 ** 0.5))
    if (gh, gw) == (g0, g0):
        return pe
    grid = pe[1:].reshape(1, g0, g0, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(gh * gw, -1).to(pe.dtype)
    import torch
    return torch.cat([pe[:1], grid], 0)


def encode_dense(model, x, layers: Sequence[int], vv_start: Optional[int] = None, vv: bool = True,
                 project: bool = True) -> DenseOut:
    """Dense features of a batch ``x`` (B, 3, H, W) already preprocessed.

    ``layers``: 1-indexed blocks whose tokens are returned; ``vv_start``: first V-V block
    (default :func:`default_vv_start`); ``vv=False`` returns the original path's tokens (plain CLIP);
    ``project=False`` stops after ``ln_post`` (WinCLIP's 896-d patch tokens).
    """
    import torch
    CALLS["image"] += 1
    visual = model.visual
    blocks = visual.transformer.resblocks
    depth = len(blocks)
    layers = sorted({int(l) for l in layers})
    if not layers or layers[0] < 1 or layers[-1] > depth:
        raise ValueError(f"layers {layers} outside 1..{depth}")
    vv_start = default_vv_start(depth) if vv_start is None else int(vv_start)
    with torch.inference_mode():
        t = visual.conv1(x)
        gh, gw = t.shape[-2:]
        t = t.reshape(t.shape[0], t.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(t.dtype).view(1, 1, -1).expand(t.shape[0], -1, -1)
        t = torch.cat([cls, t], 1) + _pos_embed(visual, gh, gw).to(t.dtype)
        t = visual.patch_dropout(t)
        x_ori = visual.ln_pre(t)
        if not getattr(visual.transformer, "batch_first", True):
            raise ValueError("encode_dense needs a batch-first open_clip transformer (open_clip >= 2.26)")
        x_vv = None
        raw = {}
        shared = _plain_mha(blocks[0].attn)
        for i, blk in enumerate(blocks, start=1):
            if vv and i >= vv_start:
                y = blk.ln_1(x_ori)
                last = i == depth          # after the last block only the CLS of x_ori is read
                if shared:
                    std, vvo = dual_attention(blk.attn, y, cls_only=last)
                else:
                    vvo = vv_attention(blk.attn, y)
                    std = blk.attention(q_x=y[:, :1] if last else y, k_x=y, v_x=y)
                x_vv = (x_ori if x_vv is None else x_vv) + blk.ls_1(vvo)
                x_ori = (x_ori[:, :1] if last else x_ori) + blk.ls_1(std)
                x_ori = x_ori + blk.ls_2(blk.mlp(blk.ln_2(x_ori)))
            else:
                x_ori = blk(x_ori)
            if i in layers:
                raw[i] = x_vv if (vv and x_vv is not None) else x_ori
        tokens = {}
        for i, r in raw.items():
            f = visual.ln_post(r[:, 1:])
            tokens[i] = f @ visual.proj if (project and visual.proj is not None) else f
        g = visual.ln_post(x_ori[:, 0])
        if visual.proj is not None:
            g = g @ visual.proj
    return DenseOut(tokens=tokens, global_emb=g, grid=(int(gh), int(gw)))


def encode_text(model, tokenizer, prompts: Sequence[str], chunk: int = 1024):
    """Unnormalised text embeddings (P, D) of the prompts.

    For open_clip's CLIP text tower (causal mask, pooled at the end-of-text token) the padding after the
    longest prompt cannot change the result (no token attends to later ones), so the transformer runs on
    the first L positions only: the same embeddings as ``model.encode_text``, several times faster.
    Prompts are sorted by length and encoded in chunks of ``chunk``, each cut at its own longest prompt
    (the default keeps one chunk: smaller ones were not measured faster on 2 loaded cores)."""
    import torch
    CALLS["text"] += 1
    dev = next(model.parameters()).device
    text = tokenizer(list(prompts)).to(dev)
    with torch.inference_mode():
        mask = getattr(model, "attn_mask", None)
        if (mask is None or getattr(model, "text_pool_type", "") != "argmax"
                or not hasattr(model, "token_embedding")):
            return model.encode_text(text).float()
        lengths = (text != 0).sum(1)
        order = torch.argsort(lengths)
        out = [None] * len(text)
        cast = model.transformer.get_cast_dtype()
        proj = model.text_projection
        for i in range(0, len(text), chunk):           # by length: each chunk only as long as its longest
            idx = order[i:i + chunk]
            L = int(lengths[idx].max().item())
            t = text[idx, :L]
            x = model.token_embedding(t).to(cast) + model.positional_embedding[:L].to(cast)
            x = model.transformer(x, attn_mask=mask[:L, :L])
            x = model.ln_final(x)
            x = x[torch.arange(x.shape[0], device=x.device), t.argmax(dim=-1)]
            if proj is not None:
                x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
            for j, row in zip(idx.tolist(), x.float()):
                out[j] = row
        return torch.stack(out)
