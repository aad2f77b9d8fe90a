"""Images in [-1, 1] -> uint8 arrays, grids and PNG files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def quantize_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) float in [-1, 1] -> (B, C, H, W) uint8 on the same device (ADM's rounding:
    (x + 1) * 127.5), the form the FID Inception and the PNG files take."""
    return ((images.detach().float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) float in [-1, 1] -> (B, H, W, C) uint8 numpy (``quantize_uint8``)."""
    return quantize_uint8(images).cpu().permute(0, 2, 3, 1).numpy()


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile a batch (B, C, H, W) in [-1, 1] into one (rows*(H+pad)+pad, ...) uint8 RGB array."""
    pixels = to_uint8(images)
    b, h, w, c = pixels.shape
    nrow = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i, img in enumerate(pixels):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = img
    return grid


def write_png(grid: np.ndarray, path: str | Path) -> Path:
    """Write a (H, W, C) uint8 array (C = 1 or 3) as a PNG, creating its folder; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.squeeze(-1) if grid.shape[-1] == 1 else grid).save(path)
    return path


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None) -> Path:
    """Write a grid of ``images`` (B, C, H, W) in [-1, 1] as a PNG; returns the path."""
    return write_png(image_grid(images, nrow), path)
