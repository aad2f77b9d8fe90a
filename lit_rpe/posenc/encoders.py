"""What a position becomes: the additive 2D sin-cos table and axial rotary tables.

See docs/DESIGN.md section 3a.

Both take per-sample axis positions ``pos_h (B, h)``, ``pos_w (B, w)`` and per-axis angular
frequencies (from ``frequencies.py``); tokens are ordered row-major, token ``i * w + j`` at
``(pos_h[i], pos_w[j])``.
"""

from __future__ import annotations

import torch

ENCODERS = ("sincos", "rope")


def _axis_angles(pos: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """(B, n) positions x (k,) frequencies -> (B, n, k) angles, in float64 for exactness.

    The (cached, CPU) frequencies reach the device with a non-blocking copy: no sync per step.
    """
    freqs = freqs.to(dtype=torch.float64).to(device=pos.device, non_blocking=True)
    return pos.to(torch.float64)[..., None] * freqs


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
    tau_h: float = 1.0,
    tau_w: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Axial rotary cos/sin tables, each (B, 1, h * w, head_dim), computed once per forward.

    Head layout: the first half of each head's dims encodes the row, the second the column; in a
    half of size d, dims ``k`` and ``k + d/2`` form pair k, rotated by ``p * w_k``. The tables hold
    each angle twice (once per member of the pair) and include the factor of cos and sin: ``tau_h``
    on the row half, ``tau_w`` on the column half.
    The sine table carries the rotation's sign: ``-sin`` for the first member of each pair and
    ``+sin`` for the second, so ``apply_rope`` needs no negation (``apply_rope`` is its only user).
    """
    batch, h, w = pos_h.shape[0], pos_h.shape[1], pos_w.shape[1]
    rows = _axis_angles(pos_h, freqs_h)  # (B, h, d/2)
    cols = _axis_angles(pos_w, freqs_w)  # (B, w, d/2)
    k = rows.shape[-1]

    def table(fn, sign):
        # (B, n, d): pair members share an angle; the first member gets ``sign``
        r = torch.cat([sign * fn(rows), fn(rows)], dim=-1).mul(tau_h).to(dtype)
        c = torch.cat([sign * fn(cols), fn(cols)], dim=-1).mul(tau_w).to(dtype)
        grid = torch.cat(
            [
                r[:, :, None, :].expand(batch, h, w, 2 * k),
                c[:, None, :, :].expand(batch, h, w, 2 * k),
            ],
            dim=-1,
        )
        return grid.reshape(batch, 1, h * w, 4 * k)

    return table(torch.cos, 1.0), table(torch.sin, -1.0)


def _swap_pairs(x: torch.Tensor) -> torch.Tensor:
    """Exchange the two members of every pair: quarters (r1, r2, c1, c2) -> (r2, r1, c2, c1)."""
    q = x.shape[-1] // 4
    return torch.cat([x[..., q : 2 * q], x[..., :q], x[..., 3 * q :], x[..., 2 * q : 3 * q]], -1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    """``x * cos + sign * swap(x) * sin``, the whole rotation in two or three element-wise passes.

    Contiguous float32/float64 ``x`` (the gradient in the backward): one multiply, then a
    multiply-add into each half of every pair, in place (the least memory traffic). Otherwise
    (queries and keys are strided views of the qkv projection; 16-bit kernels convert per
    element and crawl on half-width views): one multiply, one copy for the swap and one in-place
    multiply-add over whole heads. Both measured fastest for their case on CPU.
    """
    out = x * cos
    if x.is_contiguous() and x.element_size() >= 4:
        o, xs, s = (t.unflatten(-1, (2, 2, -1)) for t in (out, x, sin))
        o[..., 0, :].addcmul_(xs[..., 1, :], s[..., 0, :], value=sign)
        o[..., 1, :].addcmul_(xs[..., 0, :], s[..., 1, :], value=sign)
        return out
    return out.addcmul_(_swap_pairs(x), sin, value=sign)


class _Rope(torch.autograd.Function):
    """RoPE with a hand-written backward that saves only the shared tables, no activations.

    Forward: ``y = x * cos + swap(x) * sin``. swap is a symmetric permutation and the signed
    sine table satisfies ``swap(sin) = -sin`` (both members of a pair share an angle), so the
    backward ``swap(g * sin) + g * cos`` is ``g * cos - swap(g) * sin``: the same kernel.
    """

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, 1.0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, sin, -1.0), None, None


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x (B, heads, N, head_dim)`` by tables from ``rope_tables``.

    Real arithmetic only (no complex tensors): each pair ``(a, b)`` of an axis half becomes
    ``(a cos - b sin, b cos + a sin)``, computed as ``x * cos + swap(x) * sin`` with the sign in
    the sine table. The tables are not differentiated (they are functions of positions only).
    """
    return _Rope.apply(x, cos, sin)
