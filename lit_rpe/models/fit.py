"""The FiT / FiTv2 network (whlzy/FiT ``fit/model/fit_model.py``) with the suite's positions.

Written from the official architecture's facts, with its parameter names, so an official state
dict loads without renaming (``lit_rpe.official.fit_net``):

- Tokens: p x p patches flattened channel-major, ``(c p1 p2)``, through one ``nn.Linear``
  (``x_embedder.proj``); the output tokens use the same order (FiT's ``unpatchify``).
- Blocks: adaLN-Zero around attention and an MLP. MLP: SwiGLU (``fc1_g``, ``fc1_x``, ``fc2``:
  ``fc2(silu(fc1_g x) * fc1_x x)``, timm's layout) or DiT's GELU MLP (``fc1``, ``fc2``).
  ``qk_norm``: LayerNorm over each head without affine parameters (FiTv2). ``adaln_lora_dim``:
  FiTv2's adaLN-LoRA, each block's modulation ``Linear(D, r) -> Linear(r, 6 D)`` plus one global
  ``Linear(D, 6 D)`` of the conditioning shared by every block.
- RoPE: 2D, head_dim/2 channels per axis (rows first, then columns). FiT rotates interleaved
  pairs ``(2k, 2k + 1)``; the suite's ``apply_rope`` rotates pairs ``(k, k + d/2)`` of each axis
  half. The loader reorders the query and key rows of ``qkv`` once
  (``lit_rpe.official.fit_net.rope_row_order``), which leaves every attention logit unchanged
  (q.k is a sum over channels; the per-head LayerNorm is permutation-invariant), so here the
  frequencies and positions are the suite's: any rule at any H x W.
- No padding: the official mask is all ones for one image per sequence, which is plain
  attention.

Time: the network embeds its time as given: SiT's t in [0, 1] (1 = data) for FiTv2, the DDPM
timestep 0..999 for FiTv1. The official ``forward`` clamps t at 1 first (``clamp_time``, on by
default, as the released code, with which FiTv1 is trained and sampled there: its network then
sees only t = 0 or 1). It is a no-op for FiTv2; docs/official_checkpoints.md discusses it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lit_rpe.models.dit import FinalLayer, Mlp, modulate
from lit_rpe.models.embeddings import LabelEmbedder, TimestepEmbedder
from lit_rpe.posenc import (
    InferenceRule,
    apply_rope,
    encode_positions,
    inference_positions,
    rule_frequencies,
)


class SwiGLU(nn.Module):
    """timm's SwiGLU layout: ``fc2(silu(fc1_g(x)) * fc1_x(x))``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1_g = nn.Linear(dim, hidden)
        self.fc1_x = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.silu(self.fc1_g(x)) * self.fc1_x(x))


class FiTAttention(nn.Module):
    """Self-attention with optional per-head LayerNorm on q and k (no affine), then RoPE."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.qk_norm = qk_norm
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, rope, logit_factor: float = 1.0) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        if self.qk_norm:
            q = F.layer_norm(q, (self.head_dim,), eps=1e-6)
            k = F.layer_norm(k, (self.head_dim,), eps=1e-6)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scale = None if logit_factor == 1.0 else logit_factor / math.sqrt(self.head_dim)
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class FiTBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_hidden, *, swiglu, qk_norm, adaln_lora_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = FiTAttention(dim, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = SwiGLU(dim, mlp_hidden) if swiglu else Mlp(dim, mlp_hidden)
        if adaln_lora_dim:
            self.adaLN_modulation = nn.Sequential(
                nn.SiLU(), nn.Linear(dim, adaln_lora_dim), nn.Linear(adaln_lora_dim, 6 * dim)
            )
        else:
            self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))

    def forward(self, x, c, global_mod, rope, logit_factor: float = 1.0):
        mod = self.adaLN_modulation(c)
        if global_mod is not None:
            mod = mod + global_mod
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.unsqueeze(1).chunk(6, dim=2)
        x = x + gate_a * self.attn(modulate(self.norm1(x), shift_a, scale_a), rope, logit_factor)
        return x + gate_m * self.mlp(modulate(self.norm2(x), shift_m, scale_m))


class FiT(nn.Module):
    """FiT (v1: ``learn_sigma``, GELU or SwiGLU) and FiTv2 (SwiGLU, ``qk_norm``, adaLN-LoRA).

    context_size: the token budget of training (256: up to 256 x 256 px; 1024 for the 512 px
    fine-tunes); ``resolution`` of the loaded model is its square. pe_train_len: FiT's
    ``ori_max_pe_len``, the per-axis length the frequency rules scale from (16 for every
    released file, the HR fine-tunes included); ``train_grid`` is ``(pe_train_len,) * 2``.
    mlp_hidden: the MLP's hidden width (SwiGLU: FiTv1 ``4 D``, FiTv2 ``8 D / 3``).
    clamp_time: clamp the time at 1 before embedding it, as the official ``forward``.
    Implements the ``DiT`` calls the samplers use (``forward``, ``rule_positions``,
    ``default_rule``, ``patch_size``, ``in_channels``, ``num_classes``, ``train_grid``,
    ``max_len``, ``time_scale``).
    """

    encoder = "rope"
    time_scale = 1.0

    def __init__(
        self,
        *,
        hidden_size: int,
        depth: int,
        num_heads: int,
        mlp_hidden: int,
        patch_size: int = 2,
        in_channels: int = 4,
        num_classes: int = 1000,
        learn_sigma: bool = False,
        swiglu: bool = True,
        qk_norm: bool = False,
        adaln_lora_dim: int | None = None,
        context_size: int = 256,
        pe_train_len: int = 16,
        theta: float = 10000.0,
        clamp_time: bool = True,
    ):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        head_dim = hidden_size // num_heads
        if head_dim % 4 or head_dim < 8:
            raise ValueError(f"FiT's 2D RoPE needs head_dim divisible by 4, got {head_dim}")
        side = math.isqrt(context_size)
        if side * side != context_size or pe_train_len < 1:
            raise ValueError(
                f"context_size must be a square token count and pe_train_len >= 1, got "
                f"{context_size} and {pe_train_len}"
            )
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes = num_classes
        self.theta = theta
        self.context_size = context_size
        self.context_grid = (side, side)
        self.train_grid = (pe_train_len, pe_train_len)
        self.max_len = self.train_grid
        self.axis_dim = head_dim // 2
        self.clamp_time = clamp_time

        self.x_embedder = nn.Module()
        self.x_embedder.proj = nn.Linear(in_channels * patch_size**2, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, 0.0)
        self.global_adaLN_modulation = (
            nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))
            if adaln_lora_dim
            else None
        )
        self.blocks = nn.ModuleList(
            FiTBlock(
                hidden_size,
                num_heads,
                mlp_hidden,
                swiglu=swiglu,
                qk_norm=qk_norm,
                adaln_lora_dim=adaln_lora_dim,
            )
            for _ in range(depth)
        )
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)

    @property
    def default_rule(self) -> InferenceRule:
        """Extrapolation: FiT's ``--interpolation no``."""
        return InferenceRule("extrapolate")

    def rule_positions(self, rule: InferenceRule, batch, grid, *, seeds=None, device=None):
        """Inference positions of ``rule`` at ``grid`` (FiT was trained on integer grids)."""
        return inference_positions(
            rule, batch=batch, test_grid=grid, max_len=self.max_len, seeds=seeds, device=device
        )

    def patchify(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) -> (B, h * w, C p p) row-major tokens, channels ``(c p1 p2)``."""
        b, c, height, width = x.shape
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(f"input {height}x{width} does not divide into {p}x{p} patches")
        h, w = height // p, width // p
        tokens = x.reshape(b, c, h, p, w, p).permute(0, 2, 4, 1, 3, 5)
        return tokens.reshape(b, h * w, c * p * p), (h, w)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, h * w, C p p) in ``(c p1 p2)`` order -> (B, C, h p, w p)."""
        h, w = grid
        p, c = self.patch_size, self.out_channels
        x = tokens.reshape(tokens.shape[0], h, w, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(tokens.shape[0], c, h * p, w * p)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        y: torch.Tensor,
        *,
        pos_h: torch.Tensor | None = None,
        pos_w: torch.Tensor | None = None,
        rule: InferenceRule | None = None,
        rule_t: float | None = None,
    ) -> torch.Tensor:
        """x (B, C, H, W), t (B,) in the network's own time, y (B,) labels (``num_classes``:
        null) -> (B, C_out, H, W). Positions default to ``rule``'s (extrapolation: the grid)."""
        tokens, grid = self.patchify(x)
        batch = x.shape[0]
        rule = rule or self.default_rule
        if (pos_h is None) != (pos_w is None):
            raise ValueError("pass both pos_h and pos_w, or neither")
        if pos_h is None:
            pos_h, pos_w = self.rule_positions(rule, batch, grid, device=x.device)
        freqs = rule_frequencies(
            rule,
            dim=self.axis_dim,
            theta=self.theta,
            train_grid=self.train_grid,
            test_grid=grid,
            t=rule_t if rule.time_dependent else None,
        )
        # the RoPE tables in the autocast dtype (they multiply q and k), as DiT's
        table_dtype = x.dtype
        if torch.is_autocast_enabled(x.device.type):
            table_dtype = torch.get_autocast_dtype(x.device.type)
        enc = encode_positions("rope", pos_h, pos_w, freqs, dtype=table_dtype)
        tokens = self.x_embedder.proj(tokens)
        if self.clamp_time:
            t = t.clamp(max=1.0)
        c = self.t_embedder(t * self.time_scale) + self.y_embedder(y, False)
        glob = None if self.global_adaLN_modulation is None else self.global_adaLN_modulation(c)
        for block in self.blocks:
            tokens = block(tokens, c, glob, enc.rope, enc.logit_factor)
        return self.unpatchify(self.final_layer(tokens, c), grid)
