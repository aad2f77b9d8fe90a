"""The sampler interface: one policy for seeds and labels, one resolution check with a typed
"cannot run here" error, one sample method for every model, a VAE outside the checkpoints."""

from __future__ import annotations

import pytest
import torch

from lit_rpe.official.model import OfficialModel
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.sampler import (
    RuleNotApplicable,
    Sampler,
    check_rule,
    seeds_and_labels,
    token_grid,
)
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.config import NetConfig
from lit_rpe.training.module import DiffusionModule


def test_seed_indexed_policy():
    labels, seeds = seeds_and_labels([0, 1, 5, 12], seed=100, num_classes=5)
    assert labels == [0, 1, 0, 2] and seeds == [100, 101, 105, 112]


def test_bad_resolution_is_a_plain_error_and_a_rule_that_cannot_run_is_typed():
    assert token_grid((64, 32), latent_factor=8, patch_size=2) == (4, 2)
    with pytest.raises(ValueError, match="does not divide the patch grid") as err:
        token_grid(72, latent_factor=8, patch_size=2)
    assert not isinstance(err.value, RuleNotApplicable)
    with pytest.raises(RuleNotApplicable, match=r"max_len \(4, 4\).*at most 64x64 px"):
        check_rule(InferenceRule("rpe2d_even"), (8, 8), max_len=(4, 4), step=16)
    check_rule(InferenceRule("ntk"), (8, 8), max_len=(4, 4), step=16)  # a grid rule: no limit


def test_both_models_share_the_interface_methods():
    for cls in (DiffusionModule, OfficialModel):
        assert Sampler in cls.__mro__
        for name in ("sample", "sample_latents", "sampling_start", "decode", "sampler_options"):
            assert name in vars(Sampler) and name not in vars(cls), (cls, name)
    assert DiffusionModule.supports_validation_loss and not OfficialModel.supports_validation_loss


def test_the_vae_is_loaded_on_use_and_never_saved(vae_folder):
    torch.manual_seed(0)
    module = DiffusionModule(
        net=NetConfig(name="DiT-N/2"),
        resolution=32,
        num_classes=3,
        vae_path=str(vae_folder),
        sampling=SamplerSettings(steps=1, method="euler"),
    ).eval()
    images = module.sample([0, 1], [3, 4], resolution=(64, 32))
    assert images.shape == (2, 3, 64, 32)
    latents = module.sample_latents([1], [4], resolution=(64, 32))
    assert latents.shape == (1, 4, 8, 4)
    torch.testing.assert_close(module.decode(latents).clamp(-1, 1), images[1:])
    assert {k.split(".")[0] for k in module.state_dict()} == {"net", "ema"}
