"""The samplers drive the real DiT: every step's t reaches the positional encoding (DyPE)."""

import torch

from lit_rpe.models import DiT
from lit_rpe.objectives.flow import sample_ode, seeded_noise
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.guidance import guided_velocity


def tiny_model():
    torch.manual_seed(0)
    model = DiT.from_name("DiT-N/2", input_size=16, in_channels=3, num_classes=4, encoder="rope")
    with torch.no_grad():  # leave adaLN-Zero's all-zero start, as a trained model has
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_seeded_guided_dype_sampling_is_reproducible_per_sample():
    model = tiny_model()
    rule = InferenceRule("dype_ntk", timestep_shift=2.0)
    seeds, labels = [3, 4, 5], torch.tensor([0, 1, 2])

    def sample(idx):
        noise = seeded_noise([seeds[i] for i in idx], (3, 32, 32))
        v = guided_velocity(model, labels[idx], num_classes=4, cfg_scale=2.0, rule=rule)
        return sample_ode(v, noise, steps=4, method="heun", shift=2.0)

    together = sample([0, 1, 2])
    alone = sample([1])
    torch.testing.assert_close(together[1:2], alone, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(together).all()


def rule_times_seen(model, rule: str, steps: int) -> list[float]:
    """The ``rule_t`` of every forward of an Euler sampling of ``model`` under ``rule``."""
    seen = []
    forward = model.forward

    def spy(*args, **kwargs):
        seen.append(kwargs["rule_t"])
        return forward(*args, **kwargs)

    model.forward = spy
    v = guided_velocity(model, torch.tensor([1]), num_classes=4, rule=InferenceRule(rule))
    sample_ode(v, seeded_noise([0], (3, 32, 32)), steps=steps, method="euler")
    model.forward = forward
    return seen


def test_dype_rule_sees_every_step_time():
    model = tiny_model()
    forward = model.forward
    seen = rule_times_seen(model, "dype_yarn", steps=5)
    torch.testing.assert_close(torch.tensor(seen), torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2]))
    # The encoding really changes with t: DyPE at t = 1 and t = 0.2 give different outputs.
    x = seeded_noise([1], (3, 32, 32))
    with torch.no_grad():
        out_1 = forward(
            x, torch.ones(1), torch.tensor([1]), rule=InferenceRule("dype_yarn"), rule_t=1.0
        )
        out_2 = forward(
            x, torch.ones(1), torch.tensor([1]), rule=InferenceRule("dype_yarn"), rule_t=0.2
        )
    assert (out_1 - out_2).abs().max() > 1e-5


def test_tasr_rule_follows_the_step_time_through_its_switch():
    model = tiny_model()
    forward = model.forward
    assert rule_times_seen(model, "tasr", steps=4) == [1.0, 0.75, 0.5, 0.25]
    x = seeded_noise([1], (3, 32, 32))

    def out(t):
        with torch.no_grad():
            return forward(
                x, torch.ones(1), torch.tensor([1]), rule=InferenceRule("tasr"), rule_t=t
            )

    # PI while 1 - t < 0.3, Lumina's base change after: one encoding per phase
    torch.testing.assert_close(out(0.9), out(0.8), rtol=0, atol=0)
    torch.testing.assert_close(out(0.5), out(0.1), rtol=0, atol=0)
    assert (out(0.9) - out(0.5)).abs().max() > 1e-5
