"""The validation protocol: per-image noise from the key, fixed times, any batch."""

import pytest
import torch

from lit_rpe.models import DiT
from lit_rpe.objectives.flow.loss import flow_matching_losses
from lit_rpe.objectives.flow.noise import seeded_noise
from lit_rpe.objectives.flow.validation_protocol import key_seed, t_grid, validation_losses
from lit_rpe.posenc import InferenceRule


def test_t_grid_is_the_bin_midpoints():
    torch.testing.assert_close(t_grid(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))
    with pytest.raises(ValueError, match="num_t"):
        t_grid(0)


def test_key_seed_depends_on_seed_and_key_only():
    assert key_seed(0, "a") == key_seed(0, "a") != key_seed(1, "a")
    assert key_seed(0, "a") != key_seed(0, "b") and 0 <= key_seed(3, "x") < 2**31


def test_an_image_loss_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    net = DiT.from_name("DiT-N/2", input_size=8, in_channels=3, num_classes=4).eval()
    x0 = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels, keys = torch.tensor([0, 1, 2]), ["a", "b", "c"]
    rule = InferenceRule("extrapolate")
    batch = validation_losses(net, x0, labels, keys, rule=rule, grid=(4, 4), seed=5, num_t=2)
    alone = validation_losses(
        net, x0[1:2], labels[1:2], ["b"], rule=rule, grid=(4, 4), seed=5, num_t=2
    )
    assert batch.shape == (2, 3)
    torch.testing.assert_close(batch[:, 1:2], alone, rtol=1e-5, atol=1e-6)
    # row j is the loss at t_grid[j] with the image's own noise
    noise = seeded_noise([key_seed(5, "c")], (3, 8, 8))
    t = torch.full((1,), 0.75)
    expected = flow_matching_losses(net, x0[2:], noise, t, labels[2:], rule=rule, rule_t=0.75)
    torch.testing.assert_close(batch[1, 2:], expected, rtol=1e-5, atol=1e-6)
