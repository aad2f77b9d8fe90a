"""One forward pass's positional encoding: positions + resolved frequencies -> what blocks use."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lit_rpe.posenc.encoders import ENCODERS, rope_tables, sincos_embedding
from lit_rpe.posenc.rules import AxisFrequencies


@dataclass(frozen=True)
class PositionalEncoding:
    """What the transformer consumes, computed once per forward and shared by every block.

    additive: (B, N, D) table added to the patch tokens (``sincos``), else None.
    rope: (cos, sin) tables, each (B, 1, N, head_dim) (``rope``), else None.
    logit_factor: extra factor on attention logits (1.0 = plain 1/sqrt(head_dim)).
    """

    additive: torch.Tensor | None
    rope: tuple[torch.Tensor, torch.Tensor] | None
    logit_factor: float


def encode_positions(
    encoder: str,
    pos_h: torch.Tensor,
    pos_w: torch.Tensor,
    freqs: AxisFrequencies,
    *,
    dtype: torch.dtype = torch.float32,
) -> PositionalEncoding:
    """Build the tables of ``encoder`` for positions (B, h), (B, w) and resolved frequencies.

    For ``sincos``, tau cannot multiply the logits through cos and sin (the table is added to the
    tokens, not rotated into q and k), so it becomes a logit factor: ``tau_h * tau_w``, which is
    the tau^2 it is meant to produce when both axes share one tau (see ``rules.py``).

    Positions shared by the whole batch (a batch-expanded view, stride 0, as the grid and
    ``rpe2d_even`` layouts return) are encoded once and the tables expanded over the batch: the
    same values, computed once and read from cache by every sample.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"unknown encoder {encoder!r}; valid: {', '.join(ENCODERS)}")
    batch = pos_h.shape[0]
    shared = batch > 1 and pos_h.stride(0) == 0 and pos_w.stride(0) == 0
    if shared:
        pos_h, pos_w = pos_h[:1], pos_w[:1]

    def per_batch(table: torch.Tensor) -> torch.Tensor:
        return table.expand(batch, *table.shape[1:]) if shared else table

    if encoder == "sincos":
        table = sincos_embedding(pos_h, pos_w, freqs.h, freqs.w, dtype=dtype)
        logit = freqs.logit_factor * freqs.tau_h * freqs.tau_w
        return PositionalEncoding(per_batch(table), None, logit)
    cos, sin = rope_tables(
        pos_h, pos_w, freqs.h, freqs.w, tau_h=freqs.tau_h, tau_w=freqs.tau_w, dtype=dtype
    )
    return PositionalEncoding(None, (per_batch(cos), per_batch(sin)), freqs.logit_factor)
