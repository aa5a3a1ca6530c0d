"""Compute devices: which exist, what ``"auto"`` means, which dtype to run in.

Importing torch costs seconds and hundreds of MB, and the GUI process must not pay that just to fill
a device menu.  So :func:`available_devices` never imports torch here: when torch is already loaded in
this process it asks it (``is_available`` / ``device_count``, which do not initialise CUDA), otherwise
it runs a short probe in a child process (``python -c "import torch; ..."``), once per process (the
answer is cached; ``refresh=True`` probes again).  Where no NVIDIA driver is visible (no
``/proc/driver/nvidia``, ``/dev/nvidia*`` or WSL's ``/dev/dxg`` on Linux; macOS) the probe is skipped:
there is no CUDA to find.  ``nvidia-smi`` is not used (it is absent on many machines with a driver).
``MMAD_DEVICE_PROBE=0`` turns the probe off (CPU only).

* :func:`available_devices` -> ``["cpu"]``, plus ``"cuda"`` (and ``"cuda:0"``, ``"cuda:1"``, ... when
  there are several GPUs).
* :func:`resolve_device` turns a user's choice (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``gpu``)
  into a concrete device, or raises :class:`DeviceError` saying why it cannot be used.
* :func:`default_dtype` -> ``"float16"`` on CUDA; on the CPU ``"bfloat16"`` where the processor computes
  bf16 natively (AMX-BF16 or AVX512-BF16: measured ~2x faster for CLIP ViT-B-16, token cosine to
  float32 >= 0.99995), else ``"float32"``; :func:`resolve_dtype` applies a user's choice
  (``auto``/``float32``/``bfloat16``/``float16``); :func:`torch_dtype` gives the torch object (imports
  torch: call it where the model runs).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .errors import MMADError

PROBE_TIMEOUT_S = 60.0     # importing torch from a cold disk can take tens of seconds
PROBE_ENV = "MMAD_DEVICE_PROBE"

# Printed as one JSON line by the child process.  Only the CUDA runtime is asked; errors are reported.
PROBE_CODE = """\
import json
try:
    import torch
    ok = bool(torch.cuda.is_available())
    n = int(torch.cuda.device_count()) if ok else 0
    names = []
    for i in range(n):
        try:
            names.append(str(torch.cuda.get_device_name(i)))
        except Exception:
            names.append("")
    print(json.dumps({"cuda": n, "names": names, "torch": str(torch.__version__)}))
except Exception as e:
    print(json.dumps({"cuda": 0, "names": [], "error": type(e).__name__ + ": " + str(e)}))
"""

__all__ = ["DeviceError", "DeviceInfo", "probe", "available_devices", "resolve_device", "default_dtype",
           "resolve_dtype", "cpu_has_native_bf16", "DTYPES",
           "torch_dtype", "cuda_available", "clear_cache"]


class DeviceError(MMADError, ValueError):
    """A device the user asked for does not exist here (or the name is not a device)."""


@dataclass(frozen=True)
class DeviceInfo:
    """What the probe found. ``source``: ``torch`` (asked the torch loaded here), ``probe`` (child
    process), ``no-driver``, ``hidden`` (``CUDA_VISIBLE_DEVICES`` hides every GPU), ``disabled``
    (``MMAD_DEVICE_PROBE=0``) or ``error`` (the probe failed; ``error`` says how)."""

    cuda_count: int = 0
    names: tuple[str, ...] = field(default_factory=tuple)
    source: str = "probe"
    error: str = ""
    torch_version: str = ""

    @property
    def devices(self) -> list[str]:
        out = ["cpu"]
        if self.cuda_count > 0:
            out.append("cuda")
        if self.cuda_count > 1:
            out += [f"cuda:{i}" for i in range(self.cuda_count)]
        return out

    def why_no_cuda(self) -> str:
        if self.cuda_count > 0:
            return ""
        return {
            "no-driver": "no NVIDIA driver is installed on this machine",
            "hidden": "CUDA_VISIBLE_DEVICES hides every GPU",
            "disabled": f"the device probe is off ({PROBE_ENV}=0)",
            "error": f"torch could not be asked ({self.error})",
        }.get(self.source, "torch sees no CUDA device" + (f" ({self.error})" if self.error else ""))


_lock = threading.Lock()
_cached: Optional[DeviceInfo] = None


def clear_cache() -> None:
    global _cached
    with _lock:
        _cached = None


def _driver_visible() -> bool:
    if sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux"):
        if Path("/proc/driver/nvidia/version").exists() or Path("/dev/dxg").exists():
            return True
        try:
            return any(p.name.startswith("nvidia") for p in Path("/dev").iterdir())
        except OSError:
            return False
    return True  # Windows and others: no cheap test, ask torch


def _cuda_hidden() -> bool:
    v = os.environ.get("CUDA_VISIBLE_DEVICES")
    return v is not None and v.strip() in ("", "-1")


def _ask_loaded_torch(torch) -> DeviceInfo:
    try:
        n = int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
        # No get_device_name here: it initialises CUDA, which would break a fork()ed worker.
        return DeviceInfo(n, ("",) * n, "torch", torch_version=str(getattr(torch, "__version__", "")))
    except Exception as e:  # noqa: BLE001 - a broken CUDA install means no CUDA
        return DeviceInfo(0, (), "error", f"{type(e).__name__}: {e}")


def _probe_command() -> list[str]:
    return [sys.executable, "-c", PROBE_CODE]


def _run_probe(timeout: float) -> DeviceInfo:
    try:
        cp = subprocess.run(_probe_command(), capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return DeviceInfo(0, (), "error", f"the probe took more than {timeout:.0f} s")
    except OSError as e:
        return DeviceInfo(0, (), "error", f"the probe could not start ({e})")
    lines = [ln for ln in (cp.stdout or "").splitlines() if ln.startswith("{")]
    if cp.returncode != 0 or not lines:
        tail = (cp.stderr or "").strip().splitlines()[-1:] or [f"exit code {cp.returncode}"]
        return DeviceInfo(0, (), "error", tail[0][:200])
    try:
        data = json.loads(lines[-1])
        n = max(int(data.get("cuda", 0)), 0)
        names = tuple(str(x) for x in data.get("names", []))[:n]
        names += ("",) * (n - len(names))
    except (ValueError, TypeError, AttributeError) as e:
        return DeviceInfo(0, (), "error", f"unreadable probe answer ({e})")
    err = str(data.get("error", ""))
    return DeviceInfo(n, names, "error" if err else "probe", err, str(data.get("torch", "")))


def probe(refresh: bool = False, timeout: float = PROBE_TIMEOUT_S) -> DeviceInfo:
    """What CUDA devices exist, found without importing torch in this process (cached)."""
    global _cached
    with _lock:
        if _cached is not None and not refresh:
            return _cached
        if os.environ.get(PROBE_ENV, "").strip().lower() in ("0", "false", "no", "off"):
            info = DeviceInfo(0, (), "disabled")
        elif _cuda_hidden():
            info = DeviceInfo(0, (), "hidden")
        elif sys.modules.get("torch") is not None:
            info = _ask_loaded_torch(sys.modules["torch"])
        elif not _driver_visible():
            info = DeviceInfo(0, (), "no-driver")
        else:
            info = _run_probe(timeout)
        _cached = info
        return info


def available_devices(refresh: bool = False) -> list[str]:
    """``["cpu"]`` plus ``"cuda"`` (and ``"cuda:N"`` for each GPU when there are several)."""
    return probe(refresh).devices


def cuda_available() -> bool:
    return probe().cuda_count > 0


_CUDA_RE = re.compile(r"(?:cuda|gpu):(\d+)")


def resolve_device(name: Optional[str] = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU exists, else ``cpu``; ``cpu``, ``cuda``/``gpu``, ``cuda:N`` are
    checked against :func:`available_devices`.  Raises :class:`DeviceError` with the reason and what to use."""
    n = (name or "auto").strip().lower()
    if n in ("auto", ""):
        return "cuda" if probe().cuda_count > 0 else "cpu"
    if n == "cpu":
        return "cpu"
    info = probe()
    if n in ("cuda", "gpu"):
        if info.cuda_count > 0:
            return "cuda"
        raise DeviceError(f"device {name!r} is not available: {info.why_no_cuda()}; use --device cpu or auto")
    m = _CUDA_RE.fullmatch(n)
    if m:
        i = int(m.group(1))
        if i < info.cuda_count:
            return f"cuda:{i}"
        have = info.why_no_cuda() if info.cuda_count == 0 else f"this machine has {info.cuda_count} CUDA device(s)"
        raise DeviceError(f"device {name!r} is not available: {have}; use --device cpu or auto")
    raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


DTYPES = ("auto", "float32", "bfloat16", "float16")
_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
_cpu_bf16: Optional[bool] = None


def cpu_has_native_bf16() -> bool:
    """Whether this processor computes bfloat16 in hardware (Linux ``/proc/cpuinfo`` flags
    ``amx_bf16`` / ``avx512_bf16``; ``MMAD_CPU_BF16=0/1`` overrides; elsewhere False)."""
    global _cpu_bf16
    env = os.environ.get("MMAD_CPU_BF16")
    if env in ("0", "1"):
        return env == "1"
    if _cpu_bf16 is None:
        try:
            flags = set()
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("flags"):
                        flags = set(line.split(":", 1)[1].split())
                        break
            _cpu_bf16 = any(fl in flags for fl in _BF16_FLAGS)
        except OSError:
            _cpu_bf16 = False
    return _cpu_bf16


def default_dtype(device: str) -> str:
    """The dtype name to run a model in: ``"float16"`` on CUDA; on the CPU ``"bfloat16"`` where it is
    native (:func:`cpu_has_native_bf16`), else ``"float32"``."""
    if str(device).lower().startswith("cuda"):
        return "float16"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def resolve_dtype(choice: Optional[str], device: str) -> str:
    """A user's precision choice for ``device``: ``auto``/empty -> :func:`default_dtype`; ``float16``
    on the CPU is refused (slow and unsupported for many CPU kernels)."""
    c = (choice or "auto").strip().lower()
    if c == "auto":
        return default_dtype(device)
    if c not in DTYPES:
        raise ValueError(f"unknown precision {choice!r}: one of {', '.join(DTYPES)}")
    if c == "float16" and not str(device).lower().startswith("cuda"):
        raise ValueError("float16 runs on CUDA only: use bfloat16 or float32 on the CPU")
    return c


def torch_dtype(device: str):
    """``torch.float16`` / ``torch.float32`` for ``device`` (imports torch)."""
    import torch
    return getattr(torch, default_dtype(device))
