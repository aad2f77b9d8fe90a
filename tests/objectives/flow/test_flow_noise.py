"""Seeded noise: a sample depends on its own seed only, never on its batch."""

import torch

from lit_rpe.objectives.flow import sample_ode, seeded_noise
from lit_rpe.sampling.guidance import guided_velocity

SEEDS = [11, 5, 123456789, 0]
SHAPE = (4, 8, 8)


def test_row_in_batch_equals_row_alone():
    batch = seeded_noise(SEEDS, SHAPE)
    assert batch.shape == (len(SEEDS), *SHAPE)
    for i, seed in enumerate(SEEDS):
        assert torch.equal(batch[i], seeded_noise([seed], SHAPE)[0])


def test_split_across_processes_matches_one_batch():
    # What a 2-process run does: each rank takes a slice of the seed list.
    whole = seeded_noise(SEEDS, SHAPE)
    parts = torch.cat([seeded_noise(SEEDS[:1], SHAPE), seeded_noise(SEEDS[1:], SHAPE)])
    assert torch.equal(whole, parts)


def test_seeds_as_tensor_dtype_cast_and_distinct_rows():
    a = seeded_noise(torch.tensor(SEEDS), SHAPE, dtype=torch.float64)
    b = seeded_noise(SEEDS, SHAPE)
    assert a.dtype == torch.float64
    assert torch.equal(a, b.double())  # same draw whatever the requested dtype
    assert not torch.equal(b[0], b[1])
    assert seeded_noise([], SHAPE).shape == (0, *SHAPE)


def toy_model(x, t, y, *, rule_t, scale):
    """Elementwise, so the output of a row cannot depend on the other rows."""
    return x * (1 + y.view(-1, 1, 1, 1)) * scale.view(-1, 1, 1, 1) - t.view(-1, 1, 1, 1)


def test_sampled_image_is_the_same_alone_or_in_a_batch():
    y = torch.tensor([3, 0, 7, 1])
    scale = torch.tensor([0.5, 1.0, 2.0, 1.5])

    def generate(idx):
        velocity = guided_velocity(
            toy_model, y[idx], num_classes=10, cfg_scale=2.0, interval=(0.2, 0.8), scale=scale[idx]
        )
        noise = seeded_noise([SEEDS[i] for i in idx], SHAPE)
        return sample_ode(velocity, noise, steps=6, method="heun", shift=2.0)

    batch = generate([0, 1, 2, 3])
    for i in range(4):
        assert torch.equal(batch[i], generate([i])[0])
