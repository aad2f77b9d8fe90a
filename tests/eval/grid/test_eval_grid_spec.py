"""Grid files: rule entries and their labels, and the cells the shipped grids list."""

from pathlib import Path

import pytest

from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.posenc import InferenceRule, parse_rule
from lit_rpe.training.experiments import EXPERIMENTS_DIR, compose

RPE2D_ADD_ONS = {
    "rpe2d_even+shift_auto",
    "rpe2d_even+attn_proportional",
    "rpe2d_even+attn_yarn",
    "rpe2d_even+attn_proportional+shift_auto",
}
TASR = {"tasr", "tasr_static", "tasr+attn_proportional"}


def labels(name: str) -> set[str]:
    spec = load_grid(Path("experiments") / f"{name}.yaml", check_files=False)
    return {rule.label for rule in spec.rules}


def test_rule_entries_carry_the_tau_mode_into_label_and_rule():
    entry = parse_rule({"name": "yarn", "tau_axes": "max"})
    assert entry.label == "yarn+tau_max" and entry.tau_axes == "max"
    assert InferenceRule("yarn").label == "yarn"  # per-axis is the default, not in the label
    assert parse_rule("tasr").time_dependent


def test_invalid_rule_entries_fail_when_read():
    with pytest.raises(ValueError, match="apply it twice"):
        parse_rule({"name": "dype_yarn", "attention_scale": "yarn"})
    with pytest.raises(ValueError, match="valid: per_axis, max"):
        parse_rule({"name": "yarn", "tau_axes": "mean"})
    with pytest.raises(ValueError, match="apply to dype_"):
        parse_rule({"name": "tasr", "lambda_s": 2.0})
    with pytest.raises(ValueError, match="unknown rule field"):
        parse_rule({"name": "tasr", "lambda": 2.0})
    with pytest.raises(ValueError, match="unknown inference rule 'tasr_dynamic'"):
        parse_rule("tasr_dynamic")


@pytest.mark.parametrize("name", ["grid_256", "grid_512"])
def test_shipped_grids_list_tasr_and_rpe2d_with_its_add_ons(name):
    assert TASR | RPE2D_ADD_ONS <= labels(name)


def test_the_cpu_study_scores_tasr_on_its_main_set_and_no_add_ons_to_fit_its_budget():
    assert "tasr" in labels("study_cpu/shapes/grid")
    assert not RPE2D_ADD_ONS & (labels("study_cpu/shapes/grid") | labels("study_cpu/grid"))


def test_official_grid_lists_tasr():
    assert {"tasr", "tasr_static"} <= labels("grid_official_256")


def test_rpe2d_range_2x_experiment_is_in_the_256_grid():
    cfg = compose(EXPERIMENTS_DIR / "rpe2d_256_range2x.yaml")
    base = compose(EXPERIMENTS_DIR / "rpe2d_256.yaml")
    assert cfg.model.net.max_len == 32 == 2 * 16  # 2x the 16 x 16 grid of 256 px: 512 px
    assert base.model.net.max_len == 64
    assert cfg.trainer.default_root_dir == "runs/rpe2d_256_range2x"
    # everything else as rpe2d_256
    assert cfg.model.net.train_positions == "rpe2d" and cfg.model.net.micro_conditioning
    assert cfg.data.augmentation == base.data.augmentation
    spec = load_grid(Path("experiments/grid_256.yaml"), check_files=False)
    models = {m.name: m.checkpoint for m in spec.models}
    assert models["rpe2d_256_range2x"] == "runs/rpe2d_256_range2x/checkpoints/last.ckpt"
    largest = max(max(r) for r in spec.resolutions)
    assert largest // 16 == cfg.model.net.max_len  # SD-VAE f=8 x patch 2: the largest grid
