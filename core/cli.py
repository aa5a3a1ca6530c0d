"""Command-line interface (``python main.py ...``). Everything the GUI does, a script can do."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from .errors import Cancelled, InputError, MMADError
from .sample import Sample


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _parse_params(items: Sequence[str]) -> dict:
    params = {}
    for it in items or ():
        if "=" not in it:
            raise InputError(None, f"--param expects NAME=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        params[k.strip()] = v.strip()
    return params


# ---------------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from .datasets import open_dataset
    from .detectors import get
    from .evaluate import evaluate

    get(args.detector)  # unknown id -> KeyError with the list
    ds = open_dataset(args.data)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    bar = None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None

    def on_event(kind: str, info: dict) -> None:
        nonlocal bar
        if kind == "class":
            if bar is not None:
                bar.close()
            if tqdm is not None and not args.quiet:
                bar = tqdm(total=info["n_test"], desc=f"{info['name']} ({info['n_support']}-shot)",
                           unit="sample", file=sys.stderr, leave=True, dynamic_ncols=True)
        elif kind == "sample" and bar is not None:
            bar.update(1)
            bar.set_postfix(s=f"{info['seconds']:.2f}")
        elif kind == "skip":
            msg = f"skipped {info['key']}: {info['reason']}"
            (bar.write(msg, file=sys.stderr) if bar is not None else print(msg, file=sys.stderr))

    t0 = time.perf_counter()
    report = evaluate(ds, args.detector, classes=classes, shots=args.shots, params=_parse_params(args.param),
                      device=args.device, save_maps=Path(args.save_maps) if args.save_maps else None,
                      on_event=on_event)
    if bar is not None:
        bar.close()
    print(f"\n{args.detector}, {args.shots}-shot, {ds.root} ({ds.layout})")
    print(report.table())
    print(f"total {time.perf_counter() - t0:.1f} s" + (f", {len(report.skipped)} skipped" if report.skipped else ""))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2))
        print(f"wrote {args.json}")
    if args.save_maps:
        print(f"maps in {args.save_maps}")
    return 0 if report.per_class else 1


# ---------------------------------------------------------------------------------- detectors
def cmd_detectors(args: argparse.Namespace) -> int:
    from .detectors import available, get
    for did in available():
        cls = get(did)
        if args.verbose:
            print(json.dumps(cls.describe(), indent=2, default=str))
        else:
            n = cls.needs
            needs = [m for m in ("rgb", "points") if getattr(n, m) != "unused"]
            extra = (["text prompts"] if n.text_prompts else []) + ([f"{n.default_support}-shot support"] if n.support else []) \
                + (["weights"] if n.weights else [])
            print(f"{did:<16} {cls.name}  [{', '.join(needs + extra)}]")
    return 0


# ---------------------------------------------------------------------------------- score
def _mvtec_ref(path: Path):
    """If ``path`` is a file inside an MVTec 3D-AD tree (<class>/<split>/<label>/<rgb|xyz>/<id>.*),
    return (dataset, ref); else None."""
    from .datasets.mvtec3d import MVTec3DDataset
    if path.parent.name not in ("rgb", "xyz") or len(path.parents) < 4:
        return None
    class_root = path.parents[3]
    try:
        ds = MVTec3DDataset.from_root(class_root)
    except MMADError:
        return None
    for r in ds.refs:
        if any(Path(p).resolve() == path.resolve() for p in r.paths.values()):
            return ds, r
    return None


def resolve_sample(path: str | Path) -> tuple[Sample, Optional[tuple]]:
    """Load one sample from a path. For a file inside an MVTec 3D-AD tree also return
    ``(dataset, class_name)``, whose ``train/good`` samples are its default support (not loaded here:
    only the first K are, and only when a fit is needed)."""
    from .datasets import load_sample
    path = Path(path)
    hit = _mvtec_ref(path) if path.is_file() else None
    if hit is not None:
        ds, ref = hit
        return ds.load(ref), (ds, ref.class_name)
    return load_sample(path), None


def load_support_paths(paths: Sequence[str], k: int, class_name: Optional[str] = None) -> list[Sample]:
    from .datasets import load_sample, open_dataset
    out: list[Sample] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            ds = open_dataset(p)
            cls = class_name if class_name in ds.classes else ds.classes[0]
            refs = ds.support_refs(cls, k) or ds.select([cls])[:k]
            out += [ds.load(r) for r in refs]
        else:
            out.append(load_sample(p))
    return out[:k]


def heatmap_png(sample: Sample, pixel_map: np.ndarray, vmin: float, vmax: float, opacity: float = 0.5) -> np.ndarray:
    """RGB (uint8) of the heatmap (inferno) blended over the sample's image."""
    import cv2
    from .sample import resize_map
    shape = sample.grid_shape or pixel_map.shape
    m = resize_map(pixel_map, shape)
    norm = np.clip((np.nan_to_num(m, nan=vmin) - vmin) / max(vmax - vmin, 1e-9), 0, 1)
    heat = cv2.applyColorMap((norm * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
    if sample.rgb is None:
        return heat
    return (sample.rgb.astype(np.float32) * (1 - opacity) + heat.astype(np.float32) * opacity).astype(np.uint8)


def cmd_score(args: argparse.Namespace) -> int:
    import cv2
    from .detectors import create
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    det = create(args.detector, device=args.device, **_parse_params(args.param))
    fitted_for = None
    status = 0
    for p in args.paths:
        try:
            sample, home = resolve_sample(p)
            support_key = ("explicit",) if args.support else (str(home[0].root), home[1]) if home else ("file", p)
            if det.needs.support and fitted_for != support_key:
                support = []
                if args.support:
                    support = load_support_paths(args.support, args.shots, sample.class_name)
                elif home is not None:
                    ds, cls = home
                    support = [ds.load(r) for r in ds.support_refs(cls, args.shots)]
                if not support:
                    raise InputError(p, f"detector '{det.id}' needs good reference samples: pass --support "
                                        "FILES_OR_DIR (or score a file inside an MVTec 3D-AD tree, whose "
                                        "train/good samples are used)")
                det.fit(support)
                fitted_for = support_key
            t0 = time.perf_counter()
            res = det.score(sample)
            dt = time.perf_counter() - t0
            stem = (f"{sample.class_name}_{sample.label}_{sample.id}" if sample.class_name else sample.id).replace("/", "_")
            written = []
            if res.pixel_map is not None:
                thr = res.threshold if res.threshold is not None else float(np.nanmax(res.pixel_map))
                vmax = max(float(np.nanmax(res.pixel_map)), thr * 1.5)
                img = heatmap_png(sample, res.pixel_map, vmin=0.0, vmax=vmax)
                f = out / f"{stem}_heatmap.png"
                cv2.imwrite(str(f), img[..., ::-1])
                written.append(f.name)
            if res.point_scores is not None and not sample.organized:
                f = out / f"{stem}_scores.npy"
                np.save(f, np.concatenate([sample.valid_points(), res.point_scores[:, None]], 1).astype(np.float32))
                written.append(f.name)
            verdict = "" if res.is_anomalous is None else ("  ANOMALOUS" if res.is_anomalous else "  ok")
            print(f"{p}: image score {res.image_score:.3f}{verdict} ({dt:.2f} s) -> {', '.join(written)}")
        except MMADError as e:
            _err(str(e))
            status = 1
    return status


# ---------------------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import ensure_demo, generate_demo
    if args.out:
        path = generate_demo(Path(args.out), size=args.size, seed=args.seed)
    else:
        path = ensure_demo()
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="main.py", description="MMAD Inspector: zero-/few-shot RGB + 3D anomaly "
                                 "detection. With no command, opens the GUI.")
    ap.add_argument("--data", help="(GUI) dataset folder to open instead of the demo data")
    sub = ap.add_subparsers(dest="cmd")

    e = sub.add_parser("eval", help="evaluate a detector on a labelled dataset (per-class table)")
    e.add_argument("--data", required=True, help="dataset root (MVTec 3D-AD / Eyecandies / Real3D-AD / folder); "
                                                 "'demo' for the built-in demo data")
    e.add_argument("--classes", help="comma-separated class names (default: all)")
    e.add_argument("--detector", default="memory-bank")
    e.add_argument("--shots", type=int, default=5, help="good train samples per class used as support")
    e.add_argument("--json", help="write the metrics as JSON to this file")
    e.add_argument("--save-maps", help="write fused maps as float32 TIFF in the official MVTec 3D-AD layout")
    e.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="detector parameter")
    e.add_argument("--device", default="cpu")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_eval)

    d = sub.add_parser("detectors", help="list detector ids")
    d.add_argument("-v", "--verbose", action="store_true", help="print needs and parameters as JSON")
    d.set_defaults(func=cmd_detectors)

    s = sub.add_parser("score", help="score single samples and write heatmap PNGs")
    s.add_argument("paths", nargs="+", help="image / cloud files (a file inside an MVTec 3D-AD tree pairs with "
                                            "its rgb/xyz sibling)")
    s.add_argument("--support", nargs="*", default=None, help="good reference files or a dataset folder")
    s.add_argument("--shots", type=int, default=5)
    s.add_argument("--detector", default="memory-bank")
    s.add_argument("--out", default="out/heatmaps")
    s.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_score)

    g = sub.add_parser("demo", help="generate the built-in demo dataset (prints its path)")
    g.add_argument("--out", help="folder (default: the cache folder the app uses)")
    g.add_argument("--size", type=int, default=256)
    g.add_argument("--seed", type=int, default=0)
    g.set_defaults(func=cmd_demo)
    return ap


def main(argv: Optional[Sequence[str]] = None, gui: Optional[Callable[[Optional[str]], int]] = None) -> int:
    """Run a command. With no command, call ``gui(data)`` (``main.py`` passes the Qt app's entry
    point; core itself never imports Qt) or, without one, print the help."""
    ap = build_parser()
    args = ap.parse_args(argv)
    if getattr(args, "cmd", None) is None:
        if gui is None:
            ap.print_help()
            return 2
        return gui(args.data)
    if getattr(args, "data", None) == "demo" and args.cmd == "eval":
        from .demo import ensure_demo
        args.data = str(ensure_demo())
    try:
        return args.func(args)
    except (MMADError, KeyError) as e:
        _err(e.args[0] if isinstance(e, KeyError) else str(e))
        return 2
    except Cancelled:
        _err("cancelled")
        return 130
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
