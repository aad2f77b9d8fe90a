"""``make study``: the CPU study end to end, resumable at every stage.

    python -m lit_rpe.study [--sets shapes] [--seeds 1 2 3] [--workers 2] [--threads 1]
                            [--report-only]

1. trains every (data set, strategy, seed) run not finished, ``workers`` processes at a time
   (each run resumes its own last.ckpt);
2. scores every seed's checkpoints with its data set's grid (finished cells are skipped);
3. measures the objects of every shapes cell against true renders at the cell's resolution;
4. aggregates over seeds (mean, 95 % interval across seeds, bootstrap over pooled images,
   paired differences) into ``runs/study_cpu/study.csv``;
5. writes ``docs/RESULTS.md`` from that table, with ``docs/study_reading.md`` (the reading,
   written by a person from the numbers).

Interrupt it at any point and run it again: at most one checkpoint interval per training run,
or one cell per grid, is recomputed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.precision import machine_description
from lit_rpe.provenance import suite_commit
from lit_rpe.study.jobs import Job, run_jobs
from lit_rpe.study.plan import (
    STUDY_SETS,
    StudyPlan,
    TrainingRun,
    seed_grid_file,
    training_runs,
)

STUDY_DIR = Path("runs/study_cpu")


def check_data(plan: StudyPlan) -> None:
    """Every grid's validation shards exist (and so its training data was built)."""
    for study_set in plan.sets:
        spec = load_grid(study_set.grid, check_files=False)
        if not Path(spec.val_shards).is_dir() or not any(Path(spec.val_shards).glob("*.tar")):
            target = "make shapes" if "shapes" in spec.val_shards else "make photos"
            raise FileNotFoundError(
                f"{study_set.grid}: no shards in {spec.val_shards}; build them with `{target}`"
            )


def finished(run: TrainingRun) -> bool:
    if not run.checkpoint.is_file():
        return False
    state = torch.load(run.checkpoint, map_location="cpu", weights_only=False)
    return state.get("global_step", 0) >= run.max_steps


class Timings:
    """Wall and CPU seconds per stage, kept across interrupted runs in ``timings.json``."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def add(self, stage: str, wall_s: float, cpu_s: float) -> None:
        """A resumable stage: its time adds up over interrupted runs."""
        wall, cpu = self.data.get(stage, (0.0, 0.0))
        self.replace(stage, wall + wall_s, cpu + cpu_s)

    def replace(self, stage: str, wall_s: float, cpu_s: float) -> None:
        """A stage run whole each time (the report; cached object measures make a rerun
        shorter): the latest run's time."""
        self.data[stage] = (wall_s, cpu_s)
        self.save()

    def note(self, key: str, value: str) -> None:
        self.data.setdefault(key, value)
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=1))


def train(plan: StudyPlan, timings: Timings) -> None:
    runs = training_runs(plan)
    todo = [r for r in runs if not finished(r)]
    print(f"[study] training: {len(runs) - len(todo)} of {len(runs)} runs finished", flush=True)
    jobs = [
        Job(
            f"train {r.dataset}/{r.strategy}/seed{r.seed}",
            ("lit_rpe", *r.cli_args()),
            r.run_dir / "train.log",
        )
        for r in todo
    ]
    started = time.time()
    results = run_jobs(jobs, workers=plan.workers, threads=plan.threads)
    if results:
        timings.add("train", time.time() - started, sum(r.cpu_s for r in results))


def evaluate(plan: StudyPlan, timings: Timings) -> None:
    jobs = []
    for study_set in plan.sets:
        for seed in plan.seeds:
            grid = seed_grid_file(study_set.grid, seed)
            name = f"grid {study_set.name}/seed{seed}"
            jobs.append(Job(name, ("lit_rpe.eval.grid.run", str(grid)), grid.parent / "grid.log"))
    started = time.time()
    results = run_jobs(jobs, workers=plan.workers, threads=plan.threads)
    timings.add("eval grids", time.time() - started, sum(r.cpu_s for r in results))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sets", nargs="+", choices=sorted(STUDY_SETS), default=["shapes"],
        help="data sets, the main result first (photos: the optional second set)",
    )  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--workers", type=int, default=2, help="processes side by side")
    parser.add_argument("--threads", type=int, default=1, help="threads per process")
    parser.add_argument("--report-only", action="store_true", help="only stages 3-5")
    opts = parser.parse_args(argv)
    plan = StudyPlan(
        sets=tuple(STUDY_SETS[name] for name in dict.fromkeys(opts.sets)),
        seeds=tuple(opts.seeds),
        workers=opts.workers,
        threads=opts.threads,
    )
    check_data(plan)
    timings = Timings(STUDY_DIR / "timings.json")
    timings.note("commit_started", suite_commit())
    # the machine as the long stages see it (kernel limits included), not as a later
    # --report-only run would
    timings.note("machine", machine_description())
    if not opts.report_only:
        train(plan, timings)
        evaluate(plan, timings)
    from lit_rpe.study.report import write_study  # after the long stages: imports plotting

    started = time.process_time(), time.time()
    path = write_study(plan, STUDY_DIR, timings.data)
    timings.replace(
        "objects, intervals, report", time.time() - started[1], time.process_time() - started[0]
    )
    print(f"[study] wrote {path}")
    return path
