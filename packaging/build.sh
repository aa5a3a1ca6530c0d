#!/usr/bin/env bash
# Builds the one-folder app dist/mmad-inspector/ (run from anywhere; needs pyinstaller in the Python used:
#   pip install -e ".[package]"  or  pip install pyinstaller).
#   bash packaging/build.sh             CPU build (leaves out the CUDA libraries torch loads only on GPU use)
#   MMAD_PKG_CUDA=1 bash packaging/build.sh   GPU build (every CUDA library kept, ~1.4 GB more)
# PYTHON selects the interpreter (default: ./.venv/bin/python when present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --distpath dist --workpath build packaging/mmad-inspector.spec
echo "[build] built in $(( $(date +%s) - start )) s: dist/mmad-inspector/mmad-inspector"
du -sh dist/mmad-inspector | sed 's/^/[build] size: /'
