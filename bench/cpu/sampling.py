"""Sampling cost per step of every inference rule, relative to ``extrapolate``, at 2x and 4x.

    python -m bench.cpu.sampling [--model DiT-Ti/2] [--train-grid 16] [--scales 2 4]

One sampling step is one velocity evaluation plus the Euler update, through the sampler's own
path: ``guided_velocity`` around the DiT with the rule and the rule's positions (computed once,
as ``DiffusionModule.sample`` does), called with the step's ``t``. Every timed call uses a new
``t`` that no call used before, so the time-dependent rules (``dype_*``) miss the
``rule_frequencies`` cache and recompute their frequencies and tables at every step, as they do
in a real 50-step run.

The rope model is trained with rpe2d positions (``max_len`` 4x the training grid), so every rule,
``rpe2d_even`` and ``rpe2d_random`` included, applies to it at 2x and 4x; the sincos model runs
the rules that scale frequencies. All rules of one (encoder, scale) group are timed round-robin
and the medians compared. A second table isolates what a rule adds to a step: the positional
encoding alone (frequencies, positions, tables) with a fresh ``t`` per call, against the step.
"""

from __future__ import annotations

import argparse

import torch

from bench.common.machine import add_precision_option, machine_line, resolve_bench_precision
from bench.common.tables import markdown_table
from bench.common.timing import (
    CLOCKS,
    add_timing_options,
    interleaved_medians,
    median,
    pm,
    set_threads,
)
from lit_rpe.models import DiT
from lit_rpe.posenc import INFERENCE_RULES, InferenceRule, encode_positions, rule_frequencies
from lit_rpe.sampling.guidance import guided_velocity

SINCOS_RULES = [r for r in INFERENCE_RULES if not InferenceRule(r).positions.startswith("rpe2d")]


class FreshTimes:
    """A stream of sampling times in (0, 1), none repeated (golden-ratio sequence)."""

    def __init__(self, start: float = 0.0):
        self.value = start

    def __call__(self) -> float:
        self.value = (self.value + 0.6180339887498949) % 1.0
        return 0.02 + 0.96 * self.value


def build_model(args, encoder: str) -> DiT:
    torch.manual_seed(0)
    patch = int(args.model.rsplit("/", 1)[1])
    return DiT.from_name(
        args.model,
        input_size=args.train_grid * patch,
        in_channels=3,
        num_classes=1000,
        encoder=encoder,
        train_positions="rpe2d" if encoder == "rope" else "grid",
    ).eval()


def sampling_step(net: DiT, rule: InferenceRule, grid: int, args, times: FreshTimes):
    """A closure running one Euler step of the sampler at ``grid x grid`` tokens."""
    batch, patch = args.batch, net.patch_size
    seeds = list(range(batch))
    pos_h, pos_w = net.rule_positions(rule, batch, (grid, grid), seeds=seeds)
    labels = torch.arange(batch) % net.num_classes
    velocity = guided_velocity(
        net, labels, num_classes=net.num_classes, rule=rule, pos_h=pos_h, pos_w=pos_w
    )
    x = torch.randn(batch, net.in_channels, grid * patch, grid * patch)

    @torch.no_grad()
    def step() -> None:
        t = times()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            v = velocity(x, t)
        x.add_(v, alpha=-1e-3)  # the Euler update (a tiny step keeps x in range)

    return step


def encoding_only(net: DiT, rule: InferenceRule, grid: int, args, times: FreshTimes):
    """A closure running only what the rule adds to a forward: frequencies and tables."""
    pos_h, pos_w = net.rule_positions(rule, args.batch, (grid, grid), seeds=list(range(args.batch)))
    dtype = torch.bfloat16 if args.bf16 and net.encoder == "rope" else torch.float32

    def encode() -> None:
        t = times()
        freqs = rule_frequencies(
            rule,
            dim=net.axis_dim,
            theta=net.theta,
            train_grid=net.train_grid,
            test_grid=(grid, grid),
            t=t if rule.time_dependent else None,
        )
        encode_positions(net.encoder, pos_h, pos_w, freqs, dtype=dtype)

    return encode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="DiT-Ti/2")
    parser.add_argument("--train-grid", type=int, default=16, help="training tokens per axis")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--encoders", nargs="+", default=["rope", "sincos"])
    parser.add_argument("--batch", type=int, default=1)
    add_precision_option(parser)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    add_timing_options(parser)
    args = parser.parse_args()
    set_threads(args)
    args.bf16 = resolve_bench_precision(args).name == "bf16"

    print("## Sampling: cost of one step per inference rule\n")
    print(machine_line())
    print(
        f"{args.model}, pixel space, trained on a {args.train_grid}x{args.train_grid} token grid "
        f"({args.train_grid**2} tokens; rope model with rpe2d positions, max_len "
        f"{4 * args.train_grid}), batch {args.batch}, {'bf16' if args.bf16 else 'fp32'}, no "
        f"guidance (one pass per step), a fresh t every step, warm-up {args.warmup}, "
        f"{args.repeats} interleaved repeats (median; +- is half the IQR), {args.clock} clock"
    )
    rows = []
    for encoder in args.encoders:
        net = build_model(args, encoder)
        names = list(INFERENCE_RULES) if encoder == "rope" else SINCOS_RULES
        rules = {name: InferenceRule(name) for name in names}
        for scale in args.scales:
            grid = scale * args.train_grid
            times = FreshTimes()
            steps = {n: sampling_step(net, r, grid, args, times) for n, r in rules.items()}
            measured = interleaved_medians(
                steps, warmup=args.warmup, repeats=args.repeats, clock=CLOCKS[args.clock]
            )
            encodes = {n: encoding_only(net, r, grid, args, times) for n, r in rules.items()}
            inner = max(1, round(2000 / grid))
            enc_times = interleaved_medians(
                encodes, warmup=2, repeats=7, inner=inner, clock=CLOCKS[args.clock]
            )
            base = median(measured["extrapolate"])
            for name in names:
                step_s, enc_s = median(measured[name]), median(enc_times[name])
                rows.append(
                    [
                        encoder,
                        f"{scale}x ({grid**2})",
                        name,
                        f"{1000 * step_s:.1f}{pm(measured[name])}",
                        f"{step_s / base:.3f}",
                        f"{1e6 * enc_s:.0f}",
                        f"{100 * enc_s / step_s:.2f}%",
                        f"{100 * (enc_s - median(enc_times['extrapolate'])) / base:+.2f}%",
                    ]
                )
            print(f"  done: {encoder} at {scale}x", flush=True)
        del net
    header = [
        "encoder",
        "scale (tokens)",
        "rule",
        "ms / step",
        "step / extrapolate",
        "encoding us / step",
        "encoding / step",
        "encoding cost vs extrapolate",
    ]
    print()
    print(markdown_table(header, rows))
    print(
        "\n'encoding' is the rule's part of a step alone (frequencies with a fresh t, positions "
        "already built, the cos/sin or additive tables); the last column is what it adds to a "
        "step beyond extrapolate's encoding, in % of extrapolate's step time."
    )


if __name__ == "__main__":
    main()
