"""Experiment files compose shared bases; interpolations resolve against the merged config."""

import pytest
from omegaconf import OmegaConf

from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.sampler import check_rule, token_grid
from lit_rpe.training.experiments import (
    EXPERIMENTS_DIR,
    compose,
    expand_config_args,
    list_experiments,
)

PAPER_EXPERIMENTS = [
    "sincos_256",
    "rope_256",
    "rpe2d_256",
    "rpe2d_sincos_256",
    "rpe2d_256_nocrop",
    "rpe2d_256_nomicro",
    "rpe2d_256_range2x",
]


def test_paper_experiments_exist_and_differ_as_intended():
    assert set(PAPER_EXPERIMENTS) <= set(list_experiments())
    cfg = {name: compose(EXPERIMENTS_DIR / f"{name}.yaml") for name in PAPER_EXPERIMENTS}
    for name, c in cfg.items():
        assert c.model.net.name == "DiT-XL/2" and c.trainer.default_root_dir == f"runs/{name}"
    assert cfg["sincos_256"].model.net.encoder == "sincos"
    assert cfg["rope_256"].model.net.train_positions == "grid"
    rpe = cfg["rpe2d_256"]
    assert (rpe.model.net.encoder, rpe.model.net.train_positions) == ("rope", "rpe2d")
    assert rpe.model.net.micro_conditioning and rpe.data.augmentation == "random_resized_crop"
    assert cfg["rpe2d_sincos_256"].model.net.encoder == "sincos"
    assert cfg["rpe2d_256_nocrop"].data.augmentation == "center_crop"
    assert not cfg["rpe2d_256_nomicro"].model.net.micro_conditioning
    assert cfg["rpe2d_256_nomicro"].data.augmentation == "random_resized_crop"
    assert (rpe.model.net.max_len, cfg["rpe2d_256_range2x"].model.net.max_len) == (64, 32)


@pytest.mark.parametrize(
    "name",
    PAPER_EXPERIMENTS
    + [f"{e}_512{s}" for e in ("sincos", "rope", "rpe2d") for s in ("", "_from256")],
)
def test_experiments_score_generalization_while_training(name):
    """256 px runs watch 256-512 px, 512 px runs 512-1024 px, under their default rule and one
    scaling rule; every cell runs on the experiment's model (patch grid, RPE-2D range)."""
    cfg = compose(EXPERIMENTS_DIR / f"{name}.yaml")
    callbacks = OmegaConf.to_container(cfg, resolve=True)["trainer"]["callbacks"]
    classes = [c["class_path"].rsplit(".", 1)[1] for c in callbacks]
    assert {"ModelCheckpoint", "SampleGridCallback", "ResolutionEvalCallback"} <= set(classes)
    init_args = callbacks[classes.index("ResolutionEvalCallback")]["init_args"]
    args = init_args["settings"]
    net = cfg.model.net
    rpe2d = net.train_positions == "rpe2d"
    if cfg.model.resolution == 256:
        assert args["resolutions"] == [256, 384, 512, [256, 512]]
    else:
        assert args["resolutions"] == [512, 768, 1024]
    assert args["rules"] == (["rpe2d_even", "interpolate"] if rpe2d else ["extrapolate", "ntk"])
    assert init_args["every_n_steps"] == 20000
    assert (args["num_images"], args["metrics"]) == (5120, "auto")
    max_len = net.get("max_len") or 4 * cfg.model.resolution // 16
    for resolution in args["resolutions"]:
        grid = token_grid(resolution, latent_factor=8, patch_size=2)
        for rule in args["rules"]:
            check_rule(InferenceRule(rule), grid, max_len=(max_len, max_len), step=16)


def test_interpolation_follows_the_overriding_run_dir():
    cfg = compose(EXPERIMENTS_DIR / "rpe2d_256_nomicro.yaml")
    resolved = OmegaConf.to_container(cfg, resolve=True)
    ckpt = next(
        c for c in resolved["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")
    )
    assert ckpt["init_args"]["dirpath"] == "runs/rpe2d_256_nomicro/checkpoints"


def test_bases_merge_in_order_and_cycles_are_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\ny: {p: 1, q: 1}\n")
    (tmp_path / "b.yaml").write_text("bases: [a.yaml]\ny: {q: 2}\n")
    (tmp_path / "c.yaml").write_text("bases: [b.yaml]\ny: {p: 3}\n")
    assert OmegaConf.to_container(compose(tmp_path / "c.yaml")) == {"x": 1, "y": {"p": 3, "q": 2}}
    (tmp_path / "d.yaml").write_text("bases: [e.yaml]\n")
    (tmp_path / "e.yaml").write_text("bases: [d.yaml]\n")
    with pytest.raises(ValueError, match="cycle"):
        compose(tmp_path / "d.yaml")


def test_a_plus_key_appends_to_the_bases_list(tmp_path):
    (tmp_path / "a.yaml").write_text("run: r\nt:\n  cb: [{x: 1}, {d: '${run}/c'}]\n")
    (tmp_path / "b.yaml").write_text("bases: [a.yaml]\nt:\n  cb+: [{x: 2}]\n")
    (tmp_path / "c.yaml").write_text("bases: [b.yaml]\nrun: s\nt:\n  cb+: [{x: 3}]\n")
    composed = OmegaConf.to_container(compose(tmp_path / "c.yaml"), resolve=True)
    assert composed["t"]["cb"] == [{"x": 1}, {"d": "s/c"}, {"x": 2}, {"x": 3}]
    (tmp_path / "d.yaml").write_text("bases: [a.yaml]\nt:\n  cb: []\n  cb+: [{x: 2}]\n")
    with pytest.raises(ValueError, match="appends a list"):
        compose(tmp_path / "d.yaml")


def test_missing_config_lists_experiments():
    with pytest.raises(FileNotFoundError, match="experiments: .*rpe2d_256"):
        compose("experiments/rpe2d_1024.yaml")


def test_expand_replaces_every_config_flag(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\n")
    args = expand_config_args(
        ["fit", "--config", str(tmp_path / "a.yaml"), f"--config={tmp_path / 'a.yaml'}", "--x=2"]
    )
    # the scalar override is applied to the composed document too (and still passed on)
    assert args == ["fit", "--config", "x: 2\n", "--config", "x: 2\n", "--x=2"]


def composed_config(args: list[str]) -> tuple[dict, dict]:
    """The config ``expand_config_args`` hands LightningCLI, and its ModelCheckpoint entry."""
    composed = OmegaConf.to_container(OmegaConf.create(args[2]), resolve=True)
    callbacks = composed["trainer"]["callbacks"]
    return composed, next(c for c in callbacks if c["class_path"].endswith("ModelCheckpoint"))


def test_command_line_overrides_reach_interpolations():
    args = expand_config_args(
        [
            "fit",
            "--config",
            str(EXPERIMENTS_DIR / "demo.yaml"),
            "--trainer.default_root_dir=/tmp/x",
            "--trainer.max_steps",
            "7",
            "--trainer.callbacks+=a.B",
            "--model.net.nope=1",
        ]
    )
    composed, ckpt = composed_config(args)
    assert ckpt["init_args"]["dirpath"] == "/tmp/x/checkpoints"
    assert composed["trainer"]["max_steps"] == 7
    assert "nope" not in composed["model"]["net"]  # unknown keys stay for LightningCLI to refuse
    assert args[3:] == [
        "--trainer.default_root_dir=/tmp/x",
        "--trainer.max_steps",
        "7",
        "--trainer.callbacks+=a.B",
        "--model.net.nope=1",
    ]


STUDY_STRATEGIES = [
    "sincos_grid",
    "rope_grid",
    "rpe2d_rope",
    "rpe2d_sincos",
    "rpe2d_nocrop",
    "rpe2d_nomicro",
]


def _plain(cfg):
    return OmegaConf.to_container(cfg, resolve=False)


@pytest.mark.parametrize("strategy", STUDY_STRATEGIES)
def test_shapes_study_runs_differ_from_the_photo_runs_only_in_data_steps_guidance_and_run_dir(
    strategy,
):
    photos = _plain(compose(EXPERIMENTS_DIR / "study_cpu" / f"{strategy}.yaml"))
    shapes = _plain(compose(EXPERIMENTS_DIR / "study_cpu" / "shapes" / f"{strategy}.yaml"))
    assert f"study_cpu/shapes/{strategy}" in list_experiments()
    assert shapes["data"]["train_shards"] == "data/shapes/train"
    assert shapes["trainer"]["default_root_dir"] == f"runs/study_cpu/shapes/{strategy}"
    assert shapes["trainer"]["max_steps"] > photos["trainer"]["max_steps"]  # the main result
    # the guidance the study's grid scores with is the one the run samples with
    grid = load_grid(EXPERIMENTS_DIR / "study_cpu/shapes/grid.yaml", check_files=False)
    assert shapes["model"]["sampling"]["cfg_scale"] == grid.sampler.cfg_scale == 4.0
    # everything that defines the strategy is the photo run's
    assert shapes["model"]["net"] == photos["model"]["net"]
    assert shapes["data"]["augmentation"] == photos["data"]["augmentation"]
    assert shapes["model"]["optim"] == photos["model"]["optim"]
    assert (shapes["model"]["net"]["name"], shapes["trainer"]["precision"]) == (
        "DiT-XS/4",
        "auto",
    )


def test_study_rpe2d_range_is_twice_the_token_grid():
    # DiT-XS/4 at 32 px has an 8 x 8 grid; RPE-2D trains positions over 16 so that rpe2d_even
    # can run up to 2x (64 px), the largest resolution the study evaluates.
    for strategy in STUDY_STRATEGIES[2:]:
        cfg = compose(EXPERIMENTS_DIR / "study_cpu" / "shapes" / f"{strategy}.yaml")
        assert cfg.model.net.train_positions == "rpe2d" and cfg.model.net.max_len == 16


def test_a_study_seed_is_three_overrides_and_its_own_run_dir():
    args = expand_config_args(
        [
            "fit",
            "--config",
            str(EXPERIMENTS_DIR / "study_cpu" / "shapes" / "rope_grid.yaml"),
            "--seed_everything=2",
            "--model.seed=2",
            "--data.seed=2",
            "--trainer.default_root_dir=runs/study_cpu/shapes/seed2/rope_grid",
        ]
    )
    composed, ckpt = composed_config(args)
    assert ckpt["init_args"]["dirpath"] == "runs/study_cpu/shapes/seed2/rope_grid/checkpoints"
    assert composed["seed_everything"] == 2
    assert composed["model"]["seed"] == 2 and composed["data"]["seed"] == 2


@pytest.mark.parametrize("folder", ["study_cpu", "study_cpu/shapes"])
def test_study_grids_score_every_study_model_at_half_to_twice_its_resolution(folder):
    from lit_rpe.eval.grid.spec import load_grid

    spec = load_grid(EXPERIMENTS_DIR / folder / "grid.yaml", check_files=False)
    assert [m.name for m in spec.models] == STUDY_STRATEGIES
    for entry in spec.models:
        cfg = compose(EXPERIMENTS_DIR / folder / f"{entry.name}.yaml")
        assert entry.checkpoint == f"{cfg.trainer.default_root_dir}/checkpoints/last.ckpt"
        assert spec.val_shards == cfg.data.val_shards
        assert spec.resolutions == [(r, r) for r in (16, 24, 32, 48, 64)]
        assert cfg.model.resolution == 32
    assert spec.precision == "auto" and spec.num_images * 3 >= 96  # 3 seeds pooled
