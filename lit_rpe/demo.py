"""The end of ``make demo``: sample the trained demo at three resolutions and summarise the run.

    python -m lit_rpe.demo [--config experiments/demo.yaml] [--resolutions 32 48 64]

Writes ``<run dir>/samples/<rule>_<H>x<W>.png`` for each resolution and ``<run dir>/SUMMARY.md``
(which checkpoint, which grids, where the logs are, the last logged losses, and the curves that
``ResolutionEvalCallback`` recorded in ``<run dir>/eval/``), and prints it.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from lit_rpe.posenc import parse_rule
from lit_rpe.precision import accelerator_device_type, resolve_precision, trained_precision
from lit_rpe.training.callbacks.eval_history import markdown_tables, read_history_csv
from lit_rpe.training.cli import main as cli_main
from lit_rpe.training.experiments import compose


def last_logged(metrics_csv: Path, names: list[str]) -> dict[str, str]:
    """The last non-empty value of each metric in a Lightning CSV log."""
    found: dict[str, str] = {}
    if metrics_csv.is_file():
        with metrics_csv.open() as f:
            for row in csv.DictReader(f):
                found.update({k: row[k] for k in names if row.get(k)})
    return found


def summary(run_dir: Path, grids: list[Path], config: str, sampled_in: str) -> str:
    logs = sorted((run_dir / "logs").glob("version_*/metrics.csv"))
    metrics = {}
    for log in logs:
        metrics.update(last_logged(log, ["step", "train/loss", "val/loss", "val/loss_ema"]))
    lines = [
        f"# Demo run: {run_dir}",
        "",
        f"- experiment: `{config}`",
        f"- checkpoint: `{run_dir / 'checkpoints' / 'last.ckpt'}`",
        f"- logs: `{run_dir / 'logs'}` (CSV), `{run_dir / 'tensorboard'}` (TensorBoard)",
        f"- last logged: {', '.join(f'{k} = {v}' for k, v in metrics.items()) or 'nothing yet'}",
        f"- precision: trained in {trained_precision(run_dir / 'checkpoints' / 'last.ckpt')}, "
        f"sampled in {sampled_in}",
        "- sample grids (EMA weights, 16 images, label = image index mod classes):",
        *[f"  - `{g}`" for g in grids],
        f"- grids saved during training: `{run_dir / 'samples'}/step*.png`",
    ]
    history = run_dir / "eval" / "history.csv"
    if history.is_file():
        lines += [
            "",
            "## Scores during training (ResolutionEvalCallback)",
            "",
            f"The EMA at each evaluated step, per cell (resolution / rule); `{history}`, "
            f"figure `{history.with_suffix('.png')}`.",
            "",
            *markdown_tables(read_history_csv(history)),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="experiments/demo.yaml")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[32, 48, 64])
    opts = parser.parse_args(argv)
    config = compose(opts.config)
    run_dir = Path(str(config.trainer.default_root_dir))
    rule = parse_rule(config.model.get("rule") or "extrapolate").name
    grids = []
    for res in opts.resolutions:
        cli_main(["sample", "--config", opts.config, f"--resolution={res}"])
        grids.append(run_dir / "samples" / f"{rule}_{res}x{res}.png")
    device = accelerator_device_type(config.trainer.get("accelerator", "auto"))
    sampled_in = resolve_precision(config.trainer.get("precision", "auto"), device).lightning
    text = summary(run_dir, grids, opts.config, sampled_in)
    path = run_dir / "SUMMARY.md"
    path.write_text(text)
    print(text)
    return path


if __name__ == "__main__":
    main()
