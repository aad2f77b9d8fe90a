"""The suite's FiT against the official whlzy/FiT code (issue 25), from a local clone.

    FIT_REPO=/path/to/FiT pytest tests/models/test_fit_reference.py -m slow
    FIT_REPO=/path/to/FiT python tests/models/test_fit_reference.py   # rewrite the stored cases

Skipped without ``FIT_REPO`` (see ``fit_reference.py`` for the stand-ins the clone needs). Small
official models with random non-zero weights are saved in the official layout, loaded by the
suite's loader, and compared with the official ``FiT.forward`` (every FiT interpolation option,
with and without ``decouple``, at the training size and an extrapolated non-square size) and
with the official samplers (FiTv2: the transport's dopri5 ODE with classifier-free guidance;
FiTv1: improved_diffusion's DDIM loop). ``fit_cases.pt`` stores official outputs of two such
models for the default suite (test_fit.py), which runs without the clone.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from fit_reference import import_official, missing_requirements, reference_repo

from lit_rpe.official.fit_net import build_fit_net
from lit_rpe.official.model import load_official
from lit_rpe.posenc import FIT_INTERPOLATIONS, fit_rule

CASES = Path(__file__).parent / "data" / "fit_cases.pt"
CUSTOM_FREQS = {
    "no": "normal",
    "linear": "linear",
    "dynntk": "ntk-aware",
    "partntk": "ntk-by-parts",
    "yarn": "yarn",
    "ntkpro1": "ntk-aware-pro1",
    "ntkpro2": "ntk-aware-pro2",
}
SMALL = dict(hidden_size=64, depth=2, num_heads=4, context_size=64, num_classes=10)
TINY = dict(hidden_size=32, depth=1, num_heads=2, context_size=64, num_classes=10)  # stored
ORI = 8  # ori_max_pe_len of the small models: 8 x 8 tokens = 16 x 16 latents


def official_model(
    fm, version: str, interpolation: str = "no", grid=(ORI, ORI), decouple=False, size=SMALL
):
    """A small official FiT of ``version`` with FiT's sampling-time RoPE settings."""
    rope = {"custom_freqs": CUSTOM_FREQS[interpolation], "online_rope": False}
    if interpolation != "no":
        rope.update(
            max_pe_len_h=grid[0], max_pe_len_w=grid[1], decouple=decouple, ori_max_pe_len=ORI
        )
    common = dict(size, patch_size=2, in_channels=4, mlp_ratio=4.0, use_swiglu=True, **rope)
    if version == "fitv2":
        extra = dict(learn_sigma=False, use_sit=True, q_norm="layernorm", k_norm="layernorm")
        extra.update(adaln_type="lora", adaln_lora_dim=size["hidden_size"] // 8)
    else:
        extra = dict(learn_sigma=True, use_swiglu_large=True)
    return fm.FiT(**common, **extra).eval()


def random_state(
    shapes: dict[str, torch.Size], seed: int, std: float = 0.2
) -> dict[str, torch.Tensor]:
    """Weights for these keys and shapes, all non-zero (the official init zeroes adaLN and the
    output), drawn in sorted key order: the same from the official module and from ours."""
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(shapes[k], generator=gen) * std for k in sorted(shapes)}


def shapes_of(module: torch.nn.Module) -> dict[str, torch.Size]:
    return {k: v.shape for k, v in module.state_dict().items()}


def official_inputs(grid: tuple[int, int], batch: int):
    """FiT's sampling-script grid (B, 2, N) (columns first), mask and size of a token grid."""
    h, w = grid
    mesh = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="xy")
    positions = torch.cat([mesh[0].reshape(1, -1), mesh[1].reshape(1, -1)]).repeat(batch, 1, 1)
    size = torch.tensor((h, w)).repeat(batch, 1)[:, None]
    return positions, torch.ones(batch, h * w), size


def official_forward(model, version, net, x, t, y):
    """The official forward on our image-shaped x, returned image-shaped."""
    tokens, grid = net.patchify(x)
    positions, mask, size = official_inputs(grid, x.shape[0])
    inp = tokens if version == "fitv2" else tokens.transpose(1, 2)
    with torch.no_grad():
        out = model(inp, t, y, positions, mask, size)
    out = out if version == "fitv2" else out.transpose(1, 2)
    return net.unpatchify(out, grid)


def make_cases(fm) -> dict:
    """Official outputs of two tiny models (one per version, weights ``random_state(seed 11)``)
    at 16x16 and 12x24 latents, with and without FiT's ``ntkpro2`` / ``yarn`` (decoupled)."""
    cases = {}
    gen = torch.Generator().manual_seed(7)
    for version, option in (("fitv2", "ntkpro2"), ("fitv1", "yarn")):
        state = random_state(shapes_of(official_model(fm, version, size=TINY)), seed=11)
        outputs = []
        for size in ((16, 16), (12, 24)):
            grid = (size[0] // 2, size[1] // 2)
            x = torch.randn(2, 4, *size, generator=gen)
            t = torch.tensor([0.25, 0.75])
            y = torch.tensor([3, 10])
            for interpolation in ("no", option):
                model = official_model(fm, version, interpolation, grid, True, size=TINY)
                model.load_state_dict(state)
                tokens = x.reshape(2, 4, grid[0], 2, grid[1], 2).permute(0, 2, 4, 1, 3, 5)
                tokens = tokens.reshape(2, grid[0] * grid[1], 16)
                positions, mask, sizes = official_inputs(grid, 2)
                inp = tokens if version == "fitv2" else tokens.transpose(1, 2)
                with torch.no_grad():
                    out = model(inp, t, y, positions, mask, sizes)
                outputs.append(dict(interpolation=interpolation, x=x, t=t, y=y, out=out))
        cases[version] = dict(seed=11, option=option, outputs=outputs)
    return cases


@pytest.fixture(scope="module")
def official():
    repo = reference_repo()
    if repo is None:
        pytest.skip("set FIT_REPO to a local clone of https://github.com/whlzy/FiT")
    missing = missing_requirements()
    if missing:
        pytest.skip(f"the official FiT code needs {missing} (pip install --no-deps {missing})")
    return import_official(repo)


def saved(tmp_path: Path, state: dict, name: str) -> Path:
    from safetensors.torch import save_file

    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("version", ["fitv2", "fitv1"])
def test_forward_equals_the_official_forward_for_every_fit_option(tmp_path, official, version):
    fm = official[0]
    state = random_state(shapes_of(official_model(fm, version)), seed=1)
    net, _ = build_fit_net(
        saved(tmp_path, state, "f.safetensors"), num_heads=4, context_size=64, ori_max_pe_len=ORI
    )
    gen = torch.Generator().manual_seed(2)
    worst = 0.0
    for size in ((16, 16), (12, 40)):
        grid = (size[0] // 2, size[1] // 2)
        x = torch.randn(3, 4, *size, generator=gen)
        t, y = torch.tensor([0.0, 0.4, 1.0]), torch.tensor([0, 5, 10])
        for interpolation in FIT_INTERPOLATIONS:
            for decouple in (False, True):
                model = official_model(fm, version, interpolation, grid, decouple)
                model.load_state_dict(state)
                ref = official_forward(model, version, net, x, t, y)
                ours = net(x, t, y, rule=fit_rule(interpolation, decouple=decouple))
                scale = ref.abs().max().item()
                torch.testing.assert_close(ours, ref, atol=1e-5 * scale, rtol=0)
                worst = max(worst, (ours - ref).abs().max().item())
    print(f"{version}: largest |ours - official| {worst:.3g}")


def as_official_api(net, rule, grid):
    """Our network behind the official ``forward(x_tokens, t, y, grid, mask, size)``."""

    def forward(x, t, y, positions, mask, size):
        b = x.shape[0]
        image = x.reshape(b, *grid, 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
        image = image.reshape(b, 4, 2 * grid[0], 2 * grid[1])
        return net.patchify(net(image, t, y, rule=rule))[0]

    return forward


@pytest.mark.slow
@pytest.mark.parametrize("size", [(16, 16), (12, 24)])
def test_fitv2_dopri5_sampling_equals_the_official_transport(tmp_path, official, size):
    """From the same noise with CFG 1.5: our sampler equals the official transport bit for bit
    on the same network. The whole official run (its network too) differs only through the
    networks' float-level difference (1e-6 relative), which the adaptive step control can turn
    into a different accept/reject decision: held to the solver's own rtol (1e-3)."""
    fm, _, transport, _ = official
    state = random_state(shapes_of(official_model(fm, "fitv2")), seed=3, std=0.1)
    path = saved(tmp_path, state, "v2.safetensors")
    grid = (size[0] // 2, size[1] // 2)
    interpolation = "no" if size == (16, 16) else "dynntk"
    rule = fit_rule(interpolation, decouple=True)
    ours_model = load_official(
        path, "fit", num_heads=4, context_size=64, ori_max_pe_len=ORI, cfg_scale=1.5
    )
    model = official_model(fm, "fitv2", interpolation, grid, decouple=True)
    model.load_state_dict(state)
    labels, seeds, pixels = [1, 7], [0, 1], [8 * s for s in size]
    ours = ours_model.sample_latents(labels, seeds, resolution=pixels, rule=rule)
    start = ours_model.sampling_start(labels, seeds, pixels, rule, True)
    z, _ = ours_model.net.patchify(start.noise)
    positions, mask, sizes = official_inputs(grid, 2)
    sampler = transport.Sampler(transport.create_transport("Linear", "velocity"))
    sample_fn = sampler.sample_ode(sampling_method="dopri5", num_steps=250, atol=1e-6, rtol=1e-3)
    kwargs = dict(
        y=torch.tensor(labels + [10, 10]),
        grid=torch.cat([positions, positions]),
        mask=torch.cat([mask, mask]),
        size=torch.cat([sizes, sizes]),
        cfg_scale=1.5,
    )
    with torch.no_grad():
        ref = sample_fn(torch.cat([z, z]), model.forward_with_cfg, **kwargs)[-1][:2]
        model.forward = as_official_api(ours_model.net, rule, grid)
        same_net = sample_fn(torch.cat([z, z]), model.forward_with_cfg, **kwargs)[-1][:2]
    ref = ours_model.net.unpatchify(ref, grid)
    same_net = ours_model.net.unpatchify(same_net, grid)
    torch.testing.assert_close(ours, same_net, atol=1e-6, rtol=0)
    diff, scale = (ours - ref).abs().max().item(), ref.abs().max().item()
    print(f"FiTv2 dopri5 {size}: largest |ours - official| {diff:.3g}, max |x| {scale:.3g}")
    torch.testing.assert_close(ours, ref, atol=1e-3 * scale, rtol=0)


@pytest.mark.slow
def test_fitv2_sde_sampling_equals_the_official_transport(tmp_path, official, monkeypatch):
    """SiT's SDE sampler (Euler-Maruyama, diffusion "sigma", last step "Mean" 0.04) with CFG
    1.5 at 12x24 latents with ``dynntk --decouple``: the official transport given our
    per-image step noise (its global ``randn`` replaced) against ``method="sde"``."""
    import importlib

    from lit_rpe.objectives.ddpm.samplers import noise_generators, step_noise

    fm, _, transport, _ = official
    integrators = importlib.import_module("fit.scheduler.transport.integrators")
    state = random_state(shapes_of(official_model(fm, "fitv2")), seed=4, std=0.1)
    path = saved(tmp_path, state, "v2.safetensors")
    size, grid, steps = (12, 24), (6, 12), 20
    rule = fit_rule("dynntk", decouple=True)
    ours_model = load_official(path, "fit", num_heads=4, context_size=64, ori_max_pe_len=ORI)
    labels, seeds, pixels = [1, 7], [0, 1], [8 * s for s in size]
    kw = dict(resolution=pixels, rule=rule, method="sde", steps=steps, cfg_scale=1.5)
    ours = ours_model.sample_latents(labels, seeds, **kw)
    start = ours_model.sampling_start(labels, seeds, pixels, rule, True)
    z = ours_model.net.patchify(start.noise)[0]
    model = official_model(fm, "fitv2", "dynntk", grid, decouple=True)
    model.load_state_dict(state)
    gens, randn = noise_generators(seeds), torch.randn

    def our_step_noise(*shape, **kwargs):  # official: one (2B, N, C p p) draw per step
        shape = tuple(shape[0]) if len(shape) == 1 else shape
        monkeypatch.setattr(integrators.th, "randn", randn)
        image = step_noise(gens, start.noise)
        monkeypatch.setattr(integrators.th, "randn", our_step_noise)
        tokens = ours_model.net.patchify(image)[0]
        return torch.cat([tokens, torch.zeros(shape[0] - 2, *shape[1:])])

    monkeypatch.setattr(integrators.th, "randn", our_step_noise)
    positions, mask, sizes = official_inputs(grid, 2)
    sampler = transport.Sampler(transport.create_transport("Linear", "velocity"))
    sample_fn = sampler.sample_sde(
        sampling_method="Euler",
        diffusion_form="sigma",
        diffusion_norm=1.0,
        last_step="Mean",
        last_step_size=0.04,
        num_steps=steps,
    )
    kwargs = dict(
        y=torch.tensor(labels + [10, 10]),
        grid=torch.cat([positions, positions]),
        mask=torch.cat([mask, mask]),
        size=torch.cat([sizes, sizes]),
        cfg_scale=1.5,
    )
    with torch.no_grad():
        ref = sample_fn(torch.cat([z, z]), model.forward_with_cfg, **kwargs)[-1][:2]
    monkeypatch.setattr(integrators.th, "randn", randn)
    ref = ours_model.net.unpatchify(ref, grid)
    diff, scale = (ours - ref).abs().max().item(), ref.abs().max().item()
    print(f"FiTv2 sde {size}: largest |ours - official| {diff:.3g}, max |x| {scale:.3g}")
    torch.testing.assert_close(ours, ref, atol=1e-5 * scale, rtol=0)


@pytest.mark.slow
def test_fitv1_ddim_sampling_equals_the_official_improved_diffusion(tmp_path, official):
    """FiTv1 (DDPM, learned sigma) through improved_diffusion's DDIM loop (eta 0, 10 respaced
    steps, CFG 1.5 on 3 channels) against the suite's ``ddim`` from the same noise, at the
    training size and an extrapolated non-square size with ``yarn --decouple``."""
    fm, _, _, diffusion = official
    state = random_state(shapes_of(official_model(fm, "fitv1")), seed=5, std=0.1)
    path = saved(tmp_path, state, "v1.safetensors")
    ours_model = load_official(path, "fit", num_heads=4, context_size=64, ori_max_pe_len=ORI)
    for size, interpolation in (((16, 16), "no"), ((12, 24), "yarn")):
        grid = (size[0] // 2, size[1] // 2)
        rule = fit_rule(interpolation, decouple=True)
        model = official_model(fm, "fitv1", interpolation, grid, decouple=True)
        model.load_state_dict(state)
        labels, seeds, pixels = [1, 7], [0, 1], [8 * s for s in size]
        kw = dict(resolution=pixels, rule=rule, method="ddim", steps=10, cfg_scale=1.5)
        ours = ours_model.sample_latents(labels, seeds, **kw)
        start = ours_model.sampling_start(labels, seeds, pixels, rule, True)
        z = ours_model.net.patchify(start.noise)[0].transpose(1, 2)  # FiTv1: (B, C p p, N)
        positions, mask, sizes = official_inputs(grid, 2)
        chain = diffusion.create_diffusion("10")
        kwargs = dict(
            y=torch.tensor(labels + [10, 10]),
            grid=torch.cat([positions, positions]),
            mask=torch.cat([mask, mask]),
            size=torch.cat([sizes, sizes]),
            cfg_scale=1.5,
        )
        with torch.no_grad():
            ref = chain.ddim_sample_loop(
                model.forward_with_cfg,
                (4, *z.shape[1:]),
                noise=torch.cat([z, z]),
                clip_denoised=False,
                model_kwargs=kwargs,
                device=torch.device("cpu"),
            )[:2]
        ref = ref.transpose(1, 2).reshape(2, *grid, 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
        ref = ref.reshape(2, 4, *size)
        diff, scale = (ours - ref).abs().max().item(), ref.abs().max().item()
        print(f"FiTv1 ddim {size}: largest |ours - official| {diff:.3g}, max |x| {scale:.3g}")
        torch.testing.assert_close(ours, ref, atol=1e-5 * scale, rtol=0)


@pytest.mark.slow
def test_the_stored_cases_are_the_official_outputs(official):
    stored = torch.load(CASES, weights_only=True)
    fresh = make_cases(official[0])
    for version, case in fresh.items():
        for a, b in zip(case["outputs"], stored[version]["outputs"], strict=True):
            torch.testing.assert_close(a["out"], b["out"], atol=1e-5, rtol=1e-5)


if __name__ == "__main__":
    repo = reference_repo()
    if repo is None:
        sys.exit("set FIT_REPO to a local clone of https://github.com/whlzy/FiT")
    CASES.parent.mkdir(exist_ok=True)
    torch.save(make_cases(import_official(repo)[0]), CASES)
    print(f"wrote {CASES} ({CASES.stat().st_size} bytes)")
