"""Official DiT / SiT files (issue 10): load, match the official forward, sample at any size.

The checkpoints here are written in the official layout from its definition (models.py of
facebookresearch/DiT and willisma/SiT: a fixed sin-cos ``pos_embed`` parameter, timm's
PatchEmbed/Attention/Mlp names, adaLN-Zero blocks), with small random non-zero weights, and
the reference forward below restates the official formulation independently of ``DiT``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lit_rpe.models import DiT
from lit_rpe.objectives.ddpm import DDPMSchedule
from lit_rpe.official import OFFICIAL_KINDS
from lit_rpe.official.dit_sit_net import official_config
from lit_rpe.official.model import load_official
from lit_rpe.posenc import InferenceRule

HIDDEN, HEADS, DEPTH, PATCH, CHANNELS, CLASSES, GRID = 64, 2, 2, 2, 4, 10, 4  # 64 px files


def official_pos_embed(dim: int, grid: int) -> np.ndarray:
    """MAE/DiT table: meshgrid(w, h) puts the column coordinate in the first half of channels;
    each half is [sin(p w_k) | cos(p w_k)] with w_k = 10000^(-k / (dim / 4))."""
    cols, rows = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))

    def one_axis(pos):
        omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
        out = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one_axis(cols), one_axis(rows)], axis=1)


def official_shapes(
    d=HIDDEN, depth=DEPTH, p=PATCH, c=CHANNELS, grid=GRID, classes=CLASSES, learn_sigma=True
) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of an official DiT/SiT state dict (the two repositories share them)."""
    out = 2 * c if learn_sigma else c
    shapes = {
        "pos_embed": (1, grid * grid, d),
        "x_embedder.proj.weight": (d, c, p, p),
        "x_embedder.proj.bias": (d,),
        "t_embedder.mlp.0.weight": (d, 256),
        "t_embedder.mlp.0.bias": (d,),
        "t_embedder.mlp.2.weight": (d, d),
        "t_embedder.mlp.2.bias": (d,),
        "y_embedder.embedding_table.weight": (classes + 1, d),  # + the null class
    }
    for i in range(depth):
        for name, shape in {
            "attn.qkv": (3 * d, d),
            "attn.proj": (d, d),
            "mlp.fc1": (4 * d, d),
            "mlp.fc2": (d, 4 * d),
            "adaLN_modulation.1": (6 * d, d),
        }.items():
            shapes[f"blocks.{i}.{name}.weight"] = shape
            shapes[f"blocks.{i}.{name}.bias"] = shape[:1]
    for name, shape in {
        "final_layer.linear": (p * p * out, d),
        "final_layer.adaLN_modulation.1": (2 * d, d),
    }.items():
        shapes[f"{name}.weight"] = shape
        shapes[f"{name}.bias"] = shape[:1]
    return shapes


def official_state(seed: int = 0, learn_sigma: bool = True) -> dict:
    """A tiny official-layout file: the fixed sin-cos pos_embed, small random non-zero weights
    elsewhere (the adaLN and output layers too, which DiT's initialisation zeroes)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in official_shapes(learn_sigma=learn_sigma).items():
        std = (
            0.5 if "embedding_table" in key else 0.2 if ("adaLN" in key or "x_emb" in key) else 0.1
        )
        sd[key] = std * torch.randn(shape, generator=g)
    sd["pos_embed"] = torch.from_numpy(official_pos_embed(HIDDEN, GRID)).float().unsqueeze(0)
    return sd


def official_forward(sd: dict, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The official models.py forward, restated: tokens + pos_embed, GLIDE timestep embedding
    of t as given (DiT: the DDPM step, SiT: t in [0, 1]), adaLN-Zero blocks, unpatchify."""
    p, d = PATCH, HIDDEN

    def lin(h, name):
        return F.linear(h, sd[f"{name}.weight"], sd[f"{name}.bias"])

    def mod(h, shift, scale):
        return F.layer_norm(h, (d,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]

    tok = F.conv2d(x, sd["x_embedder.proj.weight"], sd["x_embedder.proj.bias"], stride=p)
    tok = tok.flatten(2).transpose(1, 2) + sd["pos_embed"]
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    temb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    temb = lin(F.silu(lin(temb, "t_embedder.mlp.0")), "t_embedder.mlp.2")
    c = temb + sd["y_embedder.embedding_table.weight"][y]
    b, n = tok.shape[:2]
    for i in range(DEPTH):
        pre = f"blocks.{i}."
        s1, sc1, g1, s2, sc2, g2 = lin(F.silu(c), pre + "adaLN_modulation.1").chunk(6, dim=1)
        qkv = lin(mod(tok, s1, sc1), pre + "attn.qkv")
        q, k, v = qkv.reshape(b, n, 3, HEADS, d // HEADS).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-2, -1) * (d // HEADS) ** -0.5, dim=-1) @ v
        tok = tok + g1[:, None] * lin(att.transpose(1, 2).reshape(b, n, d), pre + "attn.proj")
        h = F.gelu(lin(mod(tok, s2, sc2), pre + "mlp.fc1"), approximate="tanh")
        tok = tok + g2[:, None] * lin(h, pre + "mlp.fc2")
    shift, scale = lin(F.silu(c), "final_layer.adaLN_modulation.1").chunk(2, dim=1)
    out = lin(mod(tok, shift, scale), "final_layer.linear")
    cout = out.shape[-1] // (p * p)
    out = out.reshape(b, GRID, GRID, p, p, cout)
    return torch.einsum("nhwpqc->nchpwq", out).reshape(b, cout, GRID * p, GRID * p)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("official") / "DiT-tiny-64x64.pt"
    torch.save(official_state(), path)
    return path


def inputs(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, CHANNELS, GRID * PATCH, GRID * PATCH, generator=g)
    return x, torch.tensor([3, 0, CLASSES][:n])  # the last label is the null class


# --------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("kind", OFFICIAL_KINDS)
def test_outputs_equal_the_official_forward_at_the_training_resolution(ckpt, kind):
    model = load_official(ckpt, kind)
    sd = torch.load(ckpt, weights_only=True)
    net = model.net
    assert (model.resolution, model.latent_factor, model.kind) == ((64, 64), 8, kind)
    assert (len(net.blocks), net.patch_size, net.num_classes, net.out_channels) == (2, 2, 10, 8)
    assert net.encoder == "sincos" and net.train_positions == "grid" and model.ema is net
    x, y = inputs()
    # DiT's network sees the DDPM timestep as is, SiT's its t in [0, 1] (no x1000)
    t = torch.tensor([999.0, 500.0, 3.0]) if kind == "dit" else torch.tensor([0.0, 0.37, 0.99])
    ours = net(x, t, y)  # eval mode, default rule: grid positions, unscaled frequencies
    ref = official_forward(sd, x, t, y)
    assert ours.abs().max() > 0.1  # non-trivial weights
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("px", [256, 512])
def test_sizes_of_the_released_xl2_files_are_read_from_their_shapes(px):
    shapes = official_shapes(d=1152, depth=28, grid=px // 16, classes=1000)
    state = {k: torch.empty(v, device="meta") for k, v in shapes.items()}
    config = official_config(state)
    assert config == dict(
        input_size=px // 8,
        patch_size=2,
        in_channels=4,
        hidden_size=1152,
        depth=28,
        num_heads=16,
        mlp_ratio=4.0,
        num_classes=1000,
        learn_sigma=True,
    )
    with torch.device("meta"):
        net = DiT(**config)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {
        k: v for k, v in shapes.items() if k != "pos_embed"
    }


def test_training_checkpoint_forms_load_their_ema(tmp_path, ckpt):
    ema, other = official_state(seed=0), official_state(seed=1)
    x, y = inputs()
    t = torch.tensor([10.0, 20.0, 30.0])
    forms = {
        "train.pt": {
            "model": other,
            "ema": ema,
            "opt": {"state": {}},
            "args": argparse.Namespace(model="DiT-XL/2"),
        },
        "model_only.pt": {"model": ema},
        "ddp.pt": {f"module.{k}": v for k, v in ema.items()},
    }
    for name, obj in forms.items():
        torch.save(obj, tmp_path / name)
        out = load_official(tmp_path / name, "dit").net(x, t, y)
        torch.testing.assert_close(out, official_forward(ema, x, t, y), atol=2e-5, rtol=1e-5)
    no_sigma = official_state(learn_sigma=False)
    torch.save(no_sigma, tmp_path / "fixed.pt")
    assert load_official(tmp_path / "fixed.pt", "sit").net.out_channels == CHANNELS


def test_load_errors_are_clear(tmp_path, ckpt):
    with pytest.raises(FileNotFoundError, match=r"nope\.pt.*dl\.fbaipublicfiles\.com/DiT"):
        load_official(tmp_path / "nope.pt", "dit")
    with pytest.raises(FileNotFoundError, match="SiT-XL-2-256x256.pt"):
        load_official(tmp_path / "nope.pt", "sit")
    with pytest.raises(ValueError, match="unknown official checkpoint kind 'adm'"):
        load_official(ckpt, "adm")
    sd = official_state()
    bad = {k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.bias"}
    torch.save(bad, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"(?s)does not fit the official dit layout.*fc2\.bias"):
        load_official(tmp_path / "missing.pt", "dit")
    torch.save({**sd, "blocks.0.attn.q_norm.weight": torch.ones(32)}, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match="Unexpected key"):
        load_official(tmp_path / "extra.pt", "dit")
    torch.save({"x_embedder.proj.weight": sd["x_embedder.proj.weight"]}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no 'pos_embed'"):
        load_official(tmp_path / "other.pt", "dit")
    torch.save({**sd, "pos_embed": sd["pos_embed"] + 0.01}, tmp_path / "trained_pos.pt")
    with pytest.raises(ValueError, match="pos_embed is not DiT's fixed sin-cos table"):
        load_official(tmp_path / "trained_pos.pt", "dit")
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.6"}, tmp_path / "lit.ckpt")
    with pytest.raises(ValueError, match="without --official"):
        load_official(tmp_path / "lit.ckpt", "dit")
    model = load_official(ckpt, "dit")
    with pytest.raises(ValueError, match="multiple of 16"):
        model.check_resolution(72)
    with pytest.raises(ValueError, match="valid: ddpm, ddim"):
        model.sample_latents([0], [0], method="heun")
    with pytest.raises(ValueError, match="timestep_shift"):
        model.check_resolution(64, InferenceRule("ntk", timestep_shift=2.0))
    with pytest.raises(ValueError, match="needs vae_path"):
        model.sample([0], [0], steps=2)
    with pytest.raises(FileNotFoundError, match="no VAE found at .*no_vae"):
        load_official(ckpt, "dit", vae_path=str(tmp_path / "no_vae")).sample([0], [0], steps=2)


# -------------------------------------------------------------------------------- sampling


def oracle(model, kind: str, data: torch.Tensor, calls: list):
    """Replace the network by the exact prediction for point-mass data ``data`` (1, C, h, w),
    in the file's own convention; sigma channels are filled with zeros (v = 0)."""

    def forward(x, t, y, *, rule_t, **kwargs):
        calls.append((float(t[0]), rule_t))
        if kind == "dit":  # eps = (x - sqrt(abar) x0) / sqrt(1 - abar) at the DDPM step t
            abar = float(DDPMSchedule.linear().alphas_cumprod[int(t[0])])
            out = (x - math.sqrt(abar) * data) / math.sqrt(1 - abar)
        else:  # SiT: x = t x1 + (1 - t) x0, velocity x1 - x0 = (x1 - x) / (1 - t)
            out = (data - x) / (1 - t.view(-1, 1, 1, 1))
        return torch.cat([out, torch.zeros_like(out)], dim=1)

    model.net.forward = forward


@pytest.mark.parametrize(
    "kind,method", [("dit", "ddpm"), ("dit", "ddim"), ("sit", "euler"), ("sit", "heun")]
)
def test_oracle_network_lands_on_the_data(ckpt, kind, method):
    model = load_official(ckpt, kind)
    data = torch.randn(1, CHANNELS, 12, 8, generator=torch.Generator().manual_seed(5))
    calls = []
    oracle(model, kind, data, calls)
    out = model.sample_latents([1, 2], [0, 1], resolution=(96, 64), steps=10, method=method)
    torch.testing.assert_close(out, data.expand(2, -1, -1, -1), atol=1e-4, rtol=1e-4)
    t_net = [c[0] for c in calls]
    rule_t = [c[1] for c in calls]
    if kind == "dit":  # DiT's respacing of 10 steps; DyPE's t is the DDPM step / 1000
        assert t_net == [999.0, 888.0, 777.0, 666.0, 555.0, 444.0, 333.0, 222.0, 111.0, 0.0]
        assert rule_t == [s / 1000 for s in t_net]
    else:  # SiT's t = 1 - ours; ours starts at 1 (noise) and never evaluates t = 0
        assert rule_t[0] == 1.0 and min(rule_t) > 0
        assert t_net == pytest.approx([1 - t for t in rule_t], abs=1e-6)  # float32 t_vec


@pytest.mark.parametrize("kind,method", [("dit", "ddpm"), ("dit", "ddim"), ("sit", "heun")])
def test_any_rule_any_resolution_and_a_seed_ignores_its_batch(ckpt, kind, method):
    model = load_official(ckpt, kind, cfg_scale=4.0)
    kw = dict(resolution=(96, 64), steps=4, method=method)
    a = model.sample_latents([1, 2, 7], [10, 11, 12], rule=InferenceRule("dype_yarn"), **kw)
    b = model.sample_latents([7], [12], rule=InferenceRule("dype_yarn"), **kw)
    assert a.shape == (3, CHANNELS, 12, 8) and torch.isfinite(a).all()
    # equal up to float rounding of batched kernels (random weights make latents of ~1e3)
    assert (a[2:] - b).abs().max() <= 2e-6 * a.abs().max()
    extra = model.sample_latents([7], [12], **kw)
    assert (extra - b).abs().max() > 1e-4  # the rule changes the result
    if method == "ddim":
        return
    for rule in ("extrapolate", "interpolate", "ntk", "yarn", "ntk_by_parts", "dype_pi", "tasr"):
        out = model.sample_latents([0], [0], resolution=32, steps=2, rule=InferenceRule(rule))
        assert out.shape == (1, CHANNELS, 4, 4) and torch.isfinite(out).all()


def test_dit_guidance_convention_is_an_option(ckpt):
    three = load_official(ckpt, "dit", cfg_scale=4.0)
    every = load_official(ckpt, "dit", cfg_scale=4.0, cfg_channels="all")
    plain = load_official(ckpt, "dit", cfg_scale=1.0)
    kw = dict(steps=3, method="ddim")
    a, b, c = (m.sample_latents([1], [0], **kw) for m in (three, every, plain))
    assert (a - b).abs().max() > 1e-4 and (a - c).abs().max() > 1e-4
    # guidance only outside the interval: the same as no guidance there
    none = load_official(ckpt, "dit", cfg_scale=4.0, guidance_interval=(2.0, 3.0))
    torch.testing.assert_close(none.sample_latents([1], [0], **kw), c)


@pytest.mark.parametrize("kind", OFFICIAL_KINDS)
def test_lit_rpe_sample_official_writes_a_grid(tmp_path, ckpt, kind, vae_folder):
    from lit_rpe.training.cli import main

    vae = vae_folder
    main(
        [
            "sample",
            "--config",
            f"experiments/official_{kind}_xl2_256.yaml",
            "--model.net.name=DiT-N/2",  # the module the CLI builds; the net comes from ckpt
            "--trainer.accelerator=cpu",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            f"--ckpt_path={ckpt}",
            f"--official={kind}",
            f"--vae_path={vae}",
            "--resolution=96",
            "--rule=dype_yarn",
            "--num_images=2",
            "--steps=2",
            "--cfg_scale=4.0",
        ]
    )
    assert (tmp_path / "run" / "samples" / "dype_yarn_96x96.png").is_file()
