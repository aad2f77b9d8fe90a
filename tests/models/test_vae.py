"""SDVAE from a local folder (a random tiny AutoencoderKL, the ``vae_folder`` fixture)."""

from __future__ import annotations

import json

import pytest
import torch

from lit_rpe.models.vae import SDVAE


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
