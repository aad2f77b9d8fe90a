"""SDVAE from a local folder (random tiny AutoencoderKL) and the precomputed-latent path."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL

from lit_rpe.data import ImageShardDataModule, iter_tar_samples
from lit_rpe.data.precompute_latents import precompute_latents, prepare_image
from lit_rpe.data.vae import SDVAE


def tiny_autoencoder() -> AutoencoderKL:
    """SD layout (4 latent channels, factor 8) with few channels and random weights."""
    torch.manual_seed(0)
    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
    )


@pytest.fixture(scope="module")
def vae_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd") / "vae"  # the vae/ folder of an SD checkpoint
    tiny_autoencoder().save_pretrained(folder)
    return folder


def test_encode_decode_shapes_and_scale(vae_folder):
    vae = SDVAE(vae_folder)
    assert (
        vae.downsample == 8
        and vae.latent_channels == 4
        and vae.scale_factor == pytest.approx(0.18215)
    )
    assert SDVAE(vae_folder.parent).downsample == 8  # the checkpoint root works too
    images = torch.rand(2, 3, 32, 48) * 2 - 1
    latents = vae.encode(images)
    assert latents.shape == (2, 4, 4, 6) and latents.dtype == torch.float32
    raw = vae.autoencoder.encode(images).latent_dist.mode()
    assert torch.allclose(latents, raw * 0.18215, atol=1e-6)
    decoded = vae.decode(latents)
    assert decoded.shape == (2, 3, 32, 48) and decoded.min() >= -1 and decoded.max() <= 1
    sampled = SDVAE(vae_folder, sample=True)
    a = sampled.encode(images, generator=torch.Generator().manual_seed(1))
    b = sampled.encode(images, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, latents)
    with pytest.raises(ValueError, match="multiple of 8"):
        vae.encode(torch.zeros(1, 3, 30, 32))
    vae.train()
    assert not vae.autoencoder.training and not any(p.requires_grad for p in vae.parameters())


def test_missing_folder_explains_the_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        SDVAE(tmp_path / "nowhere")
    message = str(info.value)
    assert "config.json" in message and "diffusion_pytorch_model.safetensors" in message
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text(json.dumps({}))
    with pytest.raises(FileNotFoundError, match="half"):
        SDVAE(tmp_path / "half")


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
