"""Precomputed latents: image shards -> latent shards that feed the data module."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch

from lit_rpe.models.vae import SDVAE
from lit_rpe.prep.precompute_latents import precompute_latents, prepare_image
from lit_rpe.training.data import ImageShardDataModule, iter_tar_samples


def test_precomputed_latents_feed_the_data_module(vae_folder, shard_set, tmp_path):
    vae = SDVAE(vae_folder)
    out = tmp_path / "latents"
    summary = precompute_latents(
        shard_set, out, vae, resolution=16, zoom=1.5, flip=True, batch_size=16, progress=False
    )
    assert summary.samples == 96 and summary.written == 3 and not summary.unreadable
    assert json.loads((out / "classes.json").read_text()) == {f"class{c}": c for c in range(4)}
    stored = next(iter_tar_samples(out / "shard-000000.tar"))
    latent = np.load(io.BytesIO(stored.fields["latent.npy"]))
    # 24x20 image covering 24x24 -> 29x24, trimmed to 24x24 -> 3x3 latent cells
    assert latent.shape == (4, 3, 3) and latent.dtype == np.float16
    source = next(iter_tar_samples(shard_set[0]))
    picture = prepare_image(source.fields["png"], (16, 16), 1.5, 8)
    expected = vae.encode(
        torch.from_numpy(picture.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    )[0]
    assert np.allclose(latent, expected.numpy(), atol=2e-3)
    assert "latent_flip.npy" in stored.fields and stored.fields["cls"] == source.fields["cls"]

    dm = ImageShardDataModule(
        str(out),
        str(out),
        resolution=16,
        batch_size=8,
        num_workers=0,
        precomputed_latents=True,
        shuffle_buffer=8,
    )
    dm.setup()
    assert dm.yields_latents and dm.latent_downsample == 8 and dm.num_classes == 4
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 4, 2, 2) and batch["image"].dtype == torch.float32
    assert torch.allclose(batch["box"][:, 2:], torch.full((8, 2), 2 / 3))  # 2 of 3 latent cells
    val = next(iter(dm.val_dataloader()))
    assert torch.allclose(val["box"], torch.tensor([0.0, 0.0, 2 / 3, 2 / 3]).expand(8, 4))
    with pytest.raises(ValueError, match="multiple of the latent"):
        ImageShardDataModule(str(out), resolution=20, precomputed_latents=True).setup()
