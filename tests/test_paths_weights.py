"""core.paths and core.weights: folders, offline-first resolution, messages, checksums, downloads.

Downloads run against a local HTTP server on 127.0.0.1 that stands in for the Hugging Face hub
(through ``HF_ENDPOINT``); nothing leaves the machine.
"""
from __future__ import annotations

import hashlib
import http.server
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core import paths, weights
from core.weights import checksum, fetch
from core.errors import Cancelled, ChecksumError, InputError, MissingWeightsError

PAYLOAD = bytes(range(256)) * 64          # 16 KiB, every byte value
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
REPO = "org/tiny-model"
HUB_FILE = "open_clip_model.safetensors"


def make_spec(**kw) -> weights.WeightSpec:
    base = dict(id="tiny-test", filename="tiny.safetensors", size=len(PAYLOAD), sha256=PAYLOAD_SHA,
                hf_repo=REPO, hf_filename=HUB_FILE, url="https://example.invalid/files/tiny-legacy.pt",
                env_var="MMAD_TEST_TINY_WEIGHTS", open_clip=("Tiny", "test"),
                description="Tiny test model", license="CC0")
    base.update(kw)
    return weights.WeightSpec(**base)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty home, cache and hub cache: nothing outside tmp_path is looked at."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.setenv("MMAD_CACHE", str(tmp_path / "cache"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HF_ENDPOINT",
                "HF_TOKEN", "MMAD_TEST_TINY_WEIGHTS", "MMAD_DATA", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    return h


def write(p: Path, data: bytes = PAYLOAD) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def hub_snapshot(hub_root: Path, commit: str = "abc123", ref: bool = True) -> Path:
    repo = hub_root / ("models--" + REPO.replace("/", "--"))
    if ref:
        write(repo / "refs" / "main", commit.encode())
    return write(repo / "snapshots" / commit / HUB_FILE)


# ================================================================== paths
def test_cache_dir_env_default_and_created_on_demand(home, tmp_path, monkeypatch):
    target = tmp_path / "cache"
    assert not target.exists()
    assert paths.cache_dir() == target and target.is_dir()
    assert paths.weights_dir() == target / "weights" and (target / "weights").is_dir()
    assert paths.fits_dir() == target / "fits"
    assert paths.reviews_dir() == target / "reviews"
    assert paths.demo_dir(3) == target / "demo-v3"
    monkeypatch.delenv("MMAD_CACHE")
    assert paths.cache_dir(create=False) == home / ".cache" / "mmad-inspector"
    assert not (home / ".cache").exists()  # create=False creates nothing


def test_data_dir(home, tmp_path, monkeypatch):
    if sys.platform.startswith("linux"):
        assert paths.data_dir(create=False) == home / ".local" / "share" / "mmad-inspector"
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert paths.data_dir(create=False) == tmp_path / "xdg" / "mmad-inspector"
    monkeypatch.setenv("MMAD_DATA", str(tmp_path / "mine"))
    assert paths.data_dir() == tmp_path / "mine" and (tmp_path / "mine").is_dir()


def test_unwritable_cache_is_a_clear_error(home, tmp_path, monkeypatch):
    blocker = write(tmp_path / "afile", b"x")
    monkeypatch.setenv("MMAD_CACHE", str(blocker / "sub"))
    with pytest.raises(InputError) as ei:
        paths.cache_dir()
    assert "MMAD_CACHE" in str(ei.value) and str(blocker / "sub") in str(ei.value)


# ================================================================== resolution order
def test_resolution_order(home, tmp_path, monkeypatch):
    spec = make_spec()
    hub_root = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    explicit = write(tmp_path / "given.safetensors")
    env_file = write(tmp_path / "env.safetensors")
    monkeypatch.setenv(spec.env_var, str(env_file))
    ours = write(paths.weights_dir() / spec.filename)
    hub = hub_snapshot(hub_root)
    legacy = write(home / ".cache" / "clip" / "tiny-legacy.pt")

    assert weights.resolve(spec, explicit=explicit) == explicit
    assert weights.resolve(spec) == env_file
    monkeypatch.delenv(spec.env_var)
    assert weights.resolve(spec) == ours
    ours.unlink()
    assert weights.resolve(spec) == hub
    hub.unlink()
    assert weights.resolve(spec) == legacy
    legacy.unlink()
    with pytest.raises(MissingWeightsError):
        weights.resolve(spec)


def test_hub_cache_prefers_the_ref_snapshot_and_reads_hf_hub_cache(home, tmp_path, monkeypatch):
    spec = make_spec()
    root = tmp_path / "hubcache"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    old = hub_snapshot(root, "old111", ref=False)
    time.sleep(0.01)
    newer = hub_snapshot(root, "new222", ref=False)
    os.utime(old.parent, (time.time() - 100, time.time() - 100))
    assert weights.resolve(spec) == newer          # no ref: newest snapshot
    write(root / ("models--" + REPO.replace("/", "--")) / "refs" / "main", b"old111")
    assert weights.resolve(spec) == old            # the snapshot refs/main points at


def test_explicit_folder_and_missing_explicit_file(home, tmp_path):
    spec = make_spec()
    folder = tmp_path / "folder"
    given = write(folder / spec.filename)
    assert weights.resolve(spec, explicit=folder) == given
    write(paths.weights_dir() / spec.filename)      # present in our folder, but the user asked for another
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve(spec, explicit=missing)
    assert str(missing) in str(ei.value) and "--weights" in str(ei.value)
    assert ei.value.tried[0][0] == missing


def test_env_var_pointing_nowhere_is_reported(home, tmp_path, monkeypatch):
    spec = make_spec()
    monkeypatch.setenv(spec.env_var, str(tmp_path / "gone.bin"))
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve(spec)
    assert "gone.bin" in str(ei.value) and f"${spec.env_var}" in str(ei.value)


def test_missing_message_names_everything(home):
    spec = make_spec(size=598_600_000)
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve(spec)
    e = ei.value
    msg = str(e)
    target = paths.weights_dir(create=False) / spec.filename
    for needle in ("Tiny test model", spec.id, "599 MB", str(target), f"set {spec.env_var}=/path/to/file",
                   "pass --weights FILE", "Detector panel > Weights...", "network access",
                   f"https://huggingface.co/{REPO}/resolve/main/{HUB_FILE}", PAYLOAD_SHA, "downloads are off"):
        assert needle in msg, needle
    assert e.spec == spec and any(p == target for p, _ in e.tried)
    back = pickle.loads(pickle.dumps(e))            # crosses the detector-process boundary intact
    assert str(back) == msg and back.spec == spec and back.tried == e.tried


def test_status_never_hashes_or_downloads(home, monkeypatch):
    spec = make_spec()
    monkeypatch.setattr(checksum, "sha256_of", lambda *a, **k: pytest.fail("status hashed a file"))
    monkeypatch.setattr(fetch, "download", lambda *a, **k: pytest.fail("status downloaded"))
    assert weights.status(spec) == weights.MISSING
    write(paths.weights_dir() / (spec.filename + ".part"), PAYLOAD[:100])
    assert weights.status(spec) == weights.PARTIAL
    write(paths.weights_dir() / spec.filename)
    assert weights.status(spec) == weights.PRESENT
    assert weights.status(spec, explicit="random") == weights.PRESENT


def test_status_reports_a_remembered_bad_checksum(home):
    spec = make_spec()
    write(paths.weights_dir() / spec.filename, b"not the weights")
    assert weights.status(spec) == weights.PRESENT      # not hashed yet: status does not know
    with pytest.raises(ChecksumError):
        weights.resolve(spec)
    assert weights.status(spec) == weights.CORRUPT


def test_legacy_open_clip_file_is_checked_against_its_url_digest(home):
    """~/.cache/clip holds the URL's file (not the hub file): its SHA-256 prefix comes from the URL."""
    legacy = write(home / ".cache" / "clip" / "tiny-legacy.pt", b"legacy checkpoint bytes")
    prefix = hashlib.sha256(b"legacy checkpoint bytes").hexdigest()[:8]
    good = make_spec(url=f"https://github.com/mlfoundations/open_clip/releases/download/v0/tiny-legacy-{prefix}.pt")
    write(legacy.parent / f"tiny-legacy-{prefix}.pt", b"legacy checkpoint bytes")
    assert weights.resolve(good) == legacy.parent / f"tiny-legacy-{prefix}.pt"   # hub sha256 not applied
    bad = make_spec(url="https://github.com/mlfoundations/open_clip/releases/download/v0/tiny-legacy-deadbeef.pt")
    write(legacy.parent / "tiny-legacy-deadbeef.pt", b"legacy checkpoint bytes")
    with pytest.raises(ChecksumError):
        weights.resolve(bad)


# ================================================================== checksums
def test_checksum_mismatch_is_a_clear_error(home, tmp_path):
    spec = make_spec()
    bad = write(tmp_path / "bad.safetensors", PAYLOAD[:-1] + b"\0")
    with pytest.raises(ChecksumError) as ei:
        weights.resolve(spec, explicit=bad)
    msg = str(ei.value)
    assert str(bad) in msg and PAYLOAD_SHA in msg and "SHA-256" in msg
    assert isinstance(ei.value, InputError) and ei.value.path == bad
    assert weights.resolve(spec, explicit=bad, verify=False) == bad   # one's own checkpoint, on purpose


def test_verified_hash_is_remembered_by_size_and_mtime(home, tmp_path, monkeypatch):
    f = write(tmp_path / "w.safetensors")
    calls = []
    real = checksum.sha256_of
    monkeypatch.setattr(checksum, "sha256_of", lambda p, c=None: calls.append(p) or real(p, c))
    weights.verify_sha256(f, PAYLOAD_SHA)
    weights.verify_sha256(f, PAYLOAD_SHA)
    assert len(calls) == 1
    os.utime(f, (time.time() + 10, time.time() + 10))     # the file changed: hash again
    weights.verify_sha256(f, PAYLOAD_SHA)
    assert len(calls) == 2
    weights.verify_sha256(f, None)                        # unknown checksum: nothing to check
    assert len(calls) == 2


# ================================================================== a local hub
class Hub:
    """A tiny HTTP server that serves PAYLOAD at /<repo>/resolve/main/<file> with Range support."""

    def __init__(self):
        self.mode = "ok"           # ok | drop-once | 404 | norange | corrupt
        self.requests: list[dict] = []
        self.dropped = False
        self.redirect = False
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                hub.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                     "auth": self.headers.get("Authorization")})
                if hub.redirect and self.path == f"/{REPO}/resolve/main/{HUB_FILE}":
                    self.send_response(302)                       # as the hub sends files to its CDN
                    self.send_header("Location", "/cdn/blob")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                wanted = "/cdn/blob" if hub.redirect else f"/{REPO}/resolve/main/{HUB_FILE}"
                if hub.mode == "404" or self.path != wanted:
                    self.send_error(404, "Entry not found")
                    return
                data = PAYLOAD if hub.mode != "corrupt" else PAYLOAD[::-1]
                rng = self.headers.get("Range")
                start = 0
                if rng and hub.mode != "norange":
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if hub.mode == "drop-once" and not hub.dropped:
                    hub.dropped = True
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(home, monkeypatch):
    h = Hub()
    monkeypatch.setenv("HF_ENDPOINT", h.url)
    yield h
    h.close()


def files_in_weights() -> set[str]:
    d = paths.weights_dir(create=False)
    return {p.name for p in d.iterdir() if not p.name.startswith(".")} if d.is_dir() else set()


def test_download_with_progress(hub, monkeypatch):
    monkeypatch.setattr(fetch, "CHUNK", 1024)
    spec = make_spec()
    seen = []
    path = weights.resolve(spec, allow_download=True, progress=lambda f, m: seen.append((f, m)))
    assert path == paths.weights_dir() / spec.filename and path.read_bytes() == PAYLOAD
    fracs = [f for f, _ in seen]
    assert fracs[-1] == 1.0 and fracs == sorted(fracs) and len(fracs) >= 10
    assert all(0.0 <= f <= 1.0 for f in fracs) and "Tiny test model" in seen[-1][1]
    assert hub.requests == [{"path": f"/{REPO}/resolve/main/{HUB_FILE}", "range": None, "auth": None}]
    assert spec.filename + ".part" not in files_in_weights()
    assert weights.status(spec) == weights.PRESENT
    assert weights.resolve(spec, allow_download=True) == path and len(hub.requests) == 1  # offline next time


def test_no_network_use_unless_allowed(hub):
    with pytest.raises(MissingWeightsError):
        weights.resolve(make_spec())
    assert hub.requests == []


def test_interrupted_download_resumes_with_range(hub, monkeypatch):
    monkeypatch.setattr(fetch, "CHUNK", 1024)
    spec = make_spec()
    hub.mode = "drop-once"
    with pytest.raises(MissingWeightsError) as ei:
        weights.download(spec, retries=0)
    part = paths.weights_dir() / (spec.filename + ".part")
    half = len(PAYLOAD) // 2
    assert "resume" in str(ei.value) and part.stat().st_size == half
    assert not (paths.weights_dir() / spec.filename).exists()
    assert weights.status(spec) == weights.PARTIAL
    path = weights.resolve(spec, allow_download=True)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert hub.requests[-1]["range"] == f"bytes={half}-"


def test_resume_through_a_redirect_without_forwarding_the_token(hub, monkeypatch):
    monkeypatch.setattr(fetch, "CHUNK", 1024)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    hub.redirect, hub.mode = True, "drop-once"
    with pytest.raises(MissingWeightsError):
        weights.download(make_spec(), retries=0)
    path = weights.resolve(make_spec(), allow_download=True)
    assert path.read_bytes() == PAYLOAD
    first, cdn = hub.requests[-2:]
    assert first["auth"] == "Bearer hf_secret" and cdn["path"] == "/cdn/blob" and cdn["auth"] is None
    assert cdn["range"] == f"bytes={len(PAYLOAD) // 2}-"


def test_interrupted_download_retries_by_itself(hub):
    hub.mode = "drop-once"
    path = weights.resolve(make_spec(), allow_download=True)
    assert path.read_bytes() == PAYLOAD and len(hub.requests) == 2 and hub.requests[1]["range"]


def test_server_ignoring_range_restarts_cleanly(hub):
    spec = make_spec()
    write(paths.weights_dir() / (spec.filename + ".part"), b"garbage!")
    hub.mode = "norange"
    assert weights.resolve(spec, allow_download=True).read_bytes() == PAYLOAD


def test_404_is_a_clean_failure(hub):
    hub.mode = "404"
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve(make_spec(), allow_download=True)
    assert "HTTP 404" in str(ei.value) and hub.url in str(ei.value)
    assert files_in_weights() == set()


def test_server_down_is_a_clean_failure(home, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                          # nothing listens there now
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(MissingWeightsError) as ei:
        weights.resolve(make_spec(), allow_download=True)
    assert f"127.0.0.1:{port}" in str(ei.value) and "failed" in str(ei.value)
    assert files_in_weights() == set()


def test_downloaded_file_with_wrong_checksum_is_deleted(hub):
    hub.mode = "corrupt"
    spec = make_spec()
    with pytest.raises(ChecksumError) as ei:
        weights.resolve(spec, allow_download=True)
    assert "deleted" in str(ei.value) and PAYLOAD_SHA in str(ei.value)
    assert files_in_weights() <= {weights.VERIFIED_FILE}


def test_download_without_checksum_is_accepted(hub):
    path = weights.resolve(make_spec(sha256=None), allow_download=True)
    assert path.read_bytes() == PAYLOAD


def test_cancel_stops_the_download_and_keeps_the_part(hub, monkeypatch):
    monkeypatch.setattr(fetch, "CHUNK", 1024)
    spec = make_spec()
    polls = []
    with pytest.raises(Cancelled):
        weights.resolve(spec, allow_download=True, cancel=lambda: polls.append(1) or len(polls) > 3)
    part = paths.weights_dir() / (spec.filename + ".part")
    assert 0 < part.stat().st_size < len(PAYLOAD)
    assert not (paths.weights_dir() / spec.filename).exists()
    assert weights.resolve(spec, allow_download=True).read_bytes() == PAYLOAD   # and resumes later


def test_concurrent_downloads_fetch_once(hub, monkeypatch):
    monkeypatch.setattr(fetch, "CHUNK", 1024)
    spec = make_spec()
    results, errors = [], []

    def run():
        try:
            results.append(weights.resolve(spec, allow_download=True))
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors and len(results) == 3 and results[0].read_bytes() == PAYLOAD
    assert len(hub.requests) == 1


def test_plain_url_download_when_no_hub_file(hub):
    spec = make_spec(hf_repo=None, hf_filename=None, url=f"{hub.url}/{REPO}/resolve/main/{HUB_FILE}")
    assert weights.resolve(spec, allow_download=True).read_bytes() == PAYLOAD


# ================================================================== catalogue, headless
def test_catalog_specs_are_complete():
    for s in weights.CATALOG.values():
        assert s.size > 1e8 and s.env_var and s.open_clip and s.hf_repo and s.hf_filename.endswith(".safetensors")
        assert weights.get_spec(":".join(s.open_clip)) is s and weights.get_spec(s.id) is s
    with pytest.raises(KeyError):
        weights.get_spec("no-such-weights")


def test_catalog_matches_open_clip():
    """The hub repositories are the ones open_clip's pretrained table names (read as text: importing
    open_clip would import torch)."""
    import importlib.util
    found = importlib.util.find_spec("open_clip")
    if found is None or not found.submodule_search_locations:
        pytest.skip("open_clip is not installed")
    table = (Path(list(found.submodule_search_locations)[0]) / "pretrained.py").read_text(encoding="utf-8")
    for s in weights.CATALOG.values():
        assert f'hf_hub="{s.hf_repo}/"' in table or f"hf_hub='{s.hf_repo}/'" in table, s.id


def test_modules_stay_headless_and_torch_free():
    code = ("import sys, core.paths, core.weights, core.devices; "
            "core.weights.status('clip-vit-b-16-openai'); "
            "bad = [m for m in ('torch', 'open_clip', 'PySide6', 'pyvista', 'vtk') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                        cwd=Path(__file__).resolve().parents[1])
    assert cp.returncode == 0, cp.stdout + cp.stderr
