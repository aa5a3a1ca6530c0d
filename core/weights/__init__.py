"""Model weights: what a detector needs, where it is found, and (only when allowed) its download.

A detector declares the files it needs as :class:`WeightSpec` objects.  :func:`resolve` finds a
spec's file **offline first**, in this order:

1. an explicit file: a setting or ``--weights FILE`` (a folder holding the file also works);
2. the environment variable ``spec.env_var``;
3. our own folder, :func:`core.paths.weights_dir` (``<cache>/weights/<spec.filename>``);
4. the library's own cache, where open_clip / Hugging Face put the file when they downloaded it:
   the Hugging Face hub cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``, ``~/.cache/huggingface/hub``:
   ``models--org--name/snapshots/*/file``) and open_clip's legacy URL cache ``~/.cache/clip``;
5. a download, only with ``allow_download=True``: plain ``urllib`` streaming into
   ``<weights_dir>/<filename>.part`` (resumed with an HTTP ``Range`` request), progress reported,
   ``cancel()`` polled, the SHA-256 checked, then renamed into place atomically.  Hub files come
   from ``$HF_ENDPOINT`` (default ``https://huggingface.co``), so a mirror or a local test server
   can stand in for the hub.

When nothing is found, :class:`~core.errors.MissingWeightsError` says what is missing, how big it is,
where it looked and every way to provide it.  :func:`status` answers the same question without
downloading or hashing, so the CLI and the GUI can tell the user *before* a run.

The SHA-256 of a file is checked whenever the spec knows it; hashes already computed are remembered
in ``<weights_dir>/verified.json`` keyed by path, size and modification time, so a 600 MB file is
hashed once, not at every start.

This package only finds files: it never loads them (no pickle here).  Owners read ``.safetensors`` with
safetensors; a legacy ``.pt``/``.bin`` may only be read with ``torch.load(..., weights_only=True)``.
The special explicit value ``"random"`` (:data:`RANDOM`) means "no file, random weights"; callers test
it with :func:`is_random` before calling :func:`resolve`.
"""
from __future__ import annotations

from .checksum import VERIFIED_FILE, sha256_of, verify_sha256
from .fetch import download
from .locate import CORRUPT, MISSING, PARTIAL, PRESENT, find, hf_cache_dirs, resolve, status
from .spec import (CATALOG, HF_DEFAULT_ENDPOINT, RANDOM, WeightSpec, download_url, get_spec, is_random,
                   missing_message, part_path, spec_from_open_clip)

__all__ = ["WeightSpec", "resolve", "find", "status", "verify_sha256", "sha256_of", "download",
           "missing_message", "is_random", "hf_cache_dirs", "download_url", "part_path", "spec_from_open_clip",
           "CATALOG", "get_spec", "RANDOM", "HF_DEFAULT_ENDPOINT", "VERIFIED_FILE",
           "PRESENT", "PARTIAL", "MISSING", "CORRUPT"]
