#!/usr/bin/env bash
# A small venv with the zenoh Python client for the protocol interop test (PyPI: eclipse-zenoh,
# msgpack, numpy). Prints the venv's python path. Idempotent.
set -euo pipefail
VENV="${BICAMERAL_ZENOH_VENV:-$HOME/.cache/bicameral/py-zenoh-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import zenoh, msgpack, numpy" 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q "eclipse-zenoh==1.10.2" "msgpack==1.1.1" "numpy==2.2.6" >&2
fi
echo "$VENV/bin/python"
