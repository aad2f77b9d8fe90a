"""One sampler-settings type: unset fields come from the settings beneath, wrong ones are named."""

import pytest
import torch

from lit_rpe.models.dit import DiT
from lit_rpe.official.model import OfficialModel
from lit_rpe.sampling.settings import FLOW_SAMPLING, OFFICIAL_SAMPLING, SamplerSettings
from lit_rpe.training.config import NetConfig
from lit_rpe.training.module import DiffusionModule


def test_unset_fields_come_from_beneath_and_set_ones_win():
    grid = SamplerSettings(steps=5, cfg_scale=0.0)  # a cfg_scale of 0 is a setting
    merged = grid.over(FLOW_SAMPLING)
    assert merged == SamplerSettings("heun", 5, 0.0, None, "all", 0.0)
    assert grid.overrides() == {"steps": 5, "cfg_scale": 0.0}
    assert SamplerSettings().over(OFFICIAL_SAMPLING["dit"]) == OFFICIAL_SAMPLING["dit"]


def test_yaml_mappings_are_checked_field_by_field():
    settings = SamplerSettings.of({"method": "ddim", "guidance_interval": [0.1, 0.9]})
    assert settings.guidance_interval == (0.1, 0.9) and settings.method == "ddim"
    assert SamplerSettings.of(None) == SamplerSettings()


@pytest.mark.parametrize(
    "value, message",
    [
        ({"sampler": "heun"}, "unknown sampler setting(s) ['sampler']; valid: method, steps"),
        (
            {"method": "dpm"},
            "unknown sampler method 'dpm'; valid: euler, heun, dopri5, sde, ddpm, ddim",
        ),
        ({"steps": 0}, "sampler steps must be an integer >= 1, got 0"),
        ({"cfg_channels": "first3"}, "unknown cfg_channels 'first3'; valid: all, dit"),
        ({"guidance_interval": [0.9, 0.1]}, "t_lo <= t_hi"),
        ({"ddim_eta": -1.0}, "ddim_eta must be >= 0"),
        (
            {"rule": "ntk", "tau_axes": "max"},
            "sampling.rule, sampling.tau_axes moved to model.rule",
        ),
    ],
)
def test_wrong_settings_name_the_field_and_the_valid_values(value, message):
    with pytest.raises(ValueError) as err:
        SamplerSettings.of(value)
    assert message in str(err.value)


def test_trained_modules_and_official_files_fill_their_own_defaults():
    module = DiffusionModule(
        net=NetConfig(name="DiT-N/2"), resolution=16, num_classes=3, sampling={"steps": 3}
    )
    assert module.sampling_config == SamplerSettings("heun", 3, 1.0, None, "all", 0.0)
    assert module.sampler_options(cfg_scale=2.0).cfg_scale == 2.0
    with pytest.raises(ValueError, match="does not integrate flow matching; valid: euler, heun"):
        DiffusionModule(net=NetConfig(name="DiT-N/2"), resolution=16, sampling={"method": "ddpm"})
    torch.manual_seed(0)
    net = DiT.from_name(
        "DiT-N/2", input_size=4, in_channels=4, num_classes=3, learn_sigma=True, time_scale=1.0
    )
    dit = OfficialModel(net, "dit", steps=10)
    assert dit.sampling_config == SamplerSettings("ddpm", 10, 1.5, None, "dit", 0.0)
