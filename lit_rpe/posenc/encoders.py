"""What a position becomes: the additive 2D sin-cos table and axial rotary tables (DESIGN.md 3a).

Both take per-sample axis positions ``pos_h (B, h)``, ``pos_w (B, w)`` and per-axis angular
frequencies (from ``frequencies.py``); tokens are ordered row-major, token ``i * w + j`` at
``(pos_h[i], pos_w[j])``.
"""

from __future__ import annotations

import torch

ENCODERS = ("sincos", "rope")


def _axis_angles(pos: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """(B, n) positions x (k,) frequencies -> (B, n, k) angles, in float64 for exactness."""
    return pos.to(torch.float64)[..., None] * freqs.to(device=pos.device, dtype=torch.float64)


def sincos_embedding(
    pos_h: torch.Tensor,
    pos_w: torch.Tensor,
    freqs_h: torch.Tensor,
    freqs_w: torch.Tensor,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """DiT/MAE additive 2D sin-cos embedding: (B, h * w, D) with D = 4 * len(freqs).

    Channel layout as in the official DiT table (its meshgrid puts the column coordinate first):
    ``[sin(p_w w), cos(p_w w), sin(p_h w), cos(p_h w)]``, each block D/4 wide.
    """
    batch, h, w = pos_h.shape[0], pos_h.shape[1], pos_w.shape[1]
    cols = _axis_angles(pos_w, freqs_w)
    rows = _axis_angles(pos_h, freqs_h)
    cols = torch.cat([cols.sin(), cols.cos()], dim=-1).to(dtype)  # (B, w, D/2)
    rows = torch.cat([rows.sin(), rows.cos()], dim=-1).to(dtype)  # (B, h, D/2)
    half = cols.shape[-1]
    table = torch.cat(
        [
            cols[:, None, :, :].expand(batch, h, w, half),
            rows[:, :, None, :].expand(batch, h, w, half),
        ],
        dim=-1,
    )
    return table.reshape(batch, h * w, 2 * half)


def rope_tables(
    pos_h: torch.Tensor,
    pos_w: torch.Tensor,
    freqs_h: torch.Tensor,
    freqs_w: torch.Tensor,
    *,
    tau: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Axial rotary cos/sin tables, each (B, 1, h * w, head_dim), computed once per forward.

    Head layout: the first half of each head's dims encodes the row, the second the column; in a
    half of size d, dims ``k`` and ``k + d/2`` form pair k, rotated by ``p * w_k``. The tables hold
    each angle twice (once per member of the pair) and include ``tau``, the factor of cos and sin.
    """
    batch, h, w = pos_h.shape[0], pos_h.shape[1], pos_w.shape[1]
    rows = _axis_angles(pos_h, freqs_h)  # (B, h, d/2)
    cols = _axis_angles(pos_w, freqs_w)  # (B, w, d/2)
    k = rows.shape[-1]

    def table(fn):
        r = (tau * fn(rows)).to(dtype).repeat(1, 1, 2)  # (B, h, d): pair members share an angle
        c = (tau * fn(cols)).to(dtype).repeat(1, 1, 2)
        grid = torch.cat(
            [
                r[:, :, None, :].expand(batch, h, w, 2 * k),
                c[:, None, :, :].expand(batch, h, w, 2 * k),
            ],
            dim=-1,
        )
        return grid.reshape(batch, 1, h * w, 4 * k)

    return table(torch.cos), table(torch.sin)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x (B, heads, N, head_dim)`` by tables from ``rope_tables``.

    Real arithmetic only (no complex tensors): ``x * cos + rotate(x) * sin`` where ``rotate`` maps
    each pair ``(a, b)`` of an axis half to ``(-b, a)``.
    """
    first, second = x.unflatten(-1, (2, 2, -1)).unbind(-2)  # each (B, H, N, 2 axes, d/2)
    rotated = torch.stack((-second, first), dim=-2).flatten(-3)
    return x * cos + rotated * sin
