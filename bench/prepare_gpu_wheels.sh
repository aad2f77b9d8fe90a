#!/usr/bin/env bash
# Download, where a package registry is reachable, the wheels that bench/gpu_check.sh installs on
# a GPU machine that has none (python 3.12, x86-64 Linux; torch, lightning, torchmetrics, rich,
# numpy, pillow, scipy, matplotlib, tensorboard, huggingface-hub >= 1.32, safetensors >= 0.8,
# pyyaml, zipp and typing-extensions are already there).
#
#   bash bench/prepare_gpu_wheels.sh [dest, default .whl]      then carry .whl (git-ignored)
#
# What lit_rpe needs beyond that image, with the needs of each (their Requires-Dist):
#   omegaconf 2.4 (vendors its antlr4 runtime; pyyaml), jsonargparse[signatures] (pyyaml;
#   docstring-parser, typeshed-client -> typing-extensions), braceexpand, webdataset
#   (braceexpand, numpy, pyyaml), diffusers (importlib-metadata -> zipp, lazy-importer;
#   filelock, huggingface-hub, numpy, regex, requests, safetensors, pillow).
# The versions are those of the tested CPU environment. pip matches the platform tags exactly:
# all of these are pure-Python (py3-none-any) wheels, so any tag list finds them.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=${1:-$REPO/.whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
"$PY" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DEST" \
    omegaconf==2.4.0 jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0 \
    braceexpand==0.1.7 webdataset==1.0.2 diffusers==0.42.1 importlib-metadata==10.2.0 \
    lazy-importer==0.1.0
# Two versions of one package make the offline install fail: keep the ones just named.
ls "$DEST"/*.whl | sed 's#.*/##; s/-[0-9].*//' | sort | uniq -d | while read -r dup; do
    echo "more than one wheel of $dup in $DEST: remove the old one" >&2
    exit 1
done
du -sh "$DEST"
ls -1 "$DEST"
