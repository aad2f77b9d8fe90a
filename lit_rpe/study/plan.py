"""What the CPU study runs: data sets x strategies x training seeds, and where each lands.

The study's experiments and grids are ordinary files (``experiments/study_cpu/``): a grid names
the six models of one data set by their single-run checkpoints,
``runs/study_cpu[/shapes]/<strategy>/checkpoints/last.ckpt``. The study trains every strategy
once per seed ``k`` into ``runs/study_cpu[/shapes]/seed<k>/<strategy>`` (three overrides: the
global, model and data seeds) and scores each seed's checkpoints with that grid, rewritten to
``<grid out_dir>/seed<k>/grid.yaml`` with evaluation seed ``eval_seed(k)``, so the images pooled
over seeds start from distinct noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.training.experiments import EXPERIMENTS_DIR, compose


@dataclass(frozen=True)
class StudySet:
    """One data set of the study. grid: its eval grid file; objects: score the shapes set's
    object metrics (``lit_rpe.eval.metrics.object_metrics``) in every cell."""

    name: str
    grid: str
    objects: bool = False


# Every data set the study can run. The default is the shapes set alone: its object metrics
# measure layout (one clean object, fragments, duplicates), which is the question; the photo set
# has only validation loss and SWD and took 40 % of the 2-hour budget (docs/RESULTS.md).
STUDY_SETS = {
    "shapes": StudySet("shapes", "experiments/study_cpu/shapes/grid.yaml", objects=True),
    "photos": StudySet("photos", "experiments/study_cpu/grid.yaml"),
}


@dataclass(frozen=True)
class StudyPlan:
    """sets: the data sets, the main result first; seeds: training seeds (>= 3 for intervals);
    workers: processes run side by side, each with ``threads`` threads."""

    sets: tuple[StudySet, ...] = (STUDY_SETS["shapes"],)
    seeds: tuple[int, ...] = (1, 2, 3)
    workers: int = 2
    threads: int = 1

    def __post_init__(self):
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if not self.sets:
            raise ValueError(f"a study needs at least one data set of {sorted(STUDY_SETS)}")
        if self.workers < 1 or self.threads < 1:
            raise ValueError(f"need workers >= 1 and threads >= 1: {self.workers}, {self.threads}")


def eval_seed(training_seed: int) -> int:
    """The grid's noise seed for the checkpoints of one training seed (images 0..N-1 use noise
    seeds ``eval_seed + i``: disjoint across seeds for N <= 1000)."""
    return 1000 * training_seed


def experiment_of(checkpoint: str | Path) -> Path:
    """``runs/<path>/<name>/checkpoints/last.ckpt`` -> ``experiments/<path>/<name>.yaml``."""
    run = Path(checkpoint).parent.parent
    return EXPERIMENTS_DIR / run.relative_to("runs").with_suffix(".yaml")


def seed_run_dir(checkpoint: str | Path, seed: int) -> Path:
    """``runs/study_cpu/shapes/rope_grid/checkpoints/last.ckpt``, 2 ->
    ``runs/study_cpu/shapes/seed2/rope_grid``."""
    run = Path(checkpoint).parent.parent
    return run.parent / f"seed{seed}" / run.name


@dataclass(frozen=True)
class TrainingRun:
    """One (data set, strategy, seed) training run."""

    dataset: str
    strategy: str
    seed: int
    experiment: Path
    run_dir: Path
    max_steps: int

    @property
    def checkpoint(self) -> Path:
        return self.run_dir / "checkpoints" / "last.ckpt"

    def cli_args(self, extra: tuple[str, ...] = ()) -> list[str]:
        """Arguments of ``python -m lit_rpe`` for this run (it resumes its last.ckpt itself)."""
        k = self.seed
        return [
            "fit",
            "--config",
            str(self.experiment),
            f"--seed_everything={k}",
            f"--model.seed={k}",
            f"--data.seed={k}",
            f"--trainer.default_root_dir={self.run_dir}",
            *extra,
        ]


def training_runs(plan: StudyPlan) -> list[TrainingRun]:
    """Every training run of the plan, the longest first (they share the workers)."""
    runs = []
    for study_set in plan.sets:
        spec = load_grid(study_set.grid, check_files=False)
        for entry in spec.models:
            experiment = experiment_of(entry.checkpoint)
            if not experiment.is_file():
                raise FileNotFoundError(
                    f"{study_set.grid}: model {entry.name} has no experiment {experiment} "
                    "(study checkpoints must be runs/<experiment path>/checkpoints/last.ckpt)"
                )
            max_steps = int(compose(experiment).trainer.max_steps)
            for seed in plan.seeds:
                runs.append(
                    TrainingRun(
                        study_set.name,
                        entry.name,
                        seed,
                        experiment,
                        seed_run_dir(entry.checkpoint, seed),
                        max_steps,
                    )
                )
    return sorted(runs, key=lambda r: -r.max_steps)


def seed_grid_file(grid: str | Path, seed: int) -> Path:
    """Write the grid of one training seed (checkpoints of ``seed``, out_dir ``<out>/seed<k>``,
    noise seed ``eval_seed(seed)``) next to its results; returns its path."""
    raw = yaml.safe_load(Path(grid).read_text())
    raw["name"] = f"{raw['name']}_seed{seed}"
    raw["out_dir"] = str(Path(raw["out_dir"]) / f"seed{seed}")
    raw["seed"] = eval_seed(seed)
    for model in raw["models"]:
        model["checkpoint"] = str(seed_run_dir(model["checkpoint"], seed) / "checkpoints/last.ckpt")
    path = Path(raw["out_dir"]) / "grid.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"# Written by lit_rpe.study from {grid} for training seed {seed}.\n"
    path.write_text(text + yaml.safe_dump(raw, sort_keys=False))
    return path
