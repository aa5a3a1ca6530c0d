#!/usr/bin/env bash
# Installs MMAD Inspector into ./.venv on a fresh Debian/Ubuntu machine.
#   bash packaging/install.sh          runtime only
#   bash packaging/install.sh --test   runtime + test tools (pytest, pytest-qt, pytest-xvfb)
# Debian packages (open3d needs libusb, Qt's xcb platform needs the xcb libs, tests need Xvfb)
# are installed when we have the rights; otherwise the script names what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRA=""
[ "${1:-}" = "--test" ] && EXTRA="[test]"
PY="${PYTHON:-python3}"

DEB_PKGS=(libusb-1.0-0 libgomp1 libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1
          libxcb-cursor0 libxcb-image0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxrender1
          libdbus-1-3 libfontconfig1 xvfb xauth desktop-file-utils)
if command -v dpkg >/dev/null 2>&1; then
  missing=()
  for p in "${DEB_PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "[install] apt-get install ${missing[*]}"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") >/dev/null \
        || echo "[install] WARNING: apt-get failed; missing Debian packages: ${missing[*]}"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      echo "[install] sudo apt-get install ${missing[*]}"
      (sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") >/dev/null \
        || echo "[install] WARNING: apt-get failed; missing Debian packages: ${missing[*]}"
    else
      echo "[install] WARNING: no rights to install Debian packages. Missing: ${missing[*]}"
      echo "[install]   ask an administrator for: apt-get install ${missing[*]}"
      echo "[install]   (open3d fails to import without libusb-1.0-0; the Qt window needs the libxcb-* packages; GUI tests need xvfb)"
    fi
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch/torchvision are pinned in pyproject.toml; pip takes them from the local wheel cache when present.
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".${EXTRA}"
.venv/bin/python -c "import torch, torchvision, open_clip, open3d, PySide6, pyvista, cv2, tifffile; print('[install] ok: torch', torch.__version__, '| open3d', open3d.__version__, '| PySide6', PySide6.__version__)"
