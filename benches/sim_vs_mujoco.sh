#!/usr/bin/env bash
# Compares our simulator with MuJoCo on the same joint trajectory of the default robot:
# speed (physics steps per second, one world, one thread) and divergence of the link origins.
#
#   benches/sim_vs_mujoco.sh [extra options for sim_vs_mujoco.py, e.g. --min-seconds 10]
#
# 1. `bicameral bench sim --json --trajectory-out FILE` (BICAMERAL_BIN if set, else
#    `cargo run --release -q -p bicameral-cli --`) runs our simulator and records the trajectory;
# 2. benches/sim_vs_mujoco.py replays it in MuJoCo (Python venv at ${BICAMERAL_VENV:-.venv-bench}
#    in the repository root, created on first use; `mujoco` and `numpy` come from PyPI).
# Prints one JSON object on stdout; logs go to stderr.
#
# Environment:
#   BICAMERAL_BIN         prebuilt bicameral binary (skips cargo)
#   BICAMERAL_VENV        venv directory (default .venv-bench, relative to the repository root)
#   BICAMERAL_BENCH_ARGS  extra arguments for `bicameral bench sim` (word-split)
#   BICAMERAL_BENCH_KEEP  directory in which to keep trajectory.json and ours.json
#   PYTHON                interpreter used to create the venv (default python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

# Resolve user-given paths against the caller's directory before moving to the repository root.
bin="${BICAMERAL_BIN:-}"
if [[ -n "$bin" && "$bin" == */* && "$bin" != /* ]]; then
    bin="$PWD/$bin"
fi
keep="${BICAMERAL_BENCH_KEEP:-}"
if [[ -n "$keep" && "$keep" != /* ]]; then
    keep="$PWD/$keep"
fi
cd "$root"

venv="${BICAMERAL_VENV:-.venv-bench}"
py="$venv/bin/python"
if [[ ! -x "$py" ]]; then
    echo "sim_vs_mujoco: creating venv $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv" >&2
fi
if ! "$py" -c '
import sys, mujoco, numpy
v = tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in mujoco.__version__.split(".")[:2])
sys.exit(0 if v >= (3, 2) else 1)' 2>/dev/null; then
    echo "sim_vs_mujoco: installing mujoco and numpy into $venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check --upgrade "mujoco>=3.2" numpy >&2
fi

if [[ -n "$keep" ]]; then
    mkdir -p "$keep"
    work="$keep"
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/sim_vs_mujoco.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
fi

if [[ -n "$bin" ]]; then
    ours=("$bin")
else
    ours=(cargo run --release -q -p bicameral-cli --)
fi
# shellcheck disable=SC2206 # word splitting of BICAMERAL_BENCH_ARGS is intended
extra=(${BICAMERAL_BENCH_ARGS:-})
echo "sim_vs_mujoco: running ${ours[*]} bench sim" >&2
"${ours[@]}" bench sim --json --trajectory-out "$work/trajectory.json" ${extra[@]+"${extra[@]}"} \
    >"$work/ours.json"

"$py" "$here/sim_vs_mujoco.py" --trajectory "$work/trajectory.json" --ours-json "$work/ours.json" "$@"
