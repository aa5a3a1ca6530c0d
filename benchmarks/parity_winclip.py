"""Numerical parity of ``core.detectors.clip.winclip`` with anomalib's WinCLIP (not CI).

One random-weight ViT-B-16-plus-240 (``get_clip(..., weights="random")``: seed 0) is saved to a
safetensors file in /tmp; three processes score the SAME uint8 images (4 test images in one batch,
2 references in one batch, class "object"):

* ours      - this repo's venv (open_clip 3.3): ``WinClip`` on our handle, our preprocessing;
* anomalib  - /work/venvs/anomalib (anomalib 2.7.0, open_clip 3.3): ``WinClipModel`` with
  ``torch_model.PRETRAINED = None`` and the saved state_dict, its own pre-processor transform;
* intended  - /work/venvs/oc224 (anomalib 2.7.0 with open_clip 2.24, whose transformer is still
  sequence-first, so anomalib's NLD->LND permute in the window branch is right there; anomalib issue
  #2571 is the window branch with open_clip >= 2.26).

Usage:  python benchmarks/parity_winclip.py [--py-anomalib PY] [--py-intended PY]
(``--side ours|anomalib --weights F --images F --out F`` runs one side.)

Measured here (2 shared CPU cores, float32; 4 test images 280x300 resized to 240, 2 references,
ours 384 s / anomalib 955 s / intended 1151 s wall under load), max |ours - other|:

    output                    anomalib(oc 3.3)  intended(oc 2.24)  range(ours)
    input (preprocessed)          0.000e+00      0.000e+00   [-1.8112, 2.1660]
    text [normal, anomalous]      0.000e+00      0.000e+00   [-2.6266, 2.5233]
    image_zero_shot (s_img)       0.000e+00      5.960e-08   [0.5007, 0.5048]
    zs_window_2                   2.953e-02      1.788e-07   [0.4792, 0.5112]
    zs_window_3                   2.607e-02      1.788e-07   [0.4880, 0.5077]
    zs_map (multiscale)           1.872e-02      1.192e-07   [0.4892, 0.5073]
    pixel_map_zero_shot (240 px)  1.865e-02      1.788e-07   [0.4894, 0.5073]
    image_score_zero_shot         0.000e+00      5.960e-08   [0.5007, 0.5048]
    fs_patch (896-d assoc.)       0.000e+00      1.490e-07   [0.0152, 0.1678]
    fs_window_2                   6.531e-02      1.807e-07   [0.0067, 0.0653]
    fs_window_3                   4.268e-02      1.024e-07   [0.0110, 0.0427]
    fs_map                        3.528e-02      7.264e-08   [0.0141, 0.0765]
    pixel_map (final, 240 px)     2.278e-02      1.192e-07   [0.2548, 0.2888]
    image_score (final)           1.029e-02      2.980e-08   [0.2792, 0.2906]
    anomalib (oc 3.3): max |window emb - window 0| = 0 at both scales (every window identical: #2571)
    intended (oc 2.24): 4.0 (scale 2), 2.7 (scale 3)

So: equal to anomalib's intended WinCLIP within 2e-7 on every output (target 1e-5); against anomalib
as installed with open_clip 3.3 only the outputs that do not use windows agree (bit-exact), the
window-based ones differ by its bug.  /work/venvs/oc224 was made as ``python -m venv`` +
``pip install --no-deps open_clip_torch==2.24.0`` + a .pth line adding the anomalib venv's site-packages
(its own open_clip 2.24 comes first on sys.path).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TMP = Path(os.environ.get("PARITY_TMP", "/tmp/parity_winclip"))
ARCH = "ViT-B-16-plus-240"
CLASS = "object"
N_TEST, N_REF = 4, 2


def make_images(n: int, seed: int, size=(280, 300)) -> np.ndarray:
    """Smooth random colour fields with a few bright/dark blobs (uint8 n x H x W x 3), not 240 px so
    that the resize is exercised."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    out = []
    for _ in range(n):
        img = np.zeros((h, w, 3))
        for c in range(3):
            f = rng.uniform(1, 6, 2)
            img[..., c] = 0.5 + 0.25 * np.sin(2 * np.pi * (f[0] * xx + f[1] * yy) + rng.uniform(0, 6))
        for _ in range(3):
            cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.12)
            img += rng.uniform(-0.4, 0.4) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / r ** 2)[..., None]
        img += rng.normal(0, 0.03, img.shape)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


# ---------------------------------------------------------------------------------------------- sides
def side_ours(weights: Path, images: Path, out: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import torch
    from core.backbones import get_clip
    from core.backbones.clip_dense import preprocess
    from core.detectors.clip.winclip import WinClip
    torch.set_num_threads(2)
    h = get_clip(ARCH, "laion400m_e31", weights="random", dtype="float32")
    if not weights.exists():
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in h.model.state_dict().items()}, str(weights))
    d = np.load(images)
    wc = WinClip(h.model, h.tokenizer)
    wc.set_class(CLASS)
    x_ref = preprocess(list(d["ref"]), 240, "cpu", torch.float32)
    x = preprocess(list(d["test"]), 240, "cpu", torch.float32)
    r0 = wc.score(x)                                   # zero-shot only
    wc.set_references(x_ref)
    r = wc.score(x)
    res = {"input": x.numpy(), "text": wc.text.numpy(), "pixel_map_zero_shot": r0["pixel_map"],
           "image_score_zero_shot": r0["image_score"]}
    res.update(r)
    np.savez(out, **res)


def side_anomalib(weights: Path, images: Path, out: Path) -> None:
    import torch
    from anomalib.models.image.winclip import lightning_model, torch_model
    from anomalib.models.image.winclip.utils import class_scores, harmonic_aggregation, visual_association_score
    from safetensors.torch import load_file
    torch.set_num_threads(2)
    torch_model.PRETRAINED = None                      # random init, no download; weights loaded below
    m = torch_model.WinClipModel()
    missing, unexpected = m.clip.load_state_dict(load_file(str(weights)), strict=False)
    if missing or unexpected:
        print("state_dict: missing", missing, "unexpected", unexpected, file=sys.stderr)
    m.eval()
    pre = lightning_model.WinClip.configure_pre_processor().transform
    d = np.load(images)

    def prep(a):
        t = torch.from_numpy(a).permute(0, 3, 1, 2).float() / 255.0
        return pre(t)
    x_ref, x = prep(d["ref"]), prep(d["test"])
    m.setup(CLASS, None)
    with torch.no_grad():
        zs_only = m(x)
        m.setup(CLASS, x_ref)
        img, win, patch = m.encode_image(x)
        s_img = class_scores(img, m.text_embeddings, m.temperature, target_class=1)
        res = {"input": x.numpy(), "text": m.text_embeddings.numpy(),
               "image_zero_shot": s_img.numpy(),
               "zs_map": m._compute_zero_shot_scores(s_img, win).numpy(),           # noqa: SLF001
               "fs_map": m._compute_few_shot_scores(patch, win).numpy(),            # noqa: SLF001
               "fs_patch": visual_association_score(patch, m.patch_embeddings).reshape(-1, 15, 15).numpy(),
               "pixel_map_zero_shot": zs_only.anomaly_map.numpy(),
               "image_score_zero_shot": zs_only.pred_score.numpy()}
        for k, w, ref, mask in zip(m.scales, win, m.visual_embeddings, m.masks):
            res[f"zs_window_{k}"] = harmonic_aggregation(class_scores(w, m.text_embeddings, m.temperature, 1),
                                                         (15, 15), mask).numpy()
            res[f"fs_window_{k}"] = harmonic_aggregation(visual_association_score(w, ref), (15, 15), mask).numpy()
            res[f"window_emb_{k}_spread"] = np.float32((w - w[:, :1]).abs().max())
        full = m(x)
        res["pixel_map"] = full.anomaly_map.numpy()
        res["image_score"] = full.pred_score.numpy()
    np.savez(out, **res)


# ---------------------------------------------------------------------------------------------- driver
ROWS = ("input", "text", "image_zero_shot", "zs_window_2", "zs_window_3", "zs_map", "pixel_map_zero_shot",
        "image_score_zero_shot", "fs_patch", "fs_window_2", "fs_window_3", "fs_map", "pixel_map", "image_score")


def run_side(py: str, side: str, weights: Path, images: Path, out: Path) -> float:
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    subprocess.run([py, __file__, "--side", side, "--weights", str(weights), "--images", str(images),
                    "--out", str(out)], check=True, env=env, cwd=str(ROOT))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=("ours", "anomalib"))
    ap.add_argument("--weights", type=Path, default=TMP / "vit_b16plus240_seed0.safetensors")
    ap.add_argument("--images", type=Path, default=TMP / "images.npz")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--py-ours", default=sys.executable)
    ap.add_argument("--py-anomalib", default="/work/venvs/anomalib/bin/python")
    ap.add_argument("--py-intended", default="/work/venvs/oc224/bin/python")
    a = ap.parse_args()
    if a.side == "ours":
        return side_ours(a.weights, a.images, a.out)
    if a.side == "anomalib":
        return side_anomalib(a.weights, a.images, a.out)
    TMP.mkdir(parents=True, exist_ok=True)
    np.savez(a.images, test=make_images(N_TEST, 1), ref=make_images(N_REF, 2))
    outs = {}
    for name, py, side in (("ours", a.py_ours, "ours"), ("anomalib", a.py_anomalib, "anomalib"),
                           ("intended", a.py_intended, "anomalib")):
        if not Path(py).exists():
            print(f"{name}: {py} missing, skipped")
            continue
        out = TMP / f"{name}.npz"
        print(f"{name}: {run_side(py, side, a.weights, a.images, out):.1f} s")
        outs[name] = np.load(out)
    ours = outs["ours"]
    others = [n for n in ("anomalib", "intended") if n in outs]
    print("\nmax |ours - other|" + "".join(f"  {n:>12s}" for n in others) + "   range(ours)")
    for k in ROWS:
        cells = []
        for n in others:
            o = outs[n]
            cells.append(f"{float(np.abs(ours[k] - o[k]).max()):12.3e}" if k in o and k in ours else f"{'-':>12s}")
        rng = f"[{float(ours[k].min()):.4f}, {float(ours[k].max()):.4f}]" if k in ours else ""
        print(f"{k:22s}" + "".join(f"  {c}" for c in cells) + f"   {rng}")
    for n in others:
        for k in (2, 3):
            key = f"window_emb_{k}_spread"
            if key in outs[n]:
                print(f"{n}: max |window emb - window 0| at scale {k}: {float(outs[n][key]):.3e}"
                      + ("  (all windows identical: anomalib #2571)" if float(outs[n][key]) == 0 else ""))


if __name__ == "__main__":
    main()
