"""Render (and submit) an experiment's sbatch script: ``make sbatch EXP=... NODES=... GPUS=...``.

    python -m lit_rpe.training.slurm rpe2d_256 --nodes 4 --gpus 8 --partition gpu \
        --time 48:00:00 [--dry]

The script runs ``srun python -m lit_rpe fit`` with one task per GPU, so that tasks per node,
Lightning's ``devices`` and ``num_nodes`` always agree with the allocation. It is written into
the experiment's run directory and submitted with ``sbatch`` when that command exists.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from lit_rpe.training.experiments import EXPERIMENTS_DIR, compose, list_experiments

TEMPLATE = EXPERIMENTS_DIR / "slurm" / "train.sbatch"


def render_sbatch(
    experiment: str,
    *,
    nodes: int,
    gpus: int,
    time: str = "48:00:00",
    partition: str | None = None,
    cpus_per_task: int = 8,
    args: str = "",
    project_dir: Path = EXPERIMENTS_DIR.parent,
    python: str = "python",
) -> tuple[str, Path]:
    """The sbatch script text of ``experiment`` and the run directory it belongs to."""
    if nodes < 1 or gpus < 1:
        raise ValueError(f"need nodes >= 1 and gpus >= 1, got nodes={nodes}, gpus={gpus}")
    config = EXPERIMENTS_DIR / f"{experiment}.yaml"
    if not config.is_file():
        raise ValueError(
            f"unknown experiment {experiment!r}; valid: {', '.join(list_experiments())}"
        )
    run_dir = Path(str(compose(config).trainer.default_root_dir))
    log_dir = run_dir if run_dir.is_absolute() else project_dir / run_dir  # sbatch's cwd may differ
    script = TEMPLATE.read_text().format(
        job_name=experiment.replace("/", "_"),
        nodes=nodes,
        gpus=gpus,
        cpus_per_task=cpus_per_task,
        time=time,
        partition_line=f"#SBATCH --partition={partition}" if partition else "",
        run_dir=log_dir,
        project_dir=project_dir,
        python=python,
        config=config.relative_to(project_dir) if config.is_relative_to(project_dir) else config,
        args=args,
    )
    return script, run_dir


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="experiment name, e.g. rpe2d_256")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs (= tasks) per node")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--time", default="48:00:00")
    parser.add_argument("--cpus-per-task", type=int, default=8)
    parser.add_argument("--args", default="", help="extra CLI arguments for lit_rpe fit")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--dry", action="store_true", help="only render, do not submit")
    opts = parser.parse_args(argv)
    script, run_dir = render_sbatch(
        opts.experiment,
        nodes=opts.nodes,
        gpus=opts.gpus,
        time=opts.time,
        partition=opts.partition,
        cpus_per_task=opts.cpus_per_task,
        args=opts.args,
        python=opts.python,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "train.sbatch"
    path.write_text(script)
    command = ["sbatch", str(path)]
    if opts.dry:
        print(f"rendered {path} (dry run); submit with: {shlex.join(command)}")
    elif shutil.which("sbatch"):
        subprocess.run(command, check=True)
    else:
        print(f"rendered {path}; sbatch is not on this machine, submit with: {shlex.join(command)}")
    return path


if __name__ == "__main__":
    main()
