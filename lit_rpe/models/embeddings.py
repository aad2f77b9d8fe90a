"""Conditioning embedders: timestep, class label (with a null class) and micro-conditioning.

Parameter names follow the official DiT ``models.py`` (``mlp.0``, ``mlp.2``, ``embedding_table``)
so that its checkpoints load without renaming.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(
    values: torch.Tensor, dim: int, max_period: float = 10000.0
) -> torch.Tensor:
    """GLIDE/DiT sinusoidal embedding of scalars: (N,) -> (N, dim), ``[cos | sin]`` halves."""
    half = dim // 2
    dtype = torch.promote_types(values.dtype, torch.float32)  # at least float32, float64 kept
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=dtype, device=values.device) / half
    )
    args = values.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Scalar time (B,) -> (B, hidden) through a sinusoidal embedding and a 2-layer MLP."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.frequency_embedding_size))


class LabelEmbedder(nn.Module):
    """Class label (B,) -> (B, hidden). Row ``num_classes`` is the null class used by
    classifier-free guidance; during training labels are replaced by it with ``dropout_prob``."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)

    def forward(self, labels: torch.Tensor, train: bool) -> torch.Tensor:
        if train and self.dropout_prob > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        return self.embedding_table(labels)


class MicroConditionEmbedder(nn.Module):
    """RPE-2D crop box (B, 4) = (top, left, height, width) in [0, 1] -> (B, hidden).

    Each number is embedded like a timestep (times 1000), the four are concatenated and mapped
    through an MLP whose last layer starts at zero, so a fresh embedder changes nothing.
    """

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.frequency_embedding_size = frequency_embedding_size
        self.mlp = nn.Sequential(
            nn.Linear(4 * frequency_embedding_size, hidden_size),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.mlp[0].weight, std=0.02)
        nn.init.zeros_(self.mlp[0].bias)
        nn.init.zeros_(self.mlp[2].weight)  # zero last layer: a fresh embedder adds nothing
        nn.init.zeros_(self.mlp[2].bias)

    def forward(self, box: torch.Tensor) -> torch.Tensor:
        if box.ndim != 2 or box.shape[1] != 4:
            raise ValueError(
                f"box must be (B, 4) = (top, left, height, width), got {tuple(box.shape)}"
            )
        emb = sinusoidal_embedding(box.reshape(-1) * 1000, self.frequency_embedding_size)
        return self.mlp(emb.reshape(box.shape[0], -1))
