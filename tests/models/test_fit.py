"""Official FiT / FiTv2 files without the official code (issue 25): stored official outputs,
both file formats, every bad-file message, RoPE invariances, every rule at 2x non-square, the
CLI. The comparison with a local clone of the official code is test_fit_reference.py (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lit_rpe.models.fit import FiT
from lit_rpe.official.fit_net import build_fit_net, rope_row_order
from lit_rpe.official.model import load_official
from lit_rpe.posenc import INFERENCE_RULES, InferenceRule, fit_rule
from lit_rpe.sampling.sampler import RuleNotApplicable

CASES = Path(__file__).parent / "data" / "fit_cases.pt"
# The stored cases' tiny official models (test_fit_reference.TINY, ori_max_pe_len 8)
TINY = dict(hidden_size=32, depth=1, num_heads=2, context_size=64, num_classes=10, pe_train_len=8)
VERSIONS = {
    "fitv2": dict(mlp_hidden=85, qk_norm=True, adaln_lora_dim=4),  # (4 * 32 * 2) // 3
    "fitv1": dict(mlp_hidden=128, learn_sigma=True),
}


def official_state(version: str, seed: int = 11, **size) -> dict[str, torch.Tensor]:
    """Random official-layout weights (the official key names are ours; the RoPE channel order
    is FiT's because the file is read as official), drawn as test_fit_reference does."""
    shapes = {
        k: v.shape for k, v in FiT(**{**TINY, **size}, **VERSIONS[version]).state_dict().items()
    }
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shapes[k], generator=gen) * 0.2 for k in sorted(shapes)}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fit")
    out = {}
    for version in VERSIONS:
        state = official_state(version)
        out[version] = folder / f"{version}.safetensors"
        save_file(state, str(out[version]))
        out[version + ".bin"] = folder / f"{version}.bin"
        torch.save(state, out[version + ".bin"])
    return out


def load(path, **kw):
    return build_fit_net(path, num_heads=2, context_size=64, ori_max_pe_len=8, **kw)[0]


@pytest.mark.parametrize("version", list(VERSIONS))
def test_forward_equals_the_stored_official_outputs(files, version):
    """Official outputs of fit_model.py (whlzy/FiT) on the same weights, at 16x16 and 12x24
    latents, plain and with FiT's ntkpro2 / yarn --decouple (tests/models/data/fit_cases.pt)."""
    net = load(files[version])
    case = torch.load(CASES, weights_only=True)[version]
    assert case["seed"] == 11
    for out in case["outputs"]:
        x, t, y = out["x"], out["t"], out["y"]
        rule = fit_rule(out["interpolation"], decouple=True)
        ours = net(x, t, y, rule=rule)
        ref = out["out"] if version == "fitv2" else out["out"].transpose(1, 2)
        grid = (x.shape[2] // 2, x.shape[3] // 2)
        ref = net.unpatchify(ref, grid)
        torch.testing.assert_close(ours, ref, atol=1e-5 * ref.abs().max().item(), rtol=0)


@pytest.mark.parametrize("version", list(VERSIONS))
def test_safetensors_and_bin_files_load_the_same_network(files, version):
    a, b = load(files[version]), load(files[version + ".bin"])
    x, t, y = torch.randn(1, 4, 12, 20), torch.tensor([0.3]), torch.tensor([2])
    torch.testing.assert_close(a(x, t, y), b(x, t, y), atol=0, rtol=0)


def test_a_torch_pickle_named_safetensors_loads_as_the_official_loader_does(files, tmp_path):
    path = tmp_path / "pickle.safetensors"
    path.write_bytes(files["fitv2.bin"].read_bytes())
    x, t, y = torch.randn(1, 4, 8, 8), torch.tensor([0.5]), torch.tensor([1])
    torch.testing.assert_close(load(path)(x, t, y), load(files["fitv2"])(x, t, y))


def test_versions_are_read_from_the_weights(files):
    v1 = load_official(files["fitv1"], "fit", num_heads=2, context_size=64, ori_max_pe_len=8)
    v2 = load_official(files["fitv2"], "fit", num_heads=2, context_size=64, ori_max_pe_len=8)
    assert (v1.kind, v1.sampling_config.method, v1.net.out_channels) == ("dit", "ddpm", 8)
    assert (v2.kind, v2.sampling_config.method, v2.net.out_channels) == ("sit", "dopri5", 4)
    assert v2.sampling_config.steps == 250 and v2.sampling_config.cfg_scale == 1.5
    assert v2.resolution == (128, 128) and v2.net.train_grid == (8, 8)


def test_rope_row_order_is_a_permutation_pairing_fit_channels():
    order = rope_row_order(16)
    assert sorted(order.tolist()) == list(range(16))
    # suite pair (k, k + 4) of the row half is FiT's (2k, 2k + 1); the column half likewise
    assert order[:8].tolist() == [0, 2, 4, 6, 1, 3, 5, 7]
    assert order[8:].tolist() == [8, 10, 12, 14, 9, 11, 13, 15]


def test_extrapolation_depends_on_relative_positions_only(files):
    """No absolute encoding: shifting every position leaves the output unchanged."""
    net = load(files["fitv2"])
    x, t, y = torch.randn(2, 4, 8, 12), torch.tensor([0.2, 0.9]), torch.tensor([0, 3])
    pos_h, pos_w = torch.arange(4.0).expand(2, 4), torch.arange(6.0).expand(2, 6)
    a = net(x, t, y, pos_h=pos_h, pos_w=pos_w)
    b = net(x, t, y, pos_h=pos_h + 5, pos_w=pos_w + 3)
    torch.testing.assert_close(a, b, atol=1e-4 * a.abs().max().item(), rtol=0)


def test_the_official_time_clamp_is_kept_and_can_be_dropped(files):
    clamped, free = load(files["fitv1"]), load(files["fitv1"], clamp_time=False)
    x, y = torch.randn(1, 4, 8, 8), torch.tensor([1])
    torch.testing.assert_close(clamped(x, torch.tensor([500.0]), y), clamped(x, torch.ones(1), y))
    assert (free(x, torch.tensor([500.0]), y) - free(x, torch.ones(1), y)).abs().max() > 1e-3


def _truncated(files, tmp_path):
    path = tmp_path / "short.safetensors"
    data = files["fitv2"].read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _edited(files, tmp_path, edit):
    state = official_state("fitv2")
    edit(state)
    path = tmp_path / "edited.safetensors"
    save_file(state, str(path))
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda f, p: p / "absent.safetensors", "FiT checkpoint not found: .*absent.safetensors"),
        (_truncated, "short.safetensors is not a readable FiT checkpoint .wrong or truncated"),
        (
            lambda f, p: _edited(f, p, lambda s: s.pop("blocks.0.mlp.fc2.weight")),
            "edited.safetensors: missing key 'blocks.0.mlp.fc2.weight'",
        ),
        (
            lambda f, p: _edited(f, p, lambda s: s.update(extra=torch.zeros(1))),
            "edited.safetensors: unexpected key 'extra'",
        ),
        (
            lambda f, p: _edited(
                f, p, lambda s: s.update({"blocks.0.attn.proj.weight": torch.zeros(32, 31)})
            ),
            r"key 'blocks.0.attn.proj.weight' has shape \(32, 31\), .* needs \(32, 32\)",
        ),
        (
            lambda f, p: _edited(
                f, p, lambda s: s.update({"final_layer.linear.weight": torch.zeros(32, 32)})
            ),
            "key 'final_layer.linear.weight' has 8 output channels, but a fitv2 file predicts",
        ),
        (
            lambda f, p: _edited(f, p, lambda s: s.pop("x_embedder.proj.weight")),
            "missing key 'x_embedder.proj.weight'",
        ),
    ],
)
def test_bad_files_fail_with_a_message_naming_file_and_key(files, tmp_path, make, message):
    path = make(files, tmp_path)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_official(path, "fit", num_heads=2, context_size=64, ori_max_pe_len=8)


ADDONS = [
    {"attention_scale": "yarn"},
    {"attention_scale": "proportional"},
    {"attention_scale": "fit_pro1"},
    {"attention_scale": "fit_pro2"},
    {"scaling": "coupled"},
]


@pytest.mark.parametrize("version", list(VERSIONS))
def test_every_rule_runs_at_twice_the_training_size_non_square(files, version):
    """Every suite rule (and the add-ons) at 2x (256 x 128 px for a 128 px model); rpe2d rules
    say they do not apply beyond the trained positions."""
    model = load_official(files[version], "fit", num_heads=2, context_size=64, ori_max_pe_len=8)
    kw = dict(resolution=(256, 128), steps=2, method="euler" if version == "fitv2" else "ddim")
    rules = [InferenceRule(n) for n in INFERENCE_RULES if not n.startswith("rpe2d")]
    rules += [InferenceRule("ntk", **a) for a in ADDONS]
    if version == "fitv2":
        rules.append(InferenceRule("dype_yarn", timestep_shift="auto"))
    outs = {}
    for rule in rules:
        out = model.sample_latents([1], [0], rule=rule, **kw)
        assert out.shape == (1, 4, 32, 16) and torch.isfinite(out).all(), rule
        outs[rule] = out
    assert (outs[rules[0]] - outs[InferenceRule("ntk")]).abs().max() > 1e-4
    with pytest.raises(RuleNotApplicable, match="beyond this model's rpe2d max_len"):
        model.sample_latents([1], [0], rule=InferenceRule("rpe2d_even"), **kw)


def test_hr_files_default_to_the_ntk_rule_they_were_fine_tuned_with(files):
    hr = load_official(files["fitv2"], "fit", num_heads=2, context_size=256, ori_max_pe_len=8)
    assert hr.resolution == (256, 256)
    assert hr.default_rule() == fit_rule("dynntk", decouple=True)


def test_lit_rpe_sample_official_fit_writes_a_grid(tmp_path, files, vae_folder):
    from lit_rpe.training.cli import main

    main(
        [
            "sample",
            "--config",
            "experiments/official_fitv2_xl_256.yaml",
            "--model.net.name=DiT-N/2",
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            f"--ckpt_path={files['fitv2']}",
            "--official=fit",
            "--official_options={num_heads: 2, context_size: 64, ori_max_pe_len: 8}",
            f"--vae_path={vae_folder}",
            "--resolution=[64,128]",
            "--rule={name: ntk, attention_scale: fit_pro2}",
            "--num_images=2",
            "--steps=4",
        ]
    )
    assert (tmp_path / "run" / "samples" / "ntk+attn_fit_pro2_64x128.png").is_file()


def test_dopri5_runs_time_dependent_rules_past_the_solvers_last_stage(files):
    """dopri5's last stages evaluate past t = 0; DyPE and TASR get t clamped to [0, 1]."""
    model = load_official(files["fitv2"], "fit", num_heads=2, context_size=64, ori_max_pe_len=8)
    for rule in (InferenceRule("dype_yarn"), InferenceRule("tasr")):
        out = model.sample_latents([1, 2], [0, 1], resolution=(256, 128), rule=rule, steps=3)
        assert out.shape == (2, 4, 32, 16) and torch.isfinite(out).all()


def test_bf16_autocast_runs_and_stays_close_to_fp32(files):
    net = load(files["fitv2"])
    x, t, y = torch.randn(2, 4, 8, 16), torch.tensor([0.2, 0.7]), torch.tensor([1, 2])
    ref = net(x, t, y, rule=InferenceRule("dype_yarn"), rule_t=0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, t, y, rule=InferenceRule("dype_yarn"), rule_t=0.5)
    assert out.dtype == torch.bfloat16
    assert (out.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_sde_sampling_is_an_option_of_velocity_files_only(files):
    kw = dict(num_heads=2, context_size=64, ori_max_pe_len=8)
    v2 = load_official(files["fitv2"], "fit", **kw)
    a = v2.sample_latents([1], [0], method="sde", steps=5)
    b = v2.sample_latents([1, 2], [0, 1], method="sde", steps=5)
    torch.testing.assert_close(a[0], b[0])  # per-image step noise
    v1 = load_official(files["fitv1"], "fit", **kw)
    with pytest.raises(ValueError, match="unknown method 'sde' for an official dit file"):
        v1.sample_latents([1], [0], method="sde", steps=5)
