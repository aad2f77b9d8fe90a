"""What the study runs: runs per seed, their directories and overrides, per-seed grids."""

import pytest

from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.study.plan import (
    STUDY_SETS,
    StudyPlan,
    eval_seed,
    experiment_of,
    seed_grid_file,
    seed_run_dir,
    training_runs,
)
from lit_rpe.training.experiments import EXPERIMENTS_DIR, compose


def test_the_default_study_is_the_shapes_set():
    runs = training_runs(StudyPlan())
    assert len(runs) == 6 * 3 and {r.dataset for r in runs} == {"shapes"}


def test_every_strategy_of_both_sets_is_trained_once_per_seed_longest_first():
    runs = training_runs(StudyPlan(sets=(STUDY_SETS["shapes"], STUDY_SETS["photos"])))
    assert len(runs) == 2 * 6 * 3
    assert {(r.dataset, r.seed) for r in runs} == {
        (s, k) for s in ("shapes", "photos") for k in (1, 2, 3)
    }
    assert [r.max_steps for r in runs] == sorted((r.max_steps for r in runs), reverse=True)
    first = runs[0]
    assert first.dataset == "shapes"  # the main result has the longer runs
    assert first.experiment == EXPERIMENTS_DIR / "study_cpu/shapes" / f"{first.strategy}.yaml"
    assert first.max_steps == compose(first.experiment).trainer.max_steps


def test_a_run_is_its_experiment_plus_three_seeds_and_its_own_directory():
    run = next(r for r in training_runs(StudyPlan(seeds=(7,))) if r.strategy == "rpe2d_rope")
    args = run.cli_args(("--trainer.max_steps=2",))
    assert args[:3] == ["fit", "--config", str(run.experiment)]
    assert "--seed_everything=7" in args and "--model.seed=7" in args and "--data.seed=7" in args
    assert (
        f"--trainer.default_root_dir={run.run_dir}" in args and args[-1] == "--trainer.max_steps=2"
    )
    assert run.checkpoint == run.run_dir / "checkpoints" / "last.ckpt"
    assert str(run.run_dir).endswith("seed7/rpe2d_rope")


def test_paths_map_between_experiments_runs_and_seeds():
    ckpt = "runs/study_cpu/shapes/rope_grid/checkpoints/last.ckpt"
    assert experiment_of(ckpt) == EXPERIMENTS_DIR / "study_cpu/shapes/rope_grid.yaml"
    assert str(seed_run_dir(ckpt, 2)) == "runs/study_cpu/shapes/seed2/rope_grid"


def test_a_seed_grid_scores_that_seeds_checkpoints_with_its_own_noise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the seed grid is written under the grid's out_dir
    grid = EXPERIMENTS_DIR / "study_cpu/shapes/grid.yaml"
    base = load_grid(grid, check_files=False)
    spec = load_grid(seed_grid_file(grid, 3), check_files=False)
    assert spec.out_dir == f"{base.out_dir}/seed3" and spec.seed == eval_seed(3) == 3000
    assert [m.checkpoint for m in spec.models] == [
        f"{seed_run_dir(m.checkpoint, 3)}/checkpoints/last.ckpt" for m in base.models
    ]
    assert (spec.rules, spec.resolutions, spec.num_images) == (
        base.rules,
        base.resolutions,
        base.num_images,
    )
    # images of different seeds start from different noise
    assert eval_seed(2) - eval_seed(1) >= spec.num_images


def test_a_plan_refuses_too_few_or_repeated_seeds_and_no_workers():
    bad_plans = (
        dict(seeds=()),
        dict(seeds=(1, 1)),
        dict(workers=0),
        dict(threads=0),
        dict(sets=()),
    )
    for bad in bad_plans:
        with pytest.raises(ValueError):
            StudyPlan(**bad)
