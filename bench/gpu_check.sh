#!/usr/bin/env bash
# GPU validation of the cluster path (issues 19, 29) in one command: about 6, at most 9 minutes
# on one H200.
#
#   bash bench/gpu_check.sh <out_dir> [--smoke] [--only stage,stage...]
#   (or: make gpu-check OUT=<out_dir> [SMOKE=1])
#
# Writes three files to <out_dir>, whatever fails or stops the script: gpu_check.md (every table
# and the targets), gpu_check.json (every figure, each stage's status and error) and
# gpu_check_logs.tar.gz (stage logs, stage records, the Lightning run's metrics). Work files
# (latent shards, an ~11 GB checkpoint, sample grids) go to $GPU_CHECK_WORK, default a new
# folder under $TMPDIR that the check deletes at the end (in a given folder, the checkpoints).
#
# Stages, each under its own time cap (seconds, GNU timeout); a stage that fails or hits its cap
# is recorded with its error and the next one runs. Expected: from the FLOP counts at ~300
# TFLOP/s (30% of an H200 SXM, eager) plus the fixed costs the CPU smoke run shows (process
# start, model build, checkpoint I/O); docs/benchmarks.md has the sums.
#   stage               cap  expected  what
#   setup                60   20       Python >= 3.11, every import (bench.gpu.wheels), the
#                                      carried .whl/ installed offline where needed
#   environment          30   10       GPU model and variant, memory, driver, CUDA, packages
#   throughput           75   55       bench.gpu.throughput: DiT-XL/2 train + sample images/s and
#                                      MFU at 256/512 px, sincos/rope/rpe2d, bf16, eager; the SDPA
#                                      kernel used + a backend probe
#   throughput_compiled  95   80       the same with net.compile, rpe2d first, then rope, sincos,
#                                      as many as fit (a configuration compiles for ~60 s)
#   lightning           160  120       lit-rpe fit on rpe2d_256 less its eval callback (DiT-XL/2,
#                                      bf16-mixed, EMA, data module on synthetic latent shards)
#                                      50 steps, resume to 100, sample 512 px: three processes,
#                                      each building DiT-XL/2 on the CPU; two ~11 GB checkpoint
#                                      writes (Lightning's in-memory buffer) and two reads
#   memory               45   30       peak memory: training at 512/1024 px with/without
#                                      activation checkpointing, a CFG sampling step and the VAE
#                                      decode at 1024 px
#   eval_cell            55   35       one eval-grid cell: Heun-50 + CFG generation at 256/512
#                                      px, Inception features
# Caps total 520 s; expected about 350 s, and the report a few seconds. --only runs the named
# stages (setup always): a rerun of what failed fits in what a lease has left.
#
# --smoke (or GPU_CHECK_SMOKE=1): every stage at toy scale on the CPU (DiT-N/2, 64/128 px, fp32,
# a few steps, a tiny random VAE) to test this script end to end; its figures mean nothing.
#
# Python packages the device image lacks travel as wheels in .whl/ (git-ignored), downloaded
# where a registry is reachable by bench/prepare_gpu_wheels.sh (the list: bench/gpu/wheels.py);
# they go to $GPU_CHECK_SITE (default /tmp/site). lit_rpe and bench are used from this checkout
# through PYTHONPATH. Python: $PYTHON (default python3).
set -uo pipefail

STAGE_NAMES="environment throughput throughput_compiled lightning memory eval_cell"
usage() {
    echo "usage: bash bench/gpu_check.sh <out_dir> [--smoke] [--only stage,stage...]" >&2
    echo "stages: $STAGE_NAMES" >&2
    exit 2
}
[[ $# -ge 1 && $1 != -* ]] || usage
OUT=$1
shift
SMOKE=${GPU_CHECK_SMOKE:-0}
ONLY=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --smoke) SMOKE=1 ;;
        --only)
            [[ $# -ge 2 ]] || usage
            ONLY=" ${2//,/ } "
            shift
            ;;
        *) usage ;;
    esac
    shift
done
for name in $ONLY; do
    [[ " $STAGE_NAMES " == *" $name "* ]] || { echo "unknown stage '$name'" >&2 && usage; }
done
COMMAND="bash bench/gpu_check.sh $OUT"
[[ $SMOKE == 1 ]] && COMMAND+=" --smoke"
[[ -n $ONLY ]] && COMMAND+=" --only $(echo $ONLY | tr ' ' ,)"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
WORK=${GPU_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
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
    # --only: the other stages are left out (setup always runs); the report lists those run
    [[ -z $ONLY || $name == setup || $ONLY == *" $name "* ]] || return 0
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
run_stage setup 60 "$PY" -m bench.gpu.wheels install "$REPO/.whl" "$SITE" || exit 1

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
    [[ -f $STAGES/environment.log ]] && sed -n '1,12p' "$STAGES/environment.log"
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
