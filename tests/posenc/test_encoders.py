"""Encoders: the DiT sin-cos table and axial RoPE (docs/DESIGN.md 3a)."""

import math

import numpy as np
import pytest
import torch

from lit_rpe.posenc import (
    InferenceRule,
    apply_rope,
    base_frequencies,
    encode_positions,
    grid_positions,
    rope_tables,
    rule_frequencies,
    sincos_embedding,
)


def dit_reference_table(embed_dim: int, grid_size: int) -> np.ndarray:
    """The official DiT table written from its definition: meshgrid(w, h) puts the column
    coordinate in the first half of the channels; each half is [sin(p w_k) | cos(p w_k)] with
    w_k = 10000^(-k / (D/4)); tokens row-major."""
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
    rows, cols = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing="ij")
    col_ang = cols.reshape(-1, 1) * omega
    row_ang = rows.reshape(-1, 1) * omega
    table = np.concatenate([np.sin(col_ang), np.cos(col_ang), np.sin(row_ang), np.cos(row_ang)], 1)
    return table.astype(np.float32)


@pytest.mark.parametrize("dim,grid", [(1152, 16), (384, 32), (64, 4)])
def test_sincos_matches_official_dit_table(dim, grid):
    f = base_frequencies(dim // 2)
    pos = grid_positions(1, grid)
    ours = sincos_embedding(pos, pos, f, f)[0].numpy()
    np.testing.assert_array_equal(ours, dit_reference_table(dim, grid))


def test_sincos_axis_order_on_non_square_grid():
    f = base_frequencies(8)
    table = sincos_embedding(grid_positions(1, 2), grid_positions(1, 3), f, f)[0]
    assert table.shape == (6, 16)
    # token (row 1, col 2) is index 1 * 3 + 2 = 5: first half encodes the column (2)
    torch.testing.assert_close(table[5, :4], torch.sin(2 * f).float())
    torch.testing.assert_close(table[5, 8:12], torch.sin(1 * f).float())


def random_qk(batch=2, heads=3, tokens=12, head_dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, heads, tokens, head_dim, generator=g, dtype=torch.float64)
        for _ in range(2)
    )


def rope_scores(q, k, pos_h, pos_w, dim):
    f = base_frequencies(dim // 2)
    cos, sin = rope_tables(pos_h, pos_w, f, f, dtype=torch.float64)
    return apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-1, -2)


def test_rope_scores_invariant_to_constant_shift():
    q, k = random_qk()
    pos_h, pos_w = grid_positions(2, 3), grid_positions(2, 4)
    ref = rope_scores(q, k, pos_h, pos_w, 16)
    shifted = rope_scores(q, k, pos_h + 7.25, pos_w - 3.5, 16)
    torch.testing.assert_close(shifted, ref)


def test_rope_scores_change_with_order():
    q, k = random_qk()
    pos_h, pos_w = grid_positions(2, 3), grid_positions(2, 4)
    ref = rope_scores(q, k, pos_h, pos_w, 16)
    swapped = rope_scores(q, k, pos_h, pos_w[:, [1, 0, 2, 3]], 16)
    assert not torch.allclose(swapped, ref)


def test_rope_is_the_complex_rotation_of_each_pair():
    (x, _) = random_qk(batch=1, heads=1, tokens=6, head_dim=8)
    pos_h, pos_w = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 3.0, 4.0]])
    f = base_frequencies(4)  # per-axis dim 4 -> 2 pairs per axis
    cos, sin = rope_tables(pos_h, pos_w, f, f, dtype=torch.float64)
    out = apply_rope(x, cos, sin)[0, 0]
    for token in range(6):
        r, c = divmod(token, 3)
        for axis, p in ((0, pos_h[0, r]), (1, pos_w[0, c])):
            for pair in range(2):
                a, b = axis * 4 + pair, axis * 4 + pair + 2  # pair k: dims k and k + d/2
                z = complex(x[0, 0, token, a], x[0, 0, token, b]) * np.exp(
                    1j * p.item() * f[pair].item()
                )
                assert out[token, a].item() == pytest.approx(z.real)
                assert out[token, b].item() == pytest.approx(z.imag)


def test_rope_tau_scales_norms():
    (x, _) = random_qk()
    f = base_frequencies(8)
    pos_h, pos_w = grid_positions(2, 3), grid_positions(2, 4)
    plain = apply_rope(x, *rope_tables(pos_h, pos_w, f, f, dtype=torch.float64))
    scaled = apply_rope(
        x, *rope_tables(pos_h, pos_w, f, f, tau_h=1.5, tau_w=1.5, dtype=torch.float64)
    )
    torch.testing.assert_close(plain.norm(dim=-1), x.norm(dim=-1))  # a rotation
    torch.testing.assert_close(scaled, 1.5 * plain)
    # per axis: the row half of each head by tau_h, the column half by tau_w
    per_axis = apply_rope(
        x, *rope_tables(pos_h, pos_w, f, f, tau_h=1.5, tau_w=2.0, dtype=torch.float64)
    )
    torch.testing.assert_close(per_axis[..., :8], 1.5 * plain[..., :8])
    torch.testing.assert_close(per_axis[..., 8:], 2.0 * plain[..., 8:])


def test_encode_positions_sincos_turns_tau_into_logit_factor():
    rule = InferenceRule("yarn")
    freqs = rule_frequencies(rule, dim=16, theta=1e4, train_grid=(4, 4), test_grid=(8, 8))
    pos = grid_positions(1, 8)
    sincos = encode_positions("sincos", pos, pos, freqs)
    rope = encode_positions("rope", pos, pos, freqs)
    assert sincos.rope is None and sincos.additive.shape == (1, 64, 32)
    assert sincos.logit_factor == pytest.approx((0.1 * math.log(2) + 1) ** 2)
    assert rope.additive is None and rope.logit_factor == 1.0
    with pytest.raises(ValueError, match="valid: sincos, rope"):
        encode_positions("alibi", pos, pos, freqs)


@pytest.mark.parametrize("test,scales", [((16, 32), (1.0, 2.0)), ((32, 64), (2.0, 4.0))])
def test_per_axis_and_max_tau_tables_on_non_square_grids(test, scales):
    """A 16x16 training grid at 16x32 and 32x64 with YaRN: closed-form table values."""
    tau_h, tau_w = (1 + 0.1 * math.log(s) for s in scales)
    pos_h, pos_w = grid_positions(1, test[0]), grid_positions(1, test[1])
    for tau_axes, (row, col) in (("per_axis", (tau_h, tau_w)), ("max", (tau_w, tau_w))):
        rule = InferenceRule("yarn", tau_axes=tau_axes)
        freqs = rule_frequencies(rule, dim=16, theta=1e4, train_grid=(16, 16), test_grid=test)
        cos, sin = encode_positions("rope", pos_h, pos_w, freqs, dtype=torch.float64).rope
        # token (i, j) = (1, 3): row half holds tau_h cos(1 w_h), column half tau_w cos(3 w_w)
        token = 1 * test[1] + 3
        # (dim 16 per axis: 8 pairs, a 32-wide head; the signed sine is + on second members)
        torch.testing.assert_close(cos[0, 0, token, :16], row * torch.cos(freqs.h).repeat(2))
        torch.testing.assert_close(cos[0, 0, token, 16:], col * torch.cos(3 * freqs.w).repeat(2))
        torch.testing.assert_close(sin[0, 0, token, 8:16], row * torch.sin(freqs.h))
        torch.testing.assert_close(sin[0, 0, token, 24:], col * torch.sin(3 * freqs.w))
        sincos = encode_positions("sincos", pos_h, pos_w, freqs)
        assert sincos.logit_factor == pytest.approx(row * col)  # tau_h tau_w, or max^2


def test_per_axis_tau_scales_each_axis_part_of_the_rope_scores():
    q, k = random_qk(batch=1, heads=1, tokens=8, head_dim=16)
    pos_h, pos_w = grid_positions(1, 2), grid_positions(1, 4)
    f = base_frequencies(8)

    def scores(tau_h, tau_w, half=slice(None)):
        cos, sin = rope_tables(pos_h, pos_w, f, f, tau_h=tau_h, tau_w=tau_w, dtype=torch.float64)
        rq, rk = apply_rope(q, cos, sin)[..., half], apply_rope(k, cos, sin)[..., half]
        return rq @ rk.transpose(-1, -2)

    rows, cols = scores(1.0, 1.0, slice(0, 8)), scores(1.0, 1.0, slice(8, 16))
    torch.testing.assert_close(scores(1.2, 1.5), 1.2**2 * rows + 1.5**2 * cols)


def test_tasr_sincos_table_is_pi_first_and_lumina_base_last():
    rule, test = InferenceRule("tasr"), (16, 24)
    pos_h, pos_w = grid_positions(1, test[0]), grid_positions(1, test[1])
    f = base_frequencies(16)  # sincos: D/2 = 16 channels per axis

    def table(t):
        freqs = rule_frequencies(rule, dim=16, theta=1e4, train_grid=(8, 8), test_grid=test, t=t)
        return encode_positions("sincos", pos_h, pos_w, freqs).additive

    # first step (t = 1): DiT's table at the interpolated positions i * L / n
    interpolated = sincos_embedding(pos_h * 8 / 16, pos_w * 8 / 24, f, f)
    torch.testing.assert_close(table(1.0), interpolated)
    # last steps: base 10000 * s per axis (s_h = 2, s_w = 3)
    lumina = sincos_embedding(pos_h, pos_w, base_frequencies(16, 2e4), base_frequencies(16, 3e4))
    torch.testing.assert_close(table(0.0), lumina)
