"""Typed configuration groups of the LightningModule (LightningCLI turns them into YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jsonargparse.typing import register_type

from lit_rpe.posenc.rules import InferenceRule, parse_rule
from lit_rpe.sampling.settings import SamplerSettings

# An ``InferenceRule`` in an experiment file or on the command line is a name or a mapping of
# its fields, read by ``parse_rule`` when the arguments are parsed (so a wrong field fails then,
# naming the valid ones) and written back in its shortest form by ``--print_config``.
register_type(
    InferenceRule, serializer=InferenceRule.spec, deserializer=parse_rule,
    fail_already_registered=False,
)  # fmt: skip

DIT_ARGUMENTS = (
    "encoder",
    "train_positions",
    "max_len",
    "micro_conditioning",
    "qk_norm",
    "theta",
    "checkpointing",
)


@dataclass(frozen=True)
class NetConfig:
    """The DiT: a named size plus the positional-encoding strategy it trains with.

    name: ``DiT-<S|B|L|XL|Ti|N>/<patch>``. max_len: per-axis rpe2d position range in tokens
    (default 4 x the training grid for rpe2d). compile: ``torch.compile`` each block (optional;
    costs ~40 s of compilation on CPU and gains nothing there).
    """

    name: str = "DiT-XL/2"
    encoder: Literal["sincos", "rope"] = "sincos"
    train_positions: Literal["grid", "rpe2d"] = "grid"
    max_len: int | None = None
    micro_conditioning: bool = False
    qk_norm: bool = False
    theta: float = 10000.0
    class_dropout_prob: float = 0.1
    checkpointing: bool = False
    compile: bool = False

    def dit_options(self) -> dict:
        """The fields passed to the ``DiT`` constructor unchanged (``name`` picks the size,
        ``class_dropout_prob`` is applied by the module, ``compile`` after construction)."""
        return {name: getattr(self, name) for name in DIT_ARGUMENTS}


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with a linear learning-rate warm-up (DiT: lr 1e-4, no weight decay, no warm-up)."""

    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0


CONFIG_CLASSES = (NetConfig, OptimConfig, SamplerSettings)


def allow_config_classes() -> None:
    """Let torch's weights-only loader rebuild the config dataclasses that checkpoints store in
    their hyper-parameters, instead of refusing the file. Called before a checkpoint is read
    (``DiffusionModule.setup``, ``load_from_checkpoint``, ``load_weights``); idempotent."""
    allowed = torch.serialization.get_safe_globals()
    missing = [cls for cls in CONFIG_CLASSES if cls not in allowed]
    if missing:
        torch.serialization.add_safe_globals(missing)
