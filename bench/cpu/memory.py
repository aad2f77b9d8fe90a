"""Peak memory of a training step and of a sampling step against the number of tokens.

    python -m bench.cpu.memory [--model DiT-Ti/2] [--tokens 256 1024 2304 4096]

Each configuration runs in a fresh process (with glibc's mmap threshold pinned at 64 KiB, so a
freed activation goes back to the OS and the resident set follows the live tensors). The child
builds the real ``DiffusionModule`` in pixel space, runs the step once to allocate everything
that persists (AdamW state, EMA), then resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``), runs the step again and reports ``VmHWM - VmRSS before``: the
memory one step adds on top of the model, its optimizer state and the inputs. Modes:

- ``train``: ``training_step`` + backward + AdamW + EMA, as in ``bench.cpu.train_step``;
- ``train+ckpt``: the same with activation checkpointing of every block;
- ``sample``: one velocity evaluation of the EMA model without autograd (a sampler step).

Attention goes through ``scaled_dot_product_attention``; the table names the kernel PyTorch
picks for the model's q, k, v. A kernel that materialised the attention matrix would need
``batch x heads x N^2`` floats per block (the last column): quadratic in N. A fused (flash)
kernel keeps the step linear in N, which the ratio to the linear extrapolation from the two
smallest sizes shows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import warnings

import torch

from bench.common.machine import machine_line, resolve_bench_precision
from bench.common.tables import markdown_table

MIB = 2**20


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def sdpa_backend(net, batch: int, tokens: int, dtype: torch.dtype, grad: bool) -> str:
    """The SDPA kernel PyTorch picks for q, k, v laid out as this model's attention has them."""
    from torch.nn.attention import SDPBackend

    block = net.blocks[0].attn
    qkv = torch.zeros(batch, tokens, 3, block.num_heads, block.head_dim, dtype=dtype)
    q, k, v = qkv.requires_grad_(grad).permute(2, 0, 3, 1, 4)
    return SDPBackend(torch._fused_sdp_choice(q, k, v)).name.lower()


def child(args) -> None:
    """Measure one configuration in this (fresh) process; print one JSON line."""
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    from lit_rpe.models.sizes import parse_model_name
    from lit_rpe.training.config import NetConfig
    from lit_rpe.training.module import DiffusionModule

    patch = parse_model_name(args.model)["patch_size"]
    side = math.isqrt(args.child_tokens)
    resolution = side * patch
    torch.manual_seed(0)
    module = DiffusionModule(
        net=NetConfig(
            name=args.model,
            encoder=args.encoder,
            checkpointing=args.child_mode == "train+ckpt",
        ),
        resolution=resolution,
        num_classes=1000,
    )
    bf16 = args.precision == "bf16"
    images = torch.rand(args.batch, 3, resolution, resolution) * 2 - 1
    batch = {"image": images, "label": torch.arange(args.batch)}
    if args.child_mode == "sample":
        net = module.ema
        t = torch.full((args.batch,), 0.5)

        def step() -> None:
            with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                net(images, t, batch["label"], rule=net.default_rule, rule_t=0.5)

    else:
        optimizer = module.configure_optimizers()["optimizer"]

        def step() -> None:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = module.training_step(batch, 0)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            module.update_ema()

    step()  # allocates the persistent state (AdamW moments, oneDNN primitives)
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")  # reset VmHWM to the current RSS
    step()
    peak = _status_kib("VmHWM")
    grad = args.child_mode != "sample"
    dtype = torch.bfloat16 if bf16 else torch.float32
    print(
        json.dumps(
            {
                "step_bytes": (peak - before) * 1024,
                "base_bytes": before * 1024,
                "backend": sdpa_backend(module.net, args.batch, args.child_tokens, dtype, grad),
                "heads": module.net.blocks[0].attn.num_heads,
            }
        )
    )


def run_child(args, mode: str, tokens: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [sys.executable, __file__, "--child-mode", mode, "--child-tokens", str(tokens)]
    cmd += ["--model", args.model, "--encoder", args.encoder, "--batch", str(args.batch)]
    cmd += ["--precision", args.dtype] + (["--threads", str(args.threads)] if args.threads else [])
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child {mode} {tokens} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="DiT-Ti/2")
    parser.add_argument("--encoder", default="rope", choices=["rope", "sincos"])
    parser.add_argument("--tokens", type=int, nargs="+", default=[256, 1024, 2304, 4096])
    parser.add_argument("--modes", nargs="+", default=["train", "train+ckpt", "sample"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument(
        "--precision", choices=["auto", "fp32", "bf16"], default="auto", help="auto: native"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--child-mode", help=argparse.SUPPRESS)
    parser.add_argument("--child-tokens", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_mode:
        child(args)
        return
    resolved = resolve_bench_precision(args)
    args.dtype = resolved.name  # the children get the resolved name, not auto
    if not os.path.exists("/proc/self/clear_refs"):
        raise SystemExit("bench.cpu.memory needs Linux (/proc/self/clear_refs resets the peak RSS)")
    tokens = sorted(args.tokens)
    if len(tokens) < 3 or any(math.isqrt(n) ** 2 != n for n in tokens):
        raise SystemExit("--tokens: at least three square numbers")

    print("## Peak memory of one step against the number of tokens\n")
    print(machine_line())
    print(
        f"{args.model}, {args.encoder}, pixel space, batch {args.batch}, {args.dtype}, torch "
        f"threads {args.threads or torch.get_num_threads()}; a fresh "
        f"process per row, peak RSS of the second step minus the RSS before it"
    )
    rows, peaks = [], {}
    for mode in args.modes:
        measured = {n: run_child(args, mode, n) for n in tokens}
        peaks[mode] = {n: m["step_bytes"] for n, m in measured.items()}
        (n0, p0), (n1, p1) = [(n, peaks[mode][n]) for n in tokens[:2]]
        slope = (p1 - p0) / (n1 - n0)
        for n, m in measured.items():
            linear = p1 + slope * (n - n1)
            heads = m["heads"]
            matrix = args.batch * heads * n * n * (2 if args.dtype == "bf16" else 4) / MIB
            rows.append(
                [
                    mode,
                    n,
                    f"{m['step_bytes'] / MIB:.1f}",
                    f"{m['step_bytes'] / n / 1024:.1f}",
                    "-" if n in tokens[:2] else f"{linear / MIB:.1f}",
                    "-" if n in tokens[:2] else f"{m['step_bytes'] / linear:.2f}",
                    m["backend"],
                    f"{matrix:.1f}",
                ]
            )
        print(f"  done: {mode}", flush=True)
    header = [
        "mode",
        "tokens",
        "step peak MiB",
        "KiB / token",
        f"linear from {tokens[0]}, {tokens[1]} (MiB)",
        "measured / linear",
        "SDPA kernel",
        "one attention matrix MiB",
    ]
    print()
    print(markdown_table(header, rows))
    top, ref = tokens[-1], 1024 if 1024 in tokens else tokens[1]
    for mode, peak in peaks.items():
        ratio = peak[top] / (peak[ref] * top / ref)
        print(
            f"\n{mode}: peak at {top} tokens / ({top // ref} x peak at {ref} tokens) = {ratio:.2f}",
            end="",
        )
    print()
    if "train" in peaks and "train+ckpt" in peaks:
        top = tokens[-1]
        plain, ckpt = peaks["train"][top], peaks["train+ckpt"][top]
        print(
            f"\nactivation checkpointing at {top} tokens: {plain / MIB:.1f} MiB -> "
            f"{ckpt / MIB:.1f} MiB per step ({plain / ckpt:.2f}x less)"
        )


if __name__ == "__main__":
    main()
