"""DiT backbone at any resolution with every positional-encoding strategy (issue 3)."""

import itertools

import pytest
import torch

from lit_rpe.models import DiT, parse_model_name
from lit_rpe.posenc import INFERENCE_RULES, InferenceRule

TRAIN_PX = 16  # pixel-space toy model: 16 px, patch 2 -> 8 x 8 training grid
RESOLUTIONS = [(8, 12), (16, 16), (32, 24)]  # below, at and above the training grid; 2 non-square


def tiny(encoder="rope", positions="grid", **kw):
    torch.manual_seed(0)
    return DiT.from_name(
        "DiT-N/2",
        input_size=TRAIN_PX,
        in_channels=3,
        num_classes=5,
        encoder=encoder,
        train_positions=positions,
        **kw,
    )


def perturb_zero_init(model, std=0.02):
    """adaLN-Zero starts with zero gates and output: give every weight a value, as training does."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))


def batch(h, w, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(n, 3, h, w, generator=g),
        torch.rand(n, generator=g),
        torch.tensor([1, 3][:n]),
    )


def rule_is_valid(model, rule, h, w):
    grid = model.token_grid(h, w)
    needs_range = rule in ("rpe2d_even", "rpe2d_random")
    return not needs_range or all(n <= m for n, m in zip(grid, model.max_len, strict=True))


@pytest.mark.parametrize(
    "encoder,positions", list(itertools.product(["sincos", "rope"], ["grid", "rpe2d"]))
)
def test_training_step_reaches_every_parameter(encoder, positions):
    model = tiny(encoder, positions, micro_conditioning=True, qk_norm=True)
    perturb_zero_init(model)
    model.train()
    for h, w in RESOLUTIONS:
        model.zero_grad()
        x, t, y = batch(h, w)
        pos_h, pos_w = model.draw_positions(
            2, model.token_grid(h, w), generator=torch.Generator().manual_seed(0)
        )
        box = torch.tensor([[0.1, 0.2, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0]])
        out = model(x, t, y, pos_h=pos_h, pos_w=pos_w, box=box)
        assert out.shape == x.shape
        out.square().mean().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


@pytest.mark.parametrize(
    "encoder,positions", list(itertools.product(["sincos", "rope"], ["grid", "rpe2d"]))
)
def test_every_inference_rule_at_every_resolution(encoder, positions):
    model = tiny(encoder, positions)
    perturb_zero_init(model)
    for rule_name, (h, w) in itertools.product(INFERENCE_RULES, RESOLUTIONS):
        rule = InferenceRule(rule_name)
        x, t, y = batch(h, w)
        grid = model.token_grid(h, w)
        if not rule_is_valid(model, rule_name, h, w):
            with pytest.raises(ValueError, match="max_len"):
                model.rule_positions(rule, 2, grid, seeds=[0, 1])
            continue
        pos_h, pos_w = model.rule_positions(rule, 2, grid, seeds=[0, 1])
        x.requires_grad_(True)
        out = model(x, t, y, pos_h=pos_h, pos_w=pos_w, rule=rule, rule_t=0.6)
        assert out.shape == x.shape and torch.isfinite(out).all()
        out.sum().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_rope_output_invariant_to_position_shift_and_sensitive_to_order():
    model = tiny("rope").eval()
    perturb_zero_init(model)
    x, t, y = batch(16, 24)
    pos_h, pos_w = model.rule_positions(InferenceRule("extrapolate"), 2, (8, 12))
    with torch.no_grad():
        ref = model(x, t, y, pos_h=pos_h, pos_w=pos_w)
        shifted = model(x, t, y, pos_h=pos_h + 5.0, pos_w=pos_w + 11.5)
        swapped = model(x, t, y, pos_h=pos_h, pos_w=pos_w[:, [1, 0, *range(2, 12)]])
    torch.testing.assert_close(shifted, ref, atol=2e-6, rtol=1e-5)  # float32 rounding: ~1e-7
    assert (swapped - ref).abs().max() > 1e-5  # a real change, far above the rounding


def test_fresh_micro_conditioning_changes_nothing():
    plain = tiny("rope", "rpe2d")
    perturb_zero_init(plain)
    micro = tiny("rope", "rpe2d", micro_conditioning=True)
    missing, unexpected = micro.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith("micro_embedder.") for k in missing) and not unexpected
    plain.eval(), micro.eval()
    x, t, y = batch(16, 16)
    box = torch.tensor([[0.3, 0.1, 0.6, 0.6], [0.0, 0.2, 0.8, 0.8]])
    with torch.no_grad():
        torch.testing.assert_close(micro(x, t, y, box=box), plain(x, t, y))


def test_activation_checkpointing_matches_plain_forward_and_backward():
    model = tiny("rope")
    perturb_zero_init(model)
    model.eval()  # no label dropout: both passes see the same labels
    x, t, y = batch(16, 16)
    model(x, t, y).square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.checkpointing = True
    model(x, t, y).square().sum().backward()
    for g, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g)


def test_attention_scale_addon_changes_logits_only_when_asked():
    model = tiny("rope").eval()
    perturb_zero_init(model, std=0.2)
    x, t, y = batch(32, 32)
    with torch.no_grad():
        plain = model(x, t, y, rule=InferenceRule("ntk"))
        prop = model(x, t, y, rule=InferenceRule("ntk", attention_scale="proportional"))
    assert (plain - prop).abs().max() > 1e-4


def test_model_holds_no_resolution_state():
    model = tiny("sincos")
    assert list(model.buffers()) == []
    assert not any("pos" in name for name, _ in model.named_parameters())


def test_state_dict_follows_official_dit_layout():
    """Keys and shapes of the official DiT-XL/2 (256 px, learned sigma), minus its pos_embed."""
    with torch.device("meta"):
        model = DiT.from_name("DiT-XL/2", input_size=32, learn_sigma=True)
    d = 1152
    expected = {
        "x_embedder.proj.weight": (d, 4, 2, 2),
        "x_embedder.proj.bias": (d,),
        "t_embedder.mlp.0.weight": (d, 256),
        "t_embedder.mlp.0.bias": (d,),
        "t_embedder.mlp.2.weight": (d, d),
        "t_embedder.mlp.2.bias": (d,),
        "y_embedder.embedding_table.weight": (1001, d),
        "final_layer.linear.weight": (2 * 2 * 8, d),
        "final_layer.linear.bias": (32,),
        "final_layer.adaLN_modulation.1.weight": (2 * d, d),
        "final_layer.adaLN_modulation.1.bias": (2 * d,),
    }
    for i in range(28):
        for name, shape in {
            "attn.qkv.weight": (3 * d, d),
            "attn.qkv.bias": (3 * d,),
            "attn.proj.weight": (d, d),
            "attn.proj.bias": (d,),
            "mlp.fc1.weight": (4 * d, d),
            "mlp.fc1.bias": (4 * d,),
            "mlp.fc2.weight": (d, 4 * d),
            "mlp.fc2.bias": (d,),
            "adaLN_modulation.1.weight": (6 * d, d),
            "adaLN_modulation.1.bias": (6 * d,),
        }.items():
            expected[f"blocks.{i}.{name}"] = shape
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected


def test_parameter_counts_of_paper_sizes():
    # DiT paper, Table 1 / released models: XL/2 675M, L/2 458M, B/2 130M, S/2 33M (learned sigma)
    for name, millions in [("DiT-XL/2", 675), ("DiT-L/2", 458), ("DiT-B/2", 130), ("DiT-S/2", 33)]:
        with torch.device("meta"):
            model = DiT.from_name(name, input_size=32, learn_sigma=True)
        assert round(sum(p.numel() for p in model.parameters()) / 1e6) == millions


def test_bad_input_messages():
    model = tiny()
    with pytest.raises(ValueError, match="does not divide into 2x2 patches"):
        model(torch.randn(1, 3, 15, 16), torch.rand(1), torch.tensor([0]))
    with pytest.raises(ValueError, match="positions must be"):
        model(
            torch.randn(1, 3, 16, 16),
            torch.rand(1),
            torch.tensor([0]),
            pos_h=torch.zeros(1, 7),
            pos_w=torch.zeros(1, 8),
        )
    with pytest.raises(ValueError, match="needs the sampling time t"):
        model(
            torch.randn(1, 3, 32, 32),
            torch.rand(1),
            torch.tensor([0]),
            rule=InferenceRule("dype_ntk"),
        )
    with pytest.raises(ValueError, match="unknown model 'DiT-M/2'"):
        parse_model_name("DiT-M/2")
    with pytest.raises(ValueError, match="not divisible by patch_size"):
        DiT.from_name("DiT-N/4", input_size=18)
    assert (
        parse_model_name("DiT-XL/2")["depth"] == 28
        and parse_model_name("DiT-S/8")["patch_size"] == 8
    )


def test_per_axis_tau_changes_non_square_outputs_only():
    model = tiny("rope").eval()
    perturb_zero_init(model)
    per_axis, coupled = InferenceRule("yarn"), InferenceRule("yarn", tau_axes="max")
    for (h, w), same in (((32, 32), True), ((16, 32), False), ((32, 64), False)):
        x, t, y = batch(h, w)
        with torch.no_grad():
            a, b = model(x, t, y, rule=per_axis), model(x, t, y, rule=coupled)
        assert torch.equal(a, b) == same, (h, w)
