#!/usr/bin/env bash
# Installs the built app (dist/mmad-inspector/, see build.sh) for the current user:
#   ~/.local/opt/mmad-inspector/            the one-folder app
#   ~/.local/bin/mmad-inspector              a link to its executable (Exec= of the desktop entry)
#   ~/.local/share/applications/mmad-inspector.desktop
#   ~/.local/share/icons/hicolor/{256x256,scalable}/apps/mmad-inspector.{png,svg}
# PREFIX overrides ~/.local (e.g. PREFIX=/usr/local as root).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${PREFIX:-$HOME/.local}"
[ -x dist/mmad-inspector/mmad-inspector ] || { echo "dist/mmad-inspector/mmad-inspector missing: run packaging/build.sh first" >&2; exit 1; }
mkdir -p "$PREFIX/opt" "$PREFIX/bin" "$PREFIX/share/applications" \
         "$PREFIX/share/icons/hicolor/256x256/apps" "$PREFIX/share/icons/hicolor/scalable/apps"
rm -rf "$PREFIX/opt/mmad-inspector"
cp -a dist/mmad-inspector "$PREFIX/opt/mmad-inspector"
ln -sf "$PREFIX/opt/mmad-inspector/mmad-inspector" "$PREFIX/bin/mmad-inspector"
install -m 644 packaging/mmad-inspector.desktop "$PREFIX/share/applications/mmad-inspector.desktop"
install -m 644 resources/icon.png "$PREFIX/share/icons/hicolor/256x256/apps/mmad-inspector.png"
install -m 644 resources/icon.svg "$PREFIX/share/icons/hicolor/scalable/apps/mmad-inspector.svg"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$PREFIX/share/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$PREFIX/share/icons/hicolor" || true
echo "installed: $PREFIX/bin/mmad-inspector (make sure $PREFIX/bin is on PATH)"
