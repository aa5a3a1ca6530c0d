"""core.devices: the CUDA probe (in a child process, never importing torch here), auto, dtypes."""
from __future__ import annotations

import subprocess
from pathlib import Path
import sys
import types

import pytest

from core import devices
from core.devices import DeviceError


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    devices.clear_cache()
    for var in ("CUDA_VISIBLE_DEVICES", devices.PROBE_ENV):
        monkeypatch.delenv(var, raising=False)
    yield
    devices.clear_cache()


def fake_torch_dir(tmp_path, count: int, fail: str = "") -> str:
    """A folder with a stand-in ``torch`` module, so the real probe code runs in a real child process fast."""
    d = tmp_path / "faketorch"
    d.mkdir()
    body = f"raise ImportError({fail!r})\n" if fail else (
        "__version__ = '0.0-fake'\n"
        "class cuda:\n"
        f"    is_available = staticmethod(lambda: {count} > 0)\n"
        f"    device_count = staticmethod(lambda: {count})\n"
        "    get_device_name = staticmethod(lambda i: f'Fake GPU {i}')\n")
    (d / "torch.py").write_text(body)
    return str(d)


def use_fake_torch(monkeypatch, tmp_path, count: int, fail: str = "", calls=None):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(devices, "_driver_visible", lambda: True)
    path = fake_torch_dir(tmp_path, count, fail)
    code = f"import sys; sys.path.insert(0, {path!r})\n" + devices.PROBE_CODE

    def cmd():
        if calls is not None:
            calls.append(1)
        return [sys.executable, "-S", "-c", code]
    monkeypatch.setattr(devices, "_probe_command", cmd)


def test_probe_in_a_child_process(monkeypatch, tmp_path):
    calls = []
    use_fake_torch(monkeypatch, tmp_path, 2, calls=calls)
    info = devices.probe()
    assert info.cuda_count == 2 and info.names == ("Fake GPU 0", "Fake GPU 1") and info.source == "probe"
    assert info.torch_version == "0.0-fake"
    assert devices.available_devices() == ["cpu", "cuda", "cuda:0", "cuda:1"]
    assert len(calls) == 1                                    # cached
    devices.available_devices(refresh=True)
    assert len(calls) == 2
    assert "torch" not in sys.modules or not getattr(sys.modules["torch"], "__version__", "").endswith("fake")


def test_one_gpu_and_auto(monkeypatch, tmp_path):
    use_fake_torch(monkeypatch, tmp_path, 1)
    assert devices.available_devices() == ["cpu", "cuda"]
    assert devices.resolve_device("auto") == "cuda" and devices.resolve_device(None) == "cuda"
    assert devices.resolve_device("GPU") == "cuda" and devices.resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(DeviceError, match="1 CUDA device"):
        devices.resolve_device("cuda:1")


def test_no_gpu(monkeypatch, tmp_path):
    use_fake_torch(monkeypatch, tmp_path, 0)
    assert devices.available_devices() == ["cpu"]
    assert devices.resolve_device("auto") == "cpu" and devices.resolve_device(" CPU ") == "cpu"
    with pytest.raises(DeviceError) as ei:
        devices.resolve_device("cuda")
    assert "no CUDA" in str(ei.value) and "--device cpu" in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_broken_torch_means_cpu_with_the_reason(monkeypatch, tmp_path):
    use_fake_torch(monkeypatch, tmp_path, 0, fail="libcudart.so.13: cannot open shared object file")
    info = devices.probe()
    assert info.source == "error" and "libcudart" in info.error and info.devices == ["cpu"]
    with pytest.raises(DeviceError, match="libcudart"):
        devices.resolve_device("cuda")


def test_probe_crash_or_timeout_means_cpu(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(devices, "_driver_visible", lambda: True)
    monkeypatch.setattr(devices, "_probe_command", lambda: [sys.executable, "-S", "-c", "import sys; sys.exit(3)"])
    assert devices.probe().devices == ["cpu"] and "exit code 3" in devices.probe().error
    monkeypatch.setattr(devices, "_probe_command",
                        lambda: [sys.executable, "-S", "-c", "import time; time.sleep(5)"])
    info = devices.probe(refresh=True, timeout=0.3)
    assert info.devices == ["cpu"] and "more than" in info.error


def test_no_probe_without_a_driver_or_with_gpus_hidden(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(devices, "_probe_command", lambda: pytest.fail("probed"))
    monkeypatch.setattr(devices, "_driver_visible", lambda: False)
    assert devices.probe().source == "no-driver" and devices.available_devices() == ["cpu"]
    monkeypatch.setattr(devices, "_driver_visible", lambda: True)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.probe(refresh=True).source == "hidden"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv(devices.PROBE_ENV, "0")
    assert devices.probe(refresh=True).source == "disabled"
    with pytest.raises(DeviceError, match=devices.PROBE_ENV):
        devices.resolve_device("cuda")


def test_torch_already_loaded_is_asked_directly(monkeypatch):
    fake = types.SimpleNamespace(__version__="9.9", cuda=types.SimpleNamespace(
        is_available=lambda: True, device_count=lambda: 1,
        get_device_name=lambda i: pytest.fail("would initialise CUDA in this process")))
    monkeypatch.setitem(sys.modules, "torch", fake)
    monkeypatch.setattr(devices, "_probe_command", lambda: pytest.fail("probed"))
    info = devices.probe()
    assert info.source == "torch" and info.devices == ["cpu", "cuda"]


def test_unknown_device_name():
    with pytest.raises(DeviceError, match="unknown device"):
        devices.resolve_device("tpu")


def test_default_dtype(monkeypatch):
    assert devices.default_dtype("cuda") == "float16" and devices.default_dtype("cuda:1") == "float16"
    monkeypatch.setenv("MMAD_CPU_BF16", "0")
    assert devices.default_dtype("cpu") == "float32"
    monkeypatch.setenv("MMAD_CPU_BF16", "1")
    assert devices.default_dtype("cpu") == "bfloat16"
    assert devices.resolve_dtype("auto", "cpu") == "bfloat16" and devices.resolve_dtype("", "cuda") == "float16"
    assert devices.resolve_dtype("float32", "cpu") == "float32"
    with pytest.raises(ValueError, match="CUDA only"):
        devices.resolve_dtype("float16", "cpu")
    with pytest.raises(ValueError, match="unknown precision"):
        devices.resolve_dtype("int4", "cpu")
    monkeypatch.delenv("MMAD_CPU_BF16")
    flags = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    assert devices.cpu_has_native_bf16() == ("amx_bf16" in flags or "avx512_bf16" in flags)


def test_importing_devices_does_not_import_torch():
    code = "import sys, core.devices; core.devices.DeviceInfo().devices; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
