"""Fixtures shared across tests/ (helpers in data_fixtures.py / eval_fixtures.py, which
pyproject's ``pythonpath`` makes importable from every test folder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_fixtures import write_shard_set


@pytest.fixture
def shard_set(tmp_path: Path) -> list[str]:
    """3 shards x 32 samples of 24x20 PNGs, 4 classes."""
    return write_shard_set(tmp_path / "shards", num_shards=3, per_shard=32)


def tiny_autoencoder():
    """SD layout (4 latent channels, factor 8) with few channels and random weights."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
    )


@pytest.fixture(scope="session")
def vae_folder(tmp_path_factory) -> Path:
    """A tiny random SD-VAE saved as ``<checkpoint>/vae`` (the layout of an SD checkpoint)."""
    folder = tmp_path_factory.mktemp("sd") / "vae"
    tiny_autoencoder().save_pretrained(folder)
    return folder
