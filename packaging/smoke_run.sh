#!/usr/bin/env bash
# Starts the built app under a fresh Xvfb with an empty HOME (a first start), reports the seconds to its
# first window, keeps it running ${HOLD:-40} s, takes a screenshot, then stops it.
#   bash packaging/smoke_run.sh [SCREENSHOT.png]     needs xvfb, xdotool, x11-apps (xwd) and imagemagick
set -euo pipefail
cd "$(dirname "$0")/.."
SHOT="${1:-/tmp/pkg_shot.png}"
APP=dist/mmad-inspector/mmad-inspector
[ -x "$APP" ] || { echo "$APP missing: run packaging/build.sh first" >&2; exit 1; }
DISP=":$(( 90 + RANDOM % 100 ))"
Xvfb "$DISP" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 &
XPID=$!
trap 'kill "${APID:-}" 2>/dev/null || true; kill "$XPID" 2>/dev/null || true' EXIT
sleep 1
HOME_DIR=$(mktemp -d)
t0=$(date +%s.%N)
DISPLAY="$DISP" HOME="$HOME_DIR" XDG_CONFIG_HOME="$HOME_DIR/.config" XDG_CACHE_HOME="$HOME_DIR/.cache" \
  XDG_DATA_HOME="$HOME_DIR/.local/share" "$APP" > /tmp/pkg_app.log 2>&1 &
APID=$!
first=""
for _ in $(seq 1 1200); do
  if DISPLAY="$DISP" xdotool search --onlyvisible --name "MMAD" >/dev/null 2>&1; then
    first=$(echo "$(date +%s.%N) - $t0" | bc); break
  fi
  kill -0 "$APID" 2>/dev/null || { echo "the app exited early; log:" >&2; tail -30 /tmp/pkg_app.log >&2; exit 1; }
  sleep 0.1
done
echo "[smoke] first window after ${first:-never} s"
sleep "${HOLD:-40}"
kill -0 "$APID" 2>/dev/null && echo "[smoke] still running after ${HOLD:-40} s" || { echo "[smoke] app died" >&2; exit 1; }
if grep -E "^usage: |Traceback|invalid choice" /tmp/pkg_app.log >&2; then
  echo "[smoke] errors in the app's log (/tmp/pkg_app.log)" >&2; exit 1
fi
DISPLAY="$DISP" xwd -root -silent | convert xwd:- "$SHOT"
echo "[smoke] screenshot: $SHOT"
