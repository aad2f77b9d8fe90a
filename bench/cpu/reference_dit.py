"""The suite's DiT training step against facebookresearch/DiT's own, timed alternately.

    python -m bench.cpu.reference_dit --dit-repo /path/to/DiT [--model DiT-S/2] [--tokens 256]

The reference is the ``models.py`` of a local clone of https://github.com/facebookresearch/DiT
(nothing is downloaded; the clone is imported from ``--dit-repo``). It builds its blocks from
timm's ``PatchEmbed``, ``Attention`` (fused ``scaled_dot_product_attention``) and ``Mlp``, so timm
must be importable: ``pip install --no-deps timm`` (see ``placeholder_torchvision`` for why
``--no-deps`` and what stands in for torchvision).

Both sides run exactly the same step around their network, in latent space (4 channels, 1000
classes, class dropout 0.1, no learned sigma on either side):

1. t ~ U(0, 1) and eps from a seeded generator, x_t = (1 - t) x0 + t eps (``FlowMatchingLoss``);
2. the network's forward at x_t (the reference gets ``1000 t``, as the suite's DiT scales t
   itself), the squared error against eps - x0 in float32, its mean;
3. backward, the optimizer step, ``zero_grad(set_to_none=True)``;
4. with ``--ema``, the EMA update too: the suite's ``DiffusionModule.update_ema`` against the
   per-parameter update of DiT's ``train.py``.

The optimizer is AdamW with the same settings on both sides (lr 1e-4, betas (0.9, 0.999), no
weight decay: DiT's). The reference gets ``torch.optim.AdamW(lr=1e-4, weight_decay=0)`` as in
DiT's ``train.py`` (torch's default multi-tensor implementation); the suite's side gets the
optimizer ``DiffusionModule.configure_optimizers`` builds (the fused implementation: same update,
one kernel per parameter). Same batch, dtype and threads on both sides. Not timed on either side:
data loading, the VAE, logging and the suite's loss-bucket bookkeeping (``bench.cpu.train_step``
times the suite's whole ``training_step``).

``--compile`` adds the suite's model with ``net.compile`` (each block ``torch.compile``d) as
further variants; their compilation happens in their first step, before any timing, and is
printed apart. All variants are timed round-robin in one process, medians reported.
"""

from __future__ import annotations

import argparse
import copy
import importlib.abc
import importlib.machinery
import importlib.util
import math
import sys
import time
import types
from pathlib import Path

import torch

from bench.common.machine import add_precision_option, machine_line, resolve_bench_precision
from bench.common.tables import fmt3, markdown_table
from bench.common.timing import (
    CLOCKS,
    add_timing_options,
    interleaved_medians,
    median,
    pm,
    set_threads,
)
from lit_rpe.models.sizes import parse_model_name
from lit_rpe.objectives.flow import FlowMatchingLoss
from lit_rpe.training.config import NetConfig, OptimConfig
from lit_rpe.training.module import DiffusionModule

LATENT_CHANNELS, NUM_CLASSES, CLASS_DROPOUT = 4, 1000, 0.1


class _PlaceholderFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``torchvision`` and its submodules as placeholder modules (see below)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return _PlaceholderModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


class _PlaceholderModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder_class(f"{self.__name__}.{name}")


class _PlaceholderMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _placeholder_class(f"{cls.__qualname__}.{name}")


def _placeholder_class(qualname: str) -> type:
    def refuse(*args, **kwargs):
        raise RuntimeError(f"{qualname} is a placeholder: torchvision is not installed")

    return _PlaceholderMeta(qualname, (), {"__init__": refuse, "__qualname__": qualname})


def placeholder_torchvision() -> bool:
    """Let timm import without torchvision; returns whether a placeholder was installed.

    timm imports torchvision when it is imported (``FrozenBatchNorm2d`` in ``timm.layers``,
    transforms and data sets in ``timm.data``), although the three classes DiT takes from it never
    call torchvision. The suite runs on the CPU build of torch, and the torchvision wheel on PyPI
    is a CUDA build whose compiled ops do not load next to it. When torchvision is absent, a
    placeholder package answers those imports: every name in it is a class that raises when
    instantiated, so anything that really needed torchvision would fail loudly, not silently.
    """
    if importlib.util.find_spec("torchvision") is not None:
        return False
    sys.meta_path.insert(0, _PlaceholderFinder())
    return True


def load_reference(dit_repo: Path, model: str, input_size: int) -> torch.nn.Module:
    """DiT's own model from ``<dit_repo>/models.py`` (``DiT_models[model]``), learn_sigma off."""
    if not (dit_repo / "models.py").is_file():
        raise SystemExit(f"--dit-repo {dit_repo}: no models.py (a clone of facebookresearch/DiT)")
    placeholder = placeholder_torchvision()
    try:
        import timm
    except ImportError as err:
        raise SystemExit(f"the reference needs timm: pip install --no-deps timm ({err})") from err
    spec = importlib.util.spec_from_file_location("reference_dit_models", dit_repo / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    print(
        f"reference: {dit_repo / 'models.py'}, timm {timm.__version__}"
        + (" (torchvision absent: placeholder imports)" if placeholder else "")
    )
    return module.DiT_models[model](
        input_size=input_size,
        in_channels=LATENT_CHANNELS,
        num_classes=NUM_CLASSES,
        class_dropout_prob=CLASS_DROPOUT,
        learn_sigma=False,
    )


def build_ours(model: str, encoder: str, input_size: int, compile_blocks: bool) -> DiffusionModule:
    net = NetConfig(
        name=model, encoder=encoder, class_dropout_prob=CLASS_DROPOUT, compile=compile_blocks
    )
    return DiffusionModule(
        net=net,
        resolution=input_size * 8,  # latent space: the suite's VAE factor (the VAE never runs)
        num_classes=NUM_CLASSES,
        vae_path="(never loaded: the step starts from latents)",
        optim=OptimConfig(lr=1e-4),
    )


def reference_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float = 0.9999) -> None:
    """DiT's ``train.py`` EMA: one in-place update per parameter."""
    ema_params = dict(ema.named_parameters())
    with torch.no_grad():
        for name, param in model.named_parameters():
            ema_params[name].mul_(decay).add_(param.data, alpha=1 - decay)


def make_step(forward, optimizer, batch, autocast_dtype, ema_update=None):
    """The shared step: flow-matching loss around ``forward``, backward, optimizer, EMA."""
    loss_fn = FlowMatchingLoss()
    x0, y, seed = batch

    def step() -> None:
        gen = torch.Generator().manual_seed(seed)
        with torch.autocast(
            "cpu", dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            loss = loss_fn(forward, x0, y, generator=gen).losses.mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema_update is not None:
            ema_update()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dit-repo", type=Path, required=True, help="local clone of DiT")
    parser.add_argument("--model", default="DiT-S/2")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--encoders", nargs="+", default=["sincos", "rope"])
    parser.add_argument("--ema", action="store_true", help="include the EMA update on both sides")
    parser.add_argument(
        "--compile", action="store_true", help="also time the suite's model with compiled blocks"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    add_timing_options(parser)
    add_precision_option(parser)
    args = parser.parse_args()
    set_threads(args)
    precision = resolve_bench_precision(args)
    side = math.isqrt(args.tokens)
    if side * side != args.tokens:
        raise SystemExit(f"--tokens must be a square, got {args.tokens}")
    input_size = side * parse_model_name(args.model)["patch_size"]

    print("## The suite's DiT training step against facebookresearch/DiT's\n")
    print(machine_line())
    torch.manual_seed(0)
    reference = load_reference(args.dit_repo, args.model, input_size).train()
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(args.batch, LATENT_CHANNELS, input_size, input_size, generator=gen)
    y = torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen)
    batch = (x0, y, 1234)
    autocast = precision.autocast_dtype

    ref_optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-4, weight_decay=0)
    ref_ema = None
    if args.ema:
        ema_model = copy.deepcopy(reference).requires_grad_(False)

        def ref_ema() -> None:
            reference_ema(ema_model, reference)

    steps = {
        "reference": make_step(
            lambda x, t, yy: reference(x, t * 1000.0, yy), ref_optimizer, batch, autocast, ref_ema
        )
    }
    compile_seconds = {}
    for encoder in args.encoders:
        for compiled in (False, True) if args.compile else (False,):
            torch.manual_seed(0)
            module = build_ours(args.model, encoder, input_size, compiled)
            module.net.train()
            optimizer = module.configure_optimizers()["optimizer"]
            ema = module.update_ema if args.ema else None
            step = make_step(module.net, optimizer, batch, autocast, ema)
            name = f"{encoder}, compiled" if compiled else encoder
            if compiled:
                started = time.perf_counter()
                step()  # the first call compiles every block: paid once, reported apart
                compile_seconds[name] = time.perf_counter() - started
            steps[name] = step
    print(
        f"{args.model}, {args.tokens} tokens ({input_size}x{input_size} latents), batch "
        f"{args.batch}, AdamW lr 1e-4 (wd 0), EMA {'on' if args.ema else 'off'}, "
        f"warm-up {args.warmup}, {args.repeats} interleaved repeats "
        f"(median; +- is half the IQR), {args.clock} clock"
    )
    for name, seconds in compile_seconds.items():
        print(f"compile time ({name}: the first step, paid once per process): {seconds:.1f} s")
    times = interleaved_medians(
        steps, warmup=args.warmup, repeats=args.repeats, clock=CLOCKS[args.clock]
    )
    ref = median(times["reference"])
    rows = []
    for name, t in times.items():
        label = "facebookresearch/DiT" if name == "reference" else f"lit_rpe ({name})"
        rows.append([label, f"{fmt3(1000 * median(t))}{pm(t)}", f"{median(t) / ref:.3f}"])
    print()
    print(markdown_table(["model", "ms per step", "time / reference"], rows))


if __name__ == "__main__":
    main()
