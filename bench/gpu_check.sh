#!/usr/bin/env bash
# GPU validation of the cluster path (issue 19) in one command: at most 8 minutes on one H200.
#
#   bash bench/gpu_check.sh <out_dir> [--smoke]          (or: make gpu-check OUT=<out_dir> [SMOKE=1])
#
# Writes three files to <out_dir>: gpu_check.md (every table and the targets), gpu_check.json
# (every figure, each stage's status and error) and gpu_check_logs.tar.gz (stage logs, stage
# records, the Lightning run's metrics). Work files (latent shards, an 11 GB checkpoint, sample
# grids) go to $GPU_CHECK_WORK (default: a new folder under /tmp), never to <out_dir>.
#
# Stages, each under its own time cap (seconds, GNU timeout); a stage that fails or hits its cap
# is recorded with its error and the next one runs:
#   environment           30  GPU model, memory, driver and CUDA versions, torch, packages
#   throughput            75  bench_gpu.py: DiT-XL/2 train + sample images/s and MFU at 256/512 px,
#                             sincos/rope/rpe2d, bf16, eager; SDPA kernel used + backend probe
#   throughput_compiled   95  the same with torch.compile of the blocks, as many configurations
#                             as fit (one is started only if the slowest so far would still fit)
#   lightning            160  lit-rpe fit on rpe2d_256 (DiT-XL/2, bf16-mixed, EMA, data module on
#                             synthetic latent shards) 50 steps, resume to 100, sample 512 px
#   memory                45  peak memory: training at 512/1024 px with/without activation
#                             checkpointing, a CFG sampling step and the VAE decode at 1024 px
#   eval_cell             55  one eval-grid cell: Heun-50 + CFG generation at 256/512 px, Inception
# Caps total 460 s; with the wheel install and the report the whole stays under 8 minutes.
#
# --smoke (or GPU_CHECK_SMOKE=1): every stage at toy scale on the CPU (DiT-N/2, 64/128 px, fp32,
# a few steps, a tiny random VAE) to test this script end to end; its figures mean nothing.
#
# Python packages the device lacks (omegaconf, jsonargparse + docstring-parser + typeshed-client,
# braceexpand, webdataset, diffusers + importlib-metadata + lazy-importer) travel as wheels in
# .whl/ (git-ignored), downloaded on a machine with a registry by bench/prepare_gpu_wheels.sh:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 -d .whl omegaconf==2.4.0 jsonargparse==4.53.0 \
#     docstring-parser==0.18.0 typeshed-client==2.15.0 braceexpand==0.1.7 webdataset==1.0.2 \
#     diffusers==0.42.1 importlib-metadata==10.2.0 lazy-importer==0.1.0
# This script installs them (pip --no-index --target $GPU_CHECK_SITE, default /tmp/site) when
# they are not importable; lit_rpe itself is used from this checkout through PYTHONPATH.
# Python: $PYTHON (default python3).
set -uo pipefail

usage() {
    echo "usage: bash bench/gpu_check.sh <out_dir> [--smoke]" >&2
    exit 2
}
[[ $# -ge 1 && $1 != -* ]] || usage
OUT=$1
shift
SMOKE=${GPU_CHECK_SMOKE:-0}
for arg in "$@"; do
    case $arg in
        --smoke) SMOKE=1 ;;
        *) usage ;;
    esac
done
COMMAND="bash bench/gpu_check.sh $OUT"
[[ $SMOKE == 1 ]] && COMMAND+=" --smoke"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
STAGES=$WORK/stages
mkdir -p "$OUT" "$STAGES" || exit 1
OUT=$(cd "$OUT" && pwd)
START=$(date +%s)
cd "$REPO" || exit 1

SITE=${GPU_CHECK_SITE:-/tmp/site} # the carried wheels go here, ahead of the image's packages
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

ORDER=0
run_stage() { # name cap_seconds command...: run under the cap, record exit code and time
    local name=$1 cap=$2
    shift 2
    ORDER=$((ORDER + 1))
    local log=$STAGES/$name.log t0 rc took
    t0=$(date +%s.%N)
    echo "== $name (cap ${cap} s)"
    timeout --signal=TERM --kill-after=10 "$cap" "$@" >"$log" 2>&1
    rc=$?
    took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    printf '{"stage": "%s", "order": %d, "rc": %d, "seconds": %.1f, "cap_s": %d, "log": "%s"}\n' \
        "$name" "$ORDER" "$rc" "$took" "$cap" "$log" >"$STAGES/$name.shell.json"
    echo "   exit $rc after ${took%.*} s"
    [[ $rc == 0 ]] || tail -n 5 "$log" | sed 's/^/   | /'
    return "$rc"
}

REPORTED=0
report() { # merge the stage records into <out_dir>; runs once, also when the script is cut short
    [[ $REPORTED == 1 ]] && return
    REPORTED=1
    "$PY" -m bench.gpu.check_results "$STAGES" "$OUT" --command "$COMMAND" \
        --mode "$([[ $SMOKE == 1 ]] && echo smoke || echo full)"
    local extra=()
    [[ -d $WORK/lightning ]] && extra=(-C "$WORK" --exclude '*.ckpt' --exclude '*.png'
        --exclude '*.tar' --exclude '*.safetensors' --exclude 'events.out*' lightning)
    tar -czf "$OUT/gpu_check_logs.tar.gz" -C "$WORK" stages "${extra[@]}" 2>/dev/null
    echo "gpu check: $(($(date +%s) - START)) s; results in $OUT"
    clean_work
}
trap report EXIT
trap 'exit 130' INT TERM # through the EXIT trap: the report is written

clean_work() { # the ~11 GB checkpoints never outlive the check; a folder it made goes entirely
    if [[ -z ${GPU_CHECK_WORK:-} ]]; then
        rm -rf "$WORK"
    else
        find "$WORK" -name '*.ckpt' -delete 2>/dev/null
        echo "work files (checkpoints removed) in $WORK"
    fi
}

# Python >= 3.11 and every import the stages need, installing the carried .whl/ where needed;
# without them no stage can run, and the report says why.
run_stage setup 180 "$PY" -m bench.gpu.wheels install "$REPO/.whl" "$SITE" || exit 1

VAE=$WORK/lightning/data/vae # written by the lightning stage, reused by memory and eval_cell
vae_option() { [[ -f $VAE/config.json ]] && echo "--vae=$VAE"; }
if [[ $SMOKE == 1 ]]; then
    DEV=(--device cpu --dtype fp32)
    # Generous caps: a shared CPU runs these toy stages at unpredictable speed.
    run_stage environment 120 "$PY" -m bench.gpu.check_env --json "$STAGES/environment.json"
    run_stage throughput 400 "$PY" -m bench.gpu.throughput --json "$STAGES/throughput.json" \
        --model DiT-N/2 --resolutions 64 128 --batch-sizes 4 2 --warmup 1 --iters 2 \
        --probe-sdpa "${DEV[@]}"
    run_stage throughput_compiled 400 "$PY" -m bench.gpu.throughput \
        --json "$STAGES/throughput_compiled.json" --compile --model DiT-N/2 --resolutions 64 \
        --batch-sizes 4 --encoders sincos --warmup 1 --iters 2 --budget-s 60 "${DEV[@]}"
    run_stage lightning 800 "$PY" -m bench.gpu.check_lightning --work "$WORK/lightning" \
        --json "$STAGES/lightning.json" --steps 6 --resume-at 3 --warmup 1 --batch-size 4 \
        --resolution 64 --sample-resolution 128 --num-images 4 --vae tiny --train-samples 64 \
        --val-samples 8 --budget-s 780 --sample-reserve-s 0 --model.net.name=DiT-N/2 \
        --sampling-steps 2 --trainer.accelerator=cpu --trainer.devices=1 \
        --trainer.precision=32-true --data.num_workers=0
    run_stage memory 400 "$PY" -m bench.gpu.check_memory --json "$STAGES/memory.json" \
        --model DiT-N/2 --train 64:4 128:2 --sample 128:2 --sample-train-px 64 --repeats 1 \
        $(vae_option) "${DEV[@]}"
    run_stage eval_cell 400 "$PY" -m bench.gpu.check_eval_cell --json "$STAGES/eval_cell.json" \
        --model DiT-N/2 --train-px 64 --resolutions 64 128 --batches 2 2 --steps 2 \
        --inception-images 4 --inception-batch 2 $(vae_option) --vae-size tiny "${DEV[@]}"
else
    echo "nvidia-smi:"
    nvidia-smi 2>&1 | head -n 15
    if ! run_stage environment 30 "$PY" -m bench.gpu.check_env \
        --json "$STAGES/environment.json" --require-cuda; then
        exit 1
    fi
    sed -n '1,12p' "$STAGES/environment.log"
    # Per-GPU batches of the experiments: 32 at 256 px (imagenet_256), 16 at 512 px (imagenet_512).
    run_stage throughput 75 "$PY" -m bench.gpu.throughput --json "$STAGES/throughput.json" \
        --resolutions 256 512 --batch-sizes 32 16 --encoders sincos rope rpe2d \
        --warmup 5 --iters 20 --probe-sdpa --budget-s 65
    run_stage throughput_compiled 95 "$PY" -m bench.gpu.throughput \
        --json "$STAGES/throughput_compiled.json" --compile --resolutions 256 512 \
        --batch-sizes 32 16 --encoders rpe2d rope sincos --warmup 3 --iters 20 --budget-s 85
    run_stage lightning 160 "$PY" -m bench.gpu.check_lightning --work "$WORK/lightning" \
        --json "$STAGES/lightning.json" --steps 100 --resume-at 50 --warmup 10 \
        --batch-size 32 --budget-s 150 --sample-reserve-s 35
    run_stage memory 45 "$PY" -m bench.gpu.check_memory --json "$STAGES/memory.json" \
        --train 512:32 1024:32 1024:8 --sample 1024:32 $(vae_option)
    run_stage eval_cell 55 "$PY" -m bench.gpu.check_eval_cell --json "$STAGES/eval_cell.json" \
        --resolutions 256 512 --batches 32 16 --steps 50 --cfg-scale 1.5 $(vae_option)
fi
exit 0 # stage failures are in the report, not in this exit code
