#!/usr/bin/env bash
# Creates (once) the Python venv of the dataset interop test: pyarrow, pandas and LeRobot
# 0.4.4 (reads/writes LeRobot v3.0; converts v2.1 → v3.0), plus LeRobot 0.3.3 (the v2.1 reader
# and writer) in an overlay directory used through PYTHONPATH, since the two LeRobot versions
# cannot share one environment (datasets 3.x vs 4.x).
#
# Venv: ${BICAMERAL_PY_VENV:-$HOME/.cache/bicameral/py-venv}. Everything comes from PyPI;
# versions are pinned by constraints.txt. A stamp file makes reruns instant; a lock serializes
# concurrent runs. First run: ~2-4 min, ~6.5 GB (torch from PyPI pulls the CUDA libraries;
# nothing is downloaded at import or load time). Prints the venv path on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
VENV="${BICAMERAL_PY_VENV:-$HOME/.cache/bicameral/py-venv}"
PYTHON="${BICAMERAL_PYTHON:-python3}"
MAIN_REQ=(lerobot==0.4.4 torch==2.7.1 torchvision==0.22.1 torchcodec==0.5 pyarrow==26.0.1 pandas==3.1.1)
OVERLAY_REQ=(lerobot==0.3.3 datasets==3.6.0 dill==0.3.8 multiprocess==0.70.16 fsspec==2025.3.0)
want="$(cat "$here/constraints.txt") ${MAIN_REQ[*]} | ${OVERLAY_REQ[*]}"
stamp="$VENV/.bicameral-interop-stamp"

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$VENV"
  exit 0
fi
start=$(date +%s)
echo "setting up $VENV (first run takes a few minutes)" >&2
"$PYTHON" -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check -c "$here/constraints.txt" "${MAIN_REQ[@]}" >&2
rm -rf "$VENV/overlay-lerobot-v21"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  --target "$VENV/overlay-lerobot-v21" "${OVERLAY_REQ[@]}" >&2
printf '%s' "$want" > "$stamp"
echo "venv ready in $(( $(date +%s) - start )) s, $(du -sh "$VENV" | cut -f1)" >&2
echo "$VENV"
