"""Class-conditional Diffusion Transformer (adaLN-Zero) at any resolution.

Reads top to bottom: attention and MLP, the block, the final layer, then the model. Positions are
passed with every forward call (or derived from the inference rule); the model stores no
resolution-sized table, so one set of weights runs at any H x W that divides the patch grid.
Parameter names and shapes follow the official DiT ``models.py`` wherever the architecture is the
same (its ``pos_embed`` buffer is the only key we do not have).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lit_rpe.models.embeddings import LabelEmbedder, MicroConditionEmbedder, TimestepEmbedder
from lit_rpe.models.sizes import parse_model_name
from lit_rpe.posenc import (
    InferenceRule,
    apply_rope,
    encode_positions,
    inference_positions,
    rule_frequencies,
    training_positions,
)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN's ``x * (1 + scale) + shift`` for x (B, N, D) and shift, scale (B, D) or (B, 1, D),
    as one fused multiply-add (one pass over x instead of two)."""
    if shift.ndim == 2:
        shift, scale = shift.unsqueeze(1), scale.unsqueeze(1)
    return torch.addcmul(shift, x, 1 + scale)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """DiT's GELU, tanh approximation: ``x/2 (1 + tanh(z))``, z = sqrt(2/pi) (x + 0.044715 x^3).

    Eager: torch's kernel. Compiled: the same function written ``x sigmoid(2z)`` (an identity),
    which the compiler fuses into one pass with a cheap sigmoid instead of a slow vector tanh
    (10% of a compiled DiT block on an AVX2 CPU).
    """
    if torch.compiler.is_compiling():
        return x * torch.sigmoid(x * (_GELU_2K0 + _GELU_2K1 * x * x))
    return F.gelu(x, approximate="tanh")


_GELU_2K0 = 2 * math.sqrt(2 / math.pi)
_GELU_2K1 = 2 * 0.044715 * math.sqrt(2 / math.pi)


class Attention(nn.Module):
    """Multi-head self-attention via ``scaled_dot_product_attention`` (no mask: fused kernels)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        logit_factor: float = 1.0,
    ) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            cos, sin = rope
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scale = None if logit_factor == 1.0 else logit_factor / math.sqrt(self.head_dim)
        out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(gelu_tanh(self.fc1(x)))


class DiTBlock(nn.Module):
    """Transformer block whose LayerNorms are shifted, scaled and gated by the conditioning."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, qk_norm: bool):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size))

    def forward(self, x, c, rope=None, logit_factor: float = 1.0):
        # (B, 1, D) each; the gated residuals x + gate * f(...) are fused multiply-adds
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = (
            self.adaLN_modulation(c).unsqueeze(1).chunk(6, dim=2)
        )
        h = self.attn(modulate(self.norm1(x), shift_a, scale_a), rope, logit_factor)
        x = torch.addcmul(x, gate_a, h)
        return torch.addcmul(x, gate_m, self.mlp(modulate(self.norm2(x), shift_m, scale_m)))


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x, c):
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> tokens, row-major: (B, C, H, W) -> (B, H/p * W/p, D)."""

    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # contiguous: the residual stream's ops run on dense rows, and compiled blocks get the
        # layout they are correct for (torch 2.13's CPU inductor returns wrong gradients for a
        # block fed the transposed view; see tests/models/test_dit_fast_paths.py)
        return self.proj(x).flatten(2).transpose(1, 2).contiguous()


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class DiT(nn.Module):
    """Diffusion Transformer with a swappable positional encoding.

    input_size: training input size (latent or pixel units), int or (H, W); with ``patch_size``
    it fixes the training grid ``L = input_size / patch_size`` that frequency scaling refers to.
    encoder: ``sincos`` (additive, DiT) or ``rope`` (axial rotary). train_positions: ``grid`` or
    ``rpe2d``; max_len: per-axis rpe2d range (default 4 x the training grid for rpe2d, the grid
    itself otherwise). time_scale: the network sees ``t * time_scale`` (DiT's 0..1000 range).
    learn_sigma: doubles the output channels (official DiT checkpoints).
    """

    def __init__(
        self,
        *,
        input_size: int | tuple[int, int] = 32,
        patch_size: int = 2,
        in_channels: int = 4,
        hidden_size: int = 1152,
        depth: int = 28,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        class_dropout_prob: float = 0.1,
        num_classes: int = 1000,
        learn_sigma: bool = False,
        encoder: Literal["sincos", "rope"] = "sincos",
        theta: float = 10000.0,
        train_positions: Literal["grid", "rpe2d"] = "grid",
        max_len: int | tuple[int, int] | None = None,
        qk_norm: bool = False,
        micro_conditioning: bool = False,
        checkpointing: bool = False,
        time_scale: float = 1000.0,
    ):
        super().__init__()
        size = _pair(input_size)
        if size[0] % patch_size or size[1] % patch_size:
            raise ValueError(f"input_size {size} is not divisible by patch_size {patch_size}")
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        head_dim = hidden_size // num_heads
        if encoder == "rope" and (head_dim % 4 or head_dim < 8):
            raise ValueError(f"rope needs head_dim divisible by 4 and >= 8, got {head_dim}")
        if encoder == "sincos" and hidden_size % 8:
            raise ValueError(f"sincos needs hidden_size divisible by 8, got {hidden_size}")
        if encoder not in ("sincos", "rope"):
            raise ValueError(f"unknown encoder {encoder!r}; valid: sincos, rope")
        if train_positions not in ("grid", "rpe2d"):
            raise ValueError(f"unknown train_positions {train_positions!r}; valid: grid, rpe2d")
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.num_classes = num_classes
        self.encoder = encoder
        self.theta = theta
        self.train_positions = train_positions
        self.train_grid = (size[0] // patch_size, size[1] // patch_size)
        default_len = (
            tuple(4 * n for n in self.train_grid) if train_positions == "rpe2d" else self.train_grid
        )
        self.max_len = _pair(max_len) if max_len is not None else default_len
        if any(m < n for m, n in zip(self.max_len, self.train_grid, strict=True)):
            raise ValueError(
                f"max_len {self.max_len} is smaller than the training grid {self.train_grid}"
            )
        # per-axis dim of the frequency maths: half the channels (sincos) or half a head (rope)
        self.axis_dim = hidden_size // 2 if encoder == "sincos" else head_dim // 2
        self.time_scale = time_scale
        self.checkpointing = checkpointing

        self.x_embedder = PatchEmbed(patch_size, in_channels, hidden_size)
        self.t_embedder = TimestepEmbedder(hidden_size)
        self.y_embedder = LabelEmbedder(num_classes, hidden_size, class_dropout_prob)
        self.micro_embedder = MicroConditionEmbedder(hidden_size) if micro_conditioning else None
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_size, num_heads, mlp_ratio, qk_norm) for _ in range(depth)
        )
        self.final_layer = FinalLayer(hidden_size, patch_size, self.out_channels)
        self.initialize_weights()

    @classmethod
    def from_name(cls, name: str, **kwargs) -> DiT:
        """Build a named size, e.g. ``DiT.from_name("DiT-XL/2", input_size=32)``."""
        return cls(**parse_model_name(name), **kwargs)

    def initialize_weights(self) -> None:
        """DiT's initialisation: Xavier linears, zeroed adaLN and output layers (adaLN-Zero)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.micro_embedder is not None:
            self.micro_embedder.reset_parameters()

    # ----------------------------------------------------------------------------------------
    # positions: pure functions of the grid, exposed here with this model's configuration

    def token_grid(self, height: int, width: int) -> tuple[int, int]:
        """Token grid (h, w) of an input of ``height x width`` (latent or pixel units)."""
        p = self.patch_size
        if height % p or width % p:
            raise ValueError(
                f"input {height}x{width} does not divide into {p}x{p} patches; "
                f"use a multiple of {p}"
            )
        return height // p, width // p

    @property
    def default_rule(self) -> InferenceRule:
        """The rule used when none is given: rpe2d_even for rpe2d models, else extrapolate."""
        return InferenceRule("rpe2d_even" if self.train_positions == "rpe2d" else "extrapolate")

    def draw_positions(self, batch, grid, *, generator=None, device=None):
        """Training positions of this model's kind for a batch: (pos_h (B, h), pos_w (B, w))."""
        return training_positions(
            self.train_positions,
            batch,
            grid,
            max_len=self.max_len,
            generator=generator,
            device=device,
        )

    def rule_positions(self, rule: InferenceRule, batch, grid, *, seeds=None, device=None):
        """Inference positions of ``rule`` at ``grid`` within this model's trained range."""
        return inference_positions(
            rule, batch=batch, test_grid=grid, max_len=self.max_len, seeds=seeds, device=device
        )

    # ----------------------------------------------------------------------------------------

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, h * w, p * p * C) -> (B, C, h * p, w * p)."""
        h, w = grid
        p, c = self.patch_size, self.out_channels
        x = x.reshape(x.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, w * p)

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
        box: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the velocity (or DiT's eps and variance) of ``x``.

        x: (B, C, H, W); t: (B,) time in [0, 1] (1 = noise); y: (B,) labels, ``num_classes`` is
        the null class. pos_h (B, h), pos_w (B, w): token positions; when omitted they come from
        ``rule``, or in training mode from this model's training positions (global RNG), or in
        eval mode from ``default_rule``. rule: inference rule (None: training frequencies);
        rule_t: the sampler's current t as a float, needed by time-dependent (DyPE) rules.
        box: (B, 4) crop box for micro-conditioning, default the whole image (0, 0, 1, 1).
        """
        batch = x.shape[0]
        grid = self.token_grid(x.shape[2], x.shape[3])
        if (pos_h is None) != (pos_w is None):
            raise ValueError("pass both pos_h and pos_w, or neither")
        if pos_h is None:
            if rule is None and self.training:
                pos_h, pos_w = self.draw_positions(batch, grid, device=x.device)
            else:
                pos_h, pos_w = self.rule_positions(
                    rule or self.default_rule, batch, grid, device=x.device
                )
        if pos_h.shape != (batch, grid[0]) or pos_w.shape != (batch, grid[1]):
            raise ValueError(
                f"positions must be ({batch}, {grid[0]}) and ({batch}, {grid[1]}) for a {grid} "
                f"grid, got {tuple(pos_h.shape)} and {tuple(pos_w.shape)}"
            )
        freqs = rule_frequencies(
            rule,
            dim=self.axis_dim,
            theta=self.theta,
            train_grid=self.train_grid,
            test_grid=grid,
            t=rule_t if rule is not None and rule.time_dependent else None,
        )
        # RoPE tables in the autocast dtype (they multiply q and k); the additive table in the
        # input dtype, the residual stream's (docs/DESIGN.md 5).
        table_dtype = x.dtype
        if self.encoder == "rope" and torch.is_autocast_enabled(x.device.type):
            table_dtype = torch.get_autocast_dtype(x.device.type)
        enc = encode_positions(self.encoder, pos_h, pos_w, freqs, dtype=table_dtype)

        # The residual stream in the input's dtype for every encoding, under autocast too (fp32
        # as in DiT, where the fp32 position table promotes it): the patch embedding's
        # autocast output would otherwise leave RoPE models a bf16 stream and sincos an fp32 one.
        tokens = self.x_embedder(x).to(x.dtype)
        if enc.additive is not None:
            tokens = tokens + enc.additive
        c = self.t_embedder(t * self.time_scale) + self.y_embedder(y, self.training)
        if self.micro_embedder is not None:
            if box is None:
                # (0, 0, 1, 1) built on the device: no host-to-device copy in the forward
                box = torch.cat([x.new_zeros(1, 2), x.new_ones(1, 2)], dim=1).expand(batch, 4)
            c = c + self.micro_embedder(box)
        for block in self.blocks:
            if self.checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(
                    block, tokens, c, enc.rope, enc.logit_factor, use_reentrant=False
                )
            else:
                tokens = block(tokens, c, enc.rope, enc.logit_factor)
        return self.unpatchify(self.final_layer(tokens, c), grid)
