"""``SDVAE``: a frozen Stable-Diffusion-style ``AutoencoderKL`` from a local folder.

Latent space for the DiT: images (B, 3, H, W) in [-1, 1] become latents (B, 4, H/8, W/8) times
the scale factor (0.18215 for the SD VAE, read from the folder's ``config.json``). The folder is
what ``AutoencoderKL.save_pretrained`` writes (``config.json`` and
``diffusion_pytorch_model.safetensors`` or ``.bin``), e.g. a downloaded ``sd-vae-ft-ema`` or the
``vae/`` folder of a Stable Diffusion checkpoint. It is only ever read locally.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torch import nn

from lit_rpe.provenance import file_sha256

WEIGHT_FILES = {
    "diffusion_pytorch_model.safetensors": None,
    "diffusion_pytorch_model.bin": None,
    "diffusion_pytorch_model.fp16.safetensors": "fp16",
    "diffusion_pytorch_model.fp16.bin": "fp16",
}


def _vae_files(path: str | os.PathLike) -> tuple[Path, str, str | None]:
    """(folder, weight file name, variant) of the VAE at ``path`` or ``path/vae``: the file
    ``AutoencoderKL.from_pretrained`` loads there (safetensors before bin, as diffusers does).

    Raises ``FileNotFoundError`` describing the expected layout when neither has one."""
    root = Path(path).expanduser()
    for folder in (root, root / "vae"):
        if (folder / "config.json").is_file():
            for name, variant in WEIGHT_FILES.items():
                if (folder / name).is_file():
                    return folder, name, variant
    raise FileNotFoundError(
        f"no VAE found at {root}: expected a folder (or its vae/ sub-folder) with config.json and "
        "diffusion_pytorch_model.safetensors (or diffusion_pytorch_model.bin), as written by "
        "AutoencoderKL.save_pretrained, e.g. a local copy of stabilityai/sd-vae-ft-ema. "
        "Nothing is downloaded."
    )


def resolve_vae_folder(path: str | os.PathLike) -> tuple[Path, str | None]:
    """The folder holding the VAE (``path`` or ``path/vae``) and its weight variant.

    Raises ``FileNotFoundError`` describing the expected layout when neither has one."""
    folder, _, variant = _vae_files(path)
    return folder, variant


@dataclass(frozen=True)
class VAEFingerprint:
    """What identifies a VAE folder's decoder for a protocol card: ``folder`` (as resolved),
    ``weights_sha256`` (sha256 of the weight file that is loaded) and ``scale_factor`` (the
    latent scale ``SDVAE`` uses: the config's ``scaling_factor``)."""

    folder: str
    weights_sha256: str
    scale_factor: float


def vae_fingerprint(path: str | os.PathLike) -> VAEFingerprint:
    """The ``VAEFingerprint`` of the VAE at ``path``, read without loading the model; the hash
    is computed once per weight file and process (``lit_rpe.provenance.file_sha256``)."""
    folder, name, _ = _vae_files(path)
    config = json.loads((folder / "config.json").read_text())
    # A config without the key gets AutoencoderKL's own default, as from_pretrained does.
    default = inspect.signature(AutoencoderKL.__init__).parameters["scaling_factor"].default
    return VAEFingerprint(
        folder=str(folder),
        weights_sha256=file_sha256(folder / name),
        scale_factor=float(config.get("scaling_factor", default)),
    )


class SDVAE(nn.Module):
    """Frozen VAE wrapper: ``encode`` pixels -> scaled latents, ``decode`` back.

    Args:
        source: a local folder (see ``resolve_vae_folder``) or an ``AutoencoderKL`` instance.
        scale_factor: latent scale; default the config's ``scaling_factor`` (0.18215 for SD).
        sample: encode with a posterior sample (DiT's choice) instead of its mean.
        dtype: parameter dtype when loading from a folder.

    Attributes ``downsample`` (pixels per latent cell, 8 for SD) and ``latent_channels``."""

    def __init__(
        self,
        source: str | os.PathLike | AutoencoderKL,
        scale_factor: float | None = None,
        sample: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if isinstance(source, AutoencoderKL):
            autoencoder = source
        else:
            folder, variant = resolve_vae_folder(source)
            autoencoder = AutoencoderKL.from_pretrained(
                str(folder),
                local_files_only=True,
                torch_dtype=dtype,
                variant=variant,
                low_cpu_mem_usage=False,  # without `accelerate` diffusers would warn and do this
            )
        self.autoencoder = autoencoder.eval().requires_grad_(False)
        config = autoencoder.config
        self.scale_factor = float(config.scaling_factor if scale_factor is None else scale_factor)
        self.sample = sample
        self.downsample = 2 ** (len(config.block_out_channels) - 1)
        self.latent_channels = int(config.latent_channels)

    def train(self, mode: bool = True) -> SDVAE:
        """Stays in eval mode whatever the parent module does (frozen statistics)."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    @torch.no_grad()
    def encode(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> (B, latent_channels, H/downsample, W/downsample) float32,
        multiplied by ``scale_factor``. H and W must be multiples of ``downsample``."""
        if images.shape[-2] % self.downsample or images.shape[-1] % self.downsample:
            raise ValueError(
                f"image size {tuple(images.shape[-2:])} is not a multiple of {self.downsample}"
            )
        dtype = next(self.autoencoder.parameters()).dtype
        posterior = self.autoencoder.encode(images.to(dtype)).latent_dist
        latents = posterior.sample(generator) if self.sample else posterior.mode()
        return latents.float() * self.scale_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, h, w) -> images (B, 3, h*downsample, w*downsample) float32,
        clamped to [-1, 1]."""
        dtype = next(self.autoencoder.parameters()).dtype
        images = self.autoencoder.decode((latents / self.scale_factor).to(dtype)).sample
        return images.float().clamp_(-1.0, 1.0)
