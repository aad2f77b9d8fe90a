#!/usr/bin/env bash
# Download, where a package registry is reachable, the wheels that bench/gpu_check.sh installs on
# a GPU machine that has no registry (Python 3.12, x86-64 Linux).
#
#   bash bench/prepare_gpu_wheels.sh [dest, default .whl]      then carry .whl (git-ignored)
#
# The list is bench/gpu/wheels.py's CARRIED_WHEELS: what lit_rpe and the check import beyond the
# device image's packages (DEVICE_PACKAGES there), with their own needs; all pure-Python wheels.
# A test installs them offline into an empty folder beside a copy of the image's packages and
# imports every module the check imports (tests/bench/gpu/test_wheels.py).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$REPO/.whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
mapfile -t WANTED < <(cd "$REPO" && "$PY" -m bench.gpu.wheels requirements)
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DEST" "${WANTED[@]}"
# Two versions of one package make the offline install fail: keep the ones just named.
dups=$(ls "$DEST"/*.whl | sed 's#.*/##; s/-[0-9].*//' | sort | uniq -d)
if [[ -n $dups ]]; then
    echo "more than one wheel of $dups in $DEST: remove the old one" >&2
    exit 1
fi
du -sh "$DEST"
ls -1 "$DEST"
