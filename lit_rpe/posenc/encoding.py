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

    For ``sincos``, a method's tau cannot multiply the logits through cos and sin (the table is
    added to the tokens, not rotated into q and k), so it becomes the logit factor tau^2 it is
    meant to produce.
    """
    if encoder == "sincos":
        table = sincos_embedding(pos_h, pos_w, freqs.h, freqs.w, dtype=dtype)
        return PositionalEncoding(table, None, freqs.logit_factor * freqs.tau**2)
    if encoder == "rope":
        tables = rope_tables(pos_h, pos_w, freqs.h, freqs.w, tau=freqs.tau, dtype=dtype)
        return PositionalEncoding(None, tables, freqs.logit_factor)
    raise ValueError(f"unknown encoder {encoder!r}; valid: {', '.join(ENCODERS)}")
