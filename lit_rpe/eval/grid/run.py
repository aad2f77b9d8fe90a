"""The eval grid: every model x inference rule x resolution, scored, resumable.

    python -m lit_rpe.eval.grid experiments/grid_demo.yaml        (or: make eval-grid GRID=...)

Each cell (model, rule, resolution) generates ``num_images`` seed-indexed images into
``<out_dir>/cells/<model>/<rule>/<H>x<W>/images`` (split across ranks under torchrun), scores
them and writes ``metrics.json`` there, with the cell's protocol card (``lit_rpe.eval.protocol``).
A cell with that file is skipped on the next run unless its card differs in a setting that
defines the numbers (``changed_settings``); a half-generated cell only generates its missing
images, unless they were made under other generation settings (``generation.json``). The
report (``results.csv``, ``results.md``, ``<metric>_vs_resolution.png``, ``report.html``) is
rebuilt from all cells at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import torch
import torch.distributed as dist

from lit_rpe.distributed import barrier, rank_and_world
from lit_rpe.eval.cell import CellSettings, MetricPlan, plan_metrics, score_cell
from lit_rpe.eval.generation import generate_to_folder, read_chunks, read_images
from lit_rpe.eval.grid.report import write_report
from lit_rpe.eval.grid.report_html import HTML_NAME
from lit_rpe.eval.grid.spec import GridSpec, ModelEntry, load_grid
from lit_rpe.eval.metrics.references import reference_swd_descriptors
from lit_rpe.eval.protocol import GENERATION_FIELDS, ProtocolCard, cell_card, changed_settings
from lit_rpe.image_io import save_image_grid
from lit_rpe.posenc import InferenceRule
from lit_rpe.precision import resolve_precision
from lit_rpe.sampling.sampler import RuleNotApplicable, Sampler


def load_model(entry: ModelEntry, device: torch.device) -> Sampler:
    """The ``Sampler`` of one grid entry: a trained checkpoint or an official file."""
    if entry.kind == "lightning":
        from lit_rpe.training.module import DiffusionModule

        module = DiffusionModule.load_from_checkpoint(entry.checkpoint, map_location="cpu")
    else:
        from lit_rpe.official.model import load_official

        options = entry.options or {}
        module = load_official(entry.checkpoint, entry.kind, vae_path=entry.vae_path, **options)
    return module.to(device).eval()


def resolve_metrics(spec: GridSpec) -> tuple[MetricPlan, str]:
    """The metrics of the grid (the Inception network loaded when needed) and a note for the
    report when ``metrics: auto`` found no Inception weights."""
    plan = plan_metrics(spec)
    if not plan.dropped:
        return plan, ""
    from lit_rpe.eval.metrics.inception_weights import TORCH_FIDELITY_FILENAME, default_weights_dir

    note = (
        f"No FID Inception weights found, so {', '.join(plan.dropped)} were not "
        "computed; the table shows the offline metrics (validation loss, SWD). To add them, "
        f"put {TORCH_FIDELITY_FILENAME} in {default_weights_dir()} and run the grid again."
    )
    return plan, note


def load_images(folder: Path, indices) -> torch.Tensor:
    """PNGs ``<i>.png`` of ``indices`` as uint8 (N, 3, H, W)."""
    return torch.from_numpy(read_images(folder, indices)).permute(0, 3, 1, 2).contiguous()


def evaluate_cell(
    spec: GridSpec,
    settings: CellSettings,
    plan: MetricPlan,
    module: Sampler,
    entry: ModelEntry,
    rule: InferenceRule,
    resolution: tuple[int, int],
    cell: Path,
) -> dict:
    """Generate and score one cell; returns its record (also written to metrics.json)."""
    rank, _ = rank_and_world()
    h, w = resolution
    started = time.time()
    generate_to_folder(
        module,
        cell / "images",
        num_images=spec.num_images,
        resolution=resolution,
        rule=rule,
        seed=spec.seed,
        batch_size=spec.batch_size,
        autocast_dtype=settings.autocast_dtype,
        **settings.sample_kwargs,
    )
    barrier()
    images = read_chunks(cell / "images", num_images=spec.num_images, batch_size=spec.batch_size)
    scores = score_cell(module, rule, resolution, images, settings, plan)
    card = cell_card(settings, module, rule, resolution, inception_tag=plan.inception_tag)
    record = {
        "model": entry.name,
        "checkpoint": entry.checkpoint,
        "kind": entry.kind,
        "rule": rule.label,
        "height": h,
        "width": w,
        "train_resolution": "x".join(map(str, module.resolution)),
        "metrics": scores.metrics,
        "requested": list(plan.wanted),
        "seconds": round(time.time() - started, 1),
        "protocol": card.as_dict(),
    }
    for name, result in scores.frechet.items():  # the square root retried with the eps offset?
        record[f"{name}_retried"], record[f"{name}_retry_reason"] = result.retried, result.reason
    if rank == 0:
        images = load_images(cell / "images", range(min(spec.grid_images, spec.num_images)))
        save_image_grid(images.float() / 127.5 - 1, cell / "grid.png")
        tmp = cell / "metrics.json.tmp"
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(cell / "metrics.json")  # the cell counts as done only when this exists
    return record


def drop_stale_images(cell: Path, card: ProtocolCard) -> None:
    """Delete the cell's images if they were generated under other ``GENERATION_FIELDS`` than
    ``card``'s (or under unknown ones), then record ``card`` as theirs in generation.json."""
    path = cell / "generation.json"
    stored = json.loads(path.read_text()) if path.is_file() else None
    if (cell / "images").is_dir() and changed_settings(stored, card, GENERATION_FIELDS):
        shutil.rmtree(cell / "images")
    cell.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card.as_dict(), indent=1))


def not_applicable(module: Sampler, rule, resolution) -> str | None:
    """Why ``rule`` cannot run at ``resolution`` on this model (None when it can); a resolution
    that does not divide the patch grid is an error of the grid file and raises."""
    try:
        module.check_resolution(resolution, rule)
    except RuleNotApplicable as err:
        return str(err)
    return None


def run_grid(spec: GridSpec) -> Path:
    """Evaluate every cell of ``spec`` not yet done, then write the report; returns results.md."""
    out = Path(spec.out_dir)
    reference_swd_descriptors.cache_clear()  # shards may have changed since an earlier grid
    plan, note = resolve_metrics(spec)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if plan.inception is not None:
        plan.inception.to(device)
    rank, _ = rank_and_world()
    # precision auto resolved once: every cell runs, records and is compared in the name used
    resolved = resolve_precision(spec.precision, device.type)
    spec = dataclasses.replace(spec, precision=resolved.name)
    settings = CellSettings(spec, spec.val_shards, resolved, spec.num_classes)
    if rank == 0:
        print(f"[eval-grid] {resolved.describe()}", flush=True)
    # Load every model and check every resolution first: a bad cell fails before any work.
    cells = []
    for entry in spec.models:
        module = load_model(entry, device)
        for rule in spec.rules_of(entry):
            for resolution in spec.resolutions:
                reason = not_applicable(module, rule, resolution)
                card = None
                if reason is None:  # what this run would record, to check finished cells
                    card = cell_card(
                        settings, module, rule, resolution, inception_tag=plan.inception_tag
                    )
                cells.append((entry, rule, resolution, reason, card))
        del module
    skipped = []
    current = None
    for entry, rule, resolution, reason, card in cells:
        h, w = resolution
        cell = out / "cells" / entry.name / rule.label / f"{h}x{w}"
        if reason is not None:
            skipped.append(f"{entry.name} / {rule.label} at {h}x{w}: {reason}")
            continue
        if (cell / "metrics.json").is_file():
            done = json.loads((cell / "metrics.json").read_text())
            changed = changed_settings(done.get("protocol"), card)
            if not changed and set(plan.wanted) <= set(done.get("requested", [])):
                continue
            if changed and rank == 0:
                print(f"[eval-grid] re-scoring {cell}: its {', '.join(changed)} differ(s)")
        if rank == 0:
            drop_stale_images(cell, card)
        barrier()
        if current is None or current[0] is not entry:
            current = (entry, load_model(entry, device))
        if rank == 0:
            print(f"[eval-grid] {entry.name} / {rule.label} / {h}x{w}", flush=True)
        evaluate_cell(spec, settings, plan, current[1], entry, rule, resolution, cell)
    if rank == 0:
        return write_report(spec, note=note, skipped=skipped)
    return out / "results.md"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Evaluate a grid of models x rules x resolutions")
    parser.add_argument("grid", help="grid YAML, e.g. experiments/grid_demo.yaml")
    parser.add_argument(
        "--print", action="store_true", help="print results.md and report.html's path at the end"
    )
    opts = parser.parse_args(argv)
    try:
        spec = load_grid(opts.grid)
    except (FileNotFoundError, ValueError) as err:  # each names the file and the key
        parser.exit(2, f"eval-grid: {err}\n")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    path = run_grid(spec)
    if opts.print and rank_and_world()[0] == 0:
        print(path.read_text())
        print(f"Report (samples and metrics side by side): {(path.parent / HTML_NAME).resolve()}")
    return path


if __name__ == "__main__":
    main()
