"""Command-line interface (``python main.py ...``). Everything the GUI does, a script can do."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import Cancelled, MMADError, UsageError


EXIT_OK, EXIT_PARTIAL, EXIT_USER, EXIT_CANCELLED = 0, 1, 2, 130
log = logging.getLogger("mmad")


def _err(msg: str) -> None:
    print(f"error: {msg}", file=sys.stderr)


def _setup_logging(debug: bool) -> Optional[Path]:
    """Warnings to stderr as one plain line; with ``--debug`` tracebacks too.  Always keep the full
    record (tracebacks included) in a log file under the cache folder."""
    from .paths import cache_dir
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    for h in list(root.handlers):
        if getattr(h, "_mmad", False):
            root.removeHandler(h)

    class _Plain(logging.Formatter):
        def formatException(self, ei):  # noqa: N802 - logging API
            return super().formatException(ei) if debug else ""

        def format(self, record):
            record.exc_text = None
            text = super().format(record)
            return text.rstrip()

    class _Stderr(logging.StreamHandler):
        """Writes to the *current* sys.stderr (tests and embedding code replace it)."""

        @property
        def stream(self):  # type: ignore[override]
            return sys.stderr

        @stream.setter
        def stream(self, value) -> None:
            pass

    err = _Stderr()
    err.setLevel(logging.DEBUG if debug else logging.WARNING)
    err.setFormatter(_Plain("%(levelname)s: %(message)s"))
    err._mmad = True  # type: ignore[attr-defined]
    root.addHandler(err)
    path = None
    try:
        d = cache_dir() / "logs"
        d.mkdir(parents=True, exist_ok=True)
        path = d / "cli.log"
        fh = logging.FileHandler(path, encoding="utf-8")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        fh._mmad = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    except OSError:
        path = None
    logging.captureWarnings(True)
    return path


def _parse_params(items: Sequence[str], weights: Optional[str] = None, detector: str = "") -> dict:
    """``--param NAME=VALUE`` items of ``detector``; a renamed parameter's old name is read as
    today's (with a note on stderr)."""
    from .detectors.aliases import migrate_params
    params = {}
    if weights:
        params["weights"] = weights
    for it in items or ():
        if "=" not in it:
            raise UsageError(f"--param expects NAME=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        params[k.strip()] = v.strip()
    notes: list[str] = []
    params = migrate_params(detector, params, strict=True, notes=notes)
    for line in notes:
        print(f"note: renamed parameter: {line}", file=sys.stderr)
    return params


# ---------------------------------------------------------------------------------- eval
def cmd_eval(args: argparse.Namespace) -> int:
    from .datasets import open_dataset
    from .detectors import get
    from .evaluate import evaluate
    from .session import support_shots

    det = get(args.detector)  # unknown id -> UnknownDetectorError with the list
    params = _parse_params(args.param, args.weights, args.detector)
    if args.weights and not any(p.name == "weights" for p in det.params):
        raise UsageError(f"detector '{args.detector}' needs no weights (--weights is for CLIP detectors)")
    if args.checkpoint:
        params["checkpoint"] = str(Path(args.checkpoint).resolve())
    for k, v in params.items():
        det.param(k).coerce(v)   # a bad parameter or --shots is a one-line error before anything runs
    support_shots(args.detector, args.shots)
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
    report = evaluate(ds, args.detector, classes=classes, shots=args.shots, params=params,
                      device=args.device, save_maps=Path(args.save_maps) if args.save_maps else None,
                      on_event=on_event)
    if bar is not None:
        bar.close()
    print(f"\n{args.detector}, {report.shots_text()}, {ds.root} ({ds.layout})")
    print(report.table())
    for line in report.note_lines():
        print(f"note: {line}")
    print(f"total {time.perf_counter() - t0:.1f} s" + (f", {len(report.skipped)} skipped" if report.skipped else ""))
    if args.json:
        from .io import write_json
        write_json(args.json, report.to_json(), indent=2)
        print(f"wrote {args.json}")
    if args.save_maps:
        print(f"maps in {args.save_maps}")
    if not report.per_class:
        return EXIT_USER
    return EXIT_PARTIAL if report.skipped else EXIT_OK


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
def cmd_score(args: argparse.Namespace) -> int:
    from .scoring import score_paths
    outcome = score_paths(args.paths, args.detector, Path(args.out), support=args.support, shots=args.shots,
                          params=dict(_parse_params(args.param, args.weights, args.detector),
                                      **({"checkpoint": str(Path(args.checkpoint).resolve())} if args.checkpoint else {})),
                          device=args.device,
                          on_line=print, on_error=_err)
    if outcome.skipped:
        print(f"{len(outcome.lines)} scored, {len(outcome.skipped)} skipped", file=sys.stderr)
    return EXIT_OK if not outcome.skipped else (EXIT_PARTIAL if outcome.lines else EXIT_USER)


# ---------------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from .datasets import open_dataset
    from .training import train
    ds = open_dataset(args.data)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if args.classes else None
    last = [0.0]

    def progress(f: float, msg: str) -> None:
        if not args.quiet and time.perf_counter() - last[0] > 1.0:
            last[0] = time.perf_counter()
            print(f"[{100 * f:5.1f}%] {msg}", file=sys.stderr)

    r = train(ds, args.detector, classes=classes, epochs=args.epochs, out=args.out, progress=progress,
              on_epoch=lambda e, loss: print(f"epoch {e}: loss {loss:.5f}"), resume=args.resume, seed=args.seed)
    for s in r.skipped:
        print(f"skipped {s}", file=sys.stderr)
    print(f"{r.detector} on {', '.join(r.classes)}: {r.n_samples} good samples, {r.n_locations} locations; "
          f"features {r.feature_seconds:.1f} s, training {r.train_seconds:.1f} s, peak memory {r.peak_rss_mb:.0f} MB")
    print(f"wrote {r.path}")
    return EXIT_PARTIAL if r.skipped else EXIT_OK


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
    ap.add_argument("--demo", action="store_true", help="(GUI) demo mode: full screen, cycles through the demo data")
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
    e.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    e.add_argument("--weights", help="weights FILE for detectors that need them, or 'random' (meaningless scores)")
    e.add_argument("--checkpoint", help="trained model for trained detectors (cross-modal, unified-moe)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("--debug", action="store_true", help="print tracebacks of unexpected errors")
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
    s.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    s.add_argument("--weights", help="weights FILE for detectors that need them, or 'random' (meaningless scores)")
    s.add_argument("--checkpoint", help="trained model for trained detectors (cross-modal, unified-moe)")
    s.add_argument("--debug", action="store_true", help="print tracebacks of unexpected errors")
    s.set_defaults(func=cmd_score)

    t = sub.add_parser("train", help="train a detector on the good samples of one or more classes (one model)")
    t.add_argument("--data", required=True, help="dataset root; 'demo' for the built-in demo data")
    t.add_argument("--classes", help="comma-separated class names (default: all)")
    t.add_argument("--detector", required=True, help="cross-modal or unified-moe")
    t.add_argument("--out", required=True, help="checkpoint path (writes OUT.safetensors + OUT.json)")
    t.add_argument("--epochs", type=int, default=20)
    t.add_argument("--resume", action="store_true", help="continue the checkpoint at --out up to --epochs")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")
    t.add_argument("--debug", action="store_true", help="print tracebacks of unexpected errors")
    t.set_defaults(func=cmd_train)

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
        return gui(args.data, demo=True) if args.demo else gui(args.data)
    if getattr(args, "data", None) == "demo" and args.cmd in ("eval", "train"):
        from .demo import ensure_demo
        args.data = str(ensure_demo())
    log_path = _setup_logging(bool(getattr(args, "debug", False)))
    try:
        return _run(args, log_path)
    finally:
        root = logging.getLogger()
        for h in list(root.handlers):
            if getattr(h, "_mmad", False):
                root.removeHandler(h)
                h.close()
        logging.captureWarnings(False)


def _run(args: argparse.Namespace, log_path: Optional[Path]) -> int:
    try:
        if getattr(args, "device", None) is not None:
            from .devices import resolve_device
            args.device = resolve_device(args.device)
        return args.func(args)
    except Cancelled:
        _err("cancelled")
        return EXIT_CANCELLED
    except MMADError as e:     # every user error: one line, exit code 2
        _err(str(e))
        return EXIT_USER
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_CANCELLED
    except Exception as e:  # noqa: BLE001 - a bug: one line here, the traceback in the log file
        log.debug("unexpected error", exc_info=True)
        _err(f"unexpected error ({type(e).__name__}: {e})"
             + (f"; details in {log_path}" if log_path else "") + " - please report it")
        if getattr(args, "debug", False):
            raise
        return EXIT_USER
