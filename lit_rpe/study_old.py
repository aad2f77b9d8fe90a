"""``make study``: the CPU resolution-generalization study, end to end and resumable.

    python -m lit_rpe.study [--grid experiments/study_cpu/grid.yaml] [--report-only]

1. trains every model of the grid that is not finished (each run resumes its own last.ckpt);
2. runs the eval grid (finished cells are skipped);
3. writes ``docs/RESULTS.md``: the run's table, plot and sample grids, the command, commit and
   timings, and the reading in ``docs/study_reading.md`` (written by a person from the numbers).

Interrupt it at any point and run it again: at most one checkpoint interval of one model, or
one cell of the grid, is recomputed.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time
from pathlib import Path

import torch

from lit_rpe.cli import main as cli_main
from lit_rpe.eval.grid import run_grid
from lit_rpe.eval.grid_spec import load_grid
from lit_rpe.experiments import compose
from lit_rpe.precision import machine_description, trained_precision
from lit_rpe.provenance import suite_commit

DOCS = Path("docs")


def experiment_of(checkpoint: str) -> Path:
    """runs/study_cpu/<name>/checkpoints/last.ckpt -> experiments/study_cpu/<name>.yaml"""
    run = Path(checkpoint).parent.parent
    return Path("experiments") / run.relative_to("runs").with_suffix(".yaml")


def finished(checkpoint: Path, max_steps: int) -> bool:
    if not checkpoint.is_file():
        return False
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    return state.get("global_step", 0) >= max_steps


def train_all(grid_path: str, timings: dict) -> None:
    spec = load_grid(grid_path, check_files=False)
    for entry in spec.models:
        config = experiment_of(entry.checkpoint)
        max_steps = int(compose(config).trainer.max_steps)
        if finished(Path(entry.checkpoint), max_steps):
            print(f"[study] {entry.name}: trained ({max_steps} steps)", flush=True)
            continue
        print(f"[study] training {entry.name} ({config})", flush=True)
        started = time.time()
        cli_main(["fit", "--config", str(config)])
        timings[f"train {entry.name}"] = (
            timings.get(f"train {entry.name}", 0) + time.time() - started
        )


def sample_strip(cells: Path, rule: str, resolutions: list[tuple[int, int]], out: Path) -> bool:
    """One figure: a model's sample grids under ``rule`` at every resolution, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    paths = [cells / rule / f"{h}x{w}" / "grid.png" for h, w in resolutions]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        return False
    fig, axes = plt.subplots(1, len(paths), figsize=(3.2 * len(paths), 3.6))
    for ax, path in zip(list(axes) if len(paths) > 1 else [axes], paths, strict=True):
        ax.imshow(Image.open(path), interpolation="nearest")
        ax.set_title(path.parent.name, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{cells.name}, rule {rule}", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True


def recorded_precisions(results_csv: Path) -> list[str]:
    """The precisions the grid's cells were evaluated in (its results.csv)."""
    with results_csv.open() as f:
        return sorted({row["precision"] for row in csv.DictReader(f)}) or ["unknown"]


def write_results(grid_path: str, timings: dict, command: str) -> Path:
    """docs/RESULTS.md from the grid's outputs (table, plot, sample strips) and the reading."""
    spec = load_grid(grid_path, check_files=False)
    out = Path(spec.out_dir)
    figures = DOCS / "study_cpu"
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copy(out / "fid_vs_resolution.png", figures / "fid_vs_resolution.png")
    shutil.copy(out / "results.csv", figures / "results.csv")
    strips = []
    for entry in spec.models:
        rule = compose(experiment_of(entry.checkpoint)).model.sampling.get("rule") or "extrapolate"
        path = figures / f"samples_{entry.name}.png"
        if sample_strip(out / "cells" / entry.name, rule, spec.resolutions, path):
            strips.append((entry.name, rule, path))
    table = (out / "results.md").read_text().replace("\n# ", "\n## ").replace("\n### ", "\n#### ")
    table = table.split("\n", 1)[1] if table.startswith("# ") else table
    reading = DOCS / "study_reading.md"
    lines = [
        "# Results: resolution generalization on a laptop CPU",
        "",
        "Produced by (interrupted runs resume, see below)",
        "",
        f"    {command}",
        "",
        f"at commit `{timings.get('_commit') or suite_commit()}` on {machine_description()} "
        f"({torch.get_num_threads()} threads, torch {torch.__version__}); trained in "
        f"{', '.join(sorted({trained_precision(m.checkpoint) for m in spec.models}))}, "
        f"evaluated in {', '.join(recorded_precisions(out / 'results.csv'))}. Timings of this run: "
        + ", ".join(f"{k} {v / 60:.1f} min" for k, v in timings.items() if k[0] != "_")
        + ". The numbers below are copied by `lit_rpe.study` from `"
        + str(out / "results.csv")
        + "` (also in `docs/study_cpu/results.csv`).",
        "",
        reading.read_text() if reading.is_file() else "_(reading not written yet)_",
        "",
        "## The table",
        "",
        table,
        "## The plot",
        "",
        "![metrics against resolution](study_cpu/fid_vs_resolution.png)",
        "",
        "## Samples (EMA weights, 16 images per cell, same seeds in every cell)",
        "",
        *[f"**{name}** ({rule}):\n\n![{name}](study_cpu/{p.name})\n" for name, rule, p in strips],
    ]
    path = DOCS / "RESULTS.md"
    path.write_text("\n".join(lines))
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="experiments/study_cpu/grid.yaml")
    parser.add_argument("--report-only", action="store_true", help="only rewrite RESULTS.md")
    opts = parser.parse_args(argv)
    timing_file = Path(load_grid(opts.grid, check_files=False).out_dir) / "timings.json"
    timings = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    if not opts.report_only:
        timings.setdefault("_commit", suite_commit())  # the code the run started at
        train_all(opts.grid, timings)
        timing_file.parent.mkdir(parents=True, exist_ok=True)
        timing_file.write_text(json.dumps(timings))
        started = time.time()
        run_grid(load_grid(opts.grid))
        timings["eval grid"] = timings.get("eval grid", 0) + time.time() - started
        timing_file.write_text(json.dumps(timings))
    path = write_results(opts.grid, timings, "make study")
    print((Path(load_grid(opts.grid, check_files=False).out_dir) / "results.md").read_text())
    print(f"[study] wrote {path}")
    return path


if __name__ == "__main__":
    main()
