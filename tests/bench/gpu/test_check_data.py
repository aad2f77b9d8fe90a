"""The GPU check's synthetic inputs: latent shards the real data module streams, a random VAE
with the SD-VAE's shape."""

import io

import numpy as np
import pytest
import torch

from bench.gpu.check_data import LatentSampleMaker, write_latent_shards, write_random_vae
from lit_rpe.training.data import ImageShardDataModule


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("latents")
    write_latent_shards(root / "train", num_samples=24, resolution=64, num_classes=10, shard_size=8)
    return root / "train"


def test_latent_shards_stream_through_the_data_module(shards):
    dm = ImageShardDataModule(
        str(shards), resolution=64, batch_size=4, num_workers=0, precomputed_latents=True
    )
    dm.setup("fit")
    assert dm.num_classes == 10 and dm.latent_downsample == 8
    batches = list(dm.train_dataloader())
    assert len(batches) == 6  # 24 samples / 4
    batch = batches[0]
    assert batch["image"].shape == (4, 4, 8, 8) and batch["image"].dtype == torch.float32
    assert batch["label"].min() >= 0 and batch["label"].max() < 10
    assert int(sum(b["corrupt"].sum() for b in batches)) == 0


def test_samples_of_a_class_share_its_pattern():
    maker = LatentSampleMaker(side=9, num_classes=3, seed=0)
    latents, labels = [], []
    for index in range(60):
        _, fields = maker(index)
        latents.append(np.load(io.BytesIO(fields["latent.npy"])).astype(np.float64))
        labels.append(int(fields["cls"]))
    latents, labels = np.stack(latents), np.array(labels)
    assert latents.shape == (60, 4, 9, 9)
    means = [latents[labels == c].mean(0) for c in range(3)]
    for c in range(3):  # the class mean is 0.8 x its pattern (noise averages out)
        pattern = 0.8 * maker.pattern(c)
        assert np.corrcoef(means[c].ravel(), pattern.ravel())[0, 1] > 0.9
    assert maker(5)[1] == maker(5)[1]  # a sample depends on its index only


def test_random_vae_folder_loads_as_an_sd_vae(tmp_path):
    from lit_rpe.models.vae import SDVAE

    vae = SDVAE(write_random_vae(tmp_path / "vae", "tiny"))
    assert (vae.downsample, vae.latent_channels, vae.scale_factor) == (8, 4, 0.18215)
    images = vae.decode(torch.randn(1, 4, 8, 8))
    assert images.shape == (1, 3, 64, 64)
    assert images.min() >= -1 and images.max() <= 1


def test_the_sd_architecture_has_the_sd_vae_parameter_count():
    from diffusers import AutoencoderKL

    from bench.gpu.check_data import SCALE_FACTOR, VAE_CONFIGS

    with torch.device("meta"):
        vae = AutoencoderKL(
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            scaling_factor=SCALE_FACTOR,
            **VAE_CONFIGS["sd"],
        )
    # stabilityai/sd-vae-ft-ema: 83,653,863 parameters
    assert sum(p.numel() for p in vae.parameters()) == 83_653_863
