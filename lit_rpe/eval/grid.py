"""The eval grid: every model x inference rule x resolution, scored, resumable.

    python -m lit_rpe.eval.grid experiments/grid_demo.yaml        (or: make eval-grid GRID=...)

Each cell (model, rule, resolution) generates ``num_samples`` seed-indexed images into
``<out_dir>/cells/<model>/<rule>/<H>x<W>/images`` (split across ranks under torchrun), scores
them and writes ``metrics.json`` there, with the cell's protocol card (``lit_rpe.eval.protocol``).
A cell with that file is skipped on the next run unless its card differs in a setting that
defines the numbers (``changed_settings``); a half-generated cell only generates its missing
images, unless they were made under other generation settings (``generation.json``). The
report (``results.csv``, ``results.md``, ``fid_vs_resolution.png``) is rebuilt from all cells
at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shutil
import time
from pathlib import Path

import torch
import torch.distributed as dist

from lit_rpe.data.validation import validation_batches
from lit_rpe.distributed import all_gather_rows, barrier, rank_and_world
from lit_rpe.eval.generation import (
    chunks_of_rank,
    generate_to_folder,
    read_images,
)
from lit_rpe.eval.grid_spec import (
    INCEPTION_METRICS,
    OFFLINE_METRICS,
    GridSpec,
    ModelEntry,
    load_grid,
)
from lit_rpe.eval.protocol import (
    GENERATION_FIELDS,
    ProtocolCard,
    changed_settings,
    grid_cell_card,
)
from lit_rpe.eval.references import (
    image_features,
    import_adm_reference,
    reference_features,
    reference_images_uint8,
)
from lit_rpe.eval.report import write_report
from lit_rpe.eval.scores import inception_score, kernel_inception_distance, precision_recall
from lit_rpe.eval.statistics import FeatureStatistics, FrechetResult, fid_result_from_statistics
from lit_rpe.eval.swd import sliced_wasserstein_distance
from lit_rpe.eval.validation_loss import flow_validation_loss
from lit_rpe.image_io import save_image_grid
from lit_rpe.precision import resolve_precision
from lit_rpe.sampler import RuleNotApplicable, Sampler


def load_model(entry: ModelEntry, device: torch.device) -> Sampler:
    """The ``Sampler`` of one grid entry: a trained checkpoint or an official file."""
    if entry.kind == "lightning":
        from lit_rpe.module import DiffusionModule

        module = DiffusionModule.load_from_checkpoint(entry.checkpoint, map_location="cpu")
    else:
        from lit_rpe.official import load_official

        module = load_official(entry.checkpoint, entry.kind, vae_path=entry.vae_path)
    return module.to(device).eval()


def resolve_metrics(spec: GridSpec):
    """(metric names, the Inception network or None, a note for the report)."""
    from lit_rpe.eval.inception_weights import resolve_inception_weights, weights_tag

    wanted = list(OFFLINE_METRICS + INCEPTION_METRICS) if spec.metrics == "auto" else spec.metrics
    if not any(m in INCEPTION_METRICS for m in wanted):
        return wanted, None, ""
    try:
        path = resolve_inception_weights(spec.inception_weights)
    except FileNotFoundError:
        if spec.metrics != "auto":
            raise
        from lit_rpe.eval.inception_weights import TORCH_FIDELITY_FILENAME, default_weights_dir

        note = (
            "No FID Inception weights found, so FID/sFID/IS/KID/precision/recall were not "
            "computed; the table shows the offline metrics (validation loss, SWD). To add them, "
            f"put {TORCH_FIDELITY_FILENAME} in {default_weights_dir()} and run the grid again."
        )
        return [m for m in wanted if m in OFFLINE_METRICS], None, note
    from lit_rpe.eval.inception import FIDInceptionV3

    inception = FIDInceptionV3(path)
    inception.weights_tag = weights_tag(path)
    return wanted, inception, ""


def load_images(folder: Path, indices) -> torch.Tensor:
    """PNGs ``<i>.png`` of ``indices`` as uint8 (N, 3, H, W)."""
    return torch.from_numpy(read_images(folder, indices)).permute(0, 3, 1, 2).contiguous()


@functools.lru_cache(maxsize=4)
def cached_reference_images(shards: str, resolution: tuple[int, int], num: int, classes):
    """The SWD reference of one resolution, decoded once for all the rules and models of a grid."""
    return reference_images_uint8(shards, resolution, num, num_classes=classes)


def generated_features(inception, folder: Path, num: int, batch_size: int) -> dict:
    """Inception features of images 0..num-1 (each rank embeds its own chunks), in index order."""
    rank, world = rank_and_world()
    indices = [i for chunk in chunks_of_rank(num, batch_size, rank, world) for i in chunk]
    local = image_features(inception, load_images(folder, indices)) if indices else None
    out = {}
    for key in ("pool", "spatial", "logits_unbiased"):
        if local is not None and key not in local:
            continue
        rows = local[key] if local is not None else torch.empty(0, 1)
        idx = torch.tensor(indices, dtype=torch.float64).unsqueeze(1)
        gathered = all_gather_rows(torch.cat([idx, rows.double()], 1))
        order = gathered[:, 0].argsort()
        out[key] = gathered[order, 1:].float()
    return out


def inception_metrics(
    spec, inception, folder, resolution, wanted
) -> tuple[dict[str, float], dict[str, FrechetResult]]:
    """(metric values, the ``FrechetResult`` of FID and sFID: whether their root was retried)."""
    h, w = resolution
    adm = (spec.adm_references or {}).get(f"{h}x{w}")
    if adm:
        ref = import_adm_reference(adm, inception)
    else:
        ref = reference_features(
            inception,
            spec.val_shards,
            resolution,
            spec.num_reference,
            cache_dir=spec.reference_cache,
            weights_tag=inception.weights_tag,
            num_classes=spec.num_classes,
        )
    fake = generated_features(inception, folder, spec.num_samples, spec.batch_size)
    result, frechet = {}, {}
    if "fid" in wanted:
        stats = FeatureStatistics(2048).update(fake["pool"])
        frechet["fid"] = fid_result_from_statistics(stats, ref.pool, method=spec.fid_method)
    if "sfid" in wanted:
        stats = FeatureStatistics(fake["spatial"].shape[1]).update(fake["spatial"])
        frechet["sfid"] = fid_result_from_statistics(stats, ref.spatial, method=spec.fid_method)
    result.update({name: r.value for name, r in frechet.items()})
    if "is" in wanted and "logits_unbiased" in fake:
        result["is"] = inception_score(fake["logits_unbiased"], splits=10).mean
    if ref.pool_rows.shape[0] and "kid" in wanted:
        size = min(1000, ref.pool_rows.shape[0], fake["pool"].shape[0])
        result["kid"] = kernel_inception_distance(
            ref.pool_rows, fake["pool"], subset_size=size
        ).mean
    if ref.pool_rows.shape[0] > 3 and "precision_recall" in wanted:
        pr = precision_recall(ref.pool_rows, fake["pool"], k=3)
        result.update(precision=pr.precision, recall=pr.recall)
    return result, frechet


def evaluate_cell(spec, module, entry, rule_entry, resolution, inception, wanted, cell: Path):
    """Generate and score one cell; returns its record (also written to metrics.json)."""
    rank, _ = rank_and_world()
    rule = rule_entry.inference_rule()
    h, w = resolution
    started = time.time()
    device = module.device
    autocast = torch.bfloat16 if spec.precision == "bf16" else None
    sampler = {k: v for k, v in vars(spec.sampler).items() if v is not None}
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast is not None):
        generate_to_folder(
            module,
            cell / "images",
            num_images=spec.num_samples,
            resolution=resolution,
            rule=rule,
            seed=spec.seed,
            batch_size=spec.batch_size,
            **sampler,
        )
    barrier()
    metrics: dict[str, float] = {}
    frechet: dict[str, FrechetResult] = {}
    if "val_loss" in wanted and module.supports_validation_loss:
        batches = validation_batches(
            spec.val_shards, resolution, spec.val_loss_images, num_classes=spec.num_classes
        )
        loss = flow_validation_loss(
            module,
            batches,
            rule=rule,
            num_t=spec.val_loss_t,
            seed=spec.seed,
            autocast_dtype=autocast,
        )
        metrics["val_loss"] = loss["val_loss"]
    if "swd" in wanted:
        real = cached_reference_images(
            spec.val_shards, tuple(resolution), spec.num_reference, spec.num_classes
        )
        fake = load_images(cell / "images", range(spec.num_samples))
        metrics["swd"] = sliced_wasserstein_distance(real, fake, seed=spec.seed).average
    if inception is not None:
        scores, frechet = inception_metrics(spec, inception, cell / "images", resolution, wanted)
        metrics.update(scores)
    card = grid_cell_card(
        spec,
        module,
        rule,
        resolution,
        precision=spec.precision,
        inception_tag=inception_tag(inception),
    )
    record = {
        "model": entry.name,
        "checkpoint": entry.checkpoint,
        "kind": entry.kind,
        "rule": rule_entry.label,
        "height": h,
        "width": w,
        "train_resolution": "x".join(map(str, module.resolution)),
        "metrics": metrics,
        "requested": wanted,
        "seconds": round(time.time() - started, 1),
        "protocol": card.as_dict(),
    }
    for name, result in frechet.items():  # the square root retried with the eps offset?
        record[f"{name}_retried"], record[f"{name}_retry_reason"] = result.retried, result.reason
    if rank == 0:
        images = load_images(cell / "images", range(min(spec.grid_images, spec.num_samples)))
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


def inception_tag(inception) -> str | None:
    """The weights tag of the grid's Inception network (None: offline metrics only)."""
    return None if inception is None else inception.weights_tag


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
    cached_reference_images.cache_clear()  # shards may have changed since an earlier grid
    wanted, inception, note = resolve_metrics(spec)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if inception is not None:
        inception.to(device)
    rank, _ = rank_and_world()
    # precision auto resolved once: every cell runs, records and is compared in the name used
    resolved = resolve_precision(spec.precision, device.type)
    spec = dataclasses.replace(spec, precision=resolved.name)
    if rank == 0:
        print(f"[eval-grid] {resolved.describe()}", flush=True)
    # Load every model and check every resolution first: a bad cell fails before any work.
    plans = []
    for entry in spec.models:
        module = load_model(entry, device)
        for rule_entry in spec.rules_of(entry):
            for resolution in spec.resolutions:
                rule = rule_entry.inference_rule()
                reason = not_applicable(module, rule, resolution)
                card = None
                if reason is None:  # what this run would record, to check finished cells
                    card = grid_cell_card(
                        spec, module, rule, resolution, precision=spec.precision,
                        inception_tag=inception_tag(inception),
                    )  # fmt: skip
                plans.append((entry, rule_entry, resolution, reason, card))
        del module
    skipped = []
    current = None
    for entry, rule_entry, resolution, reason, card in plans:
        h, w = resolution
        cell = out / "cells" / entry.name / rule_entry.label / f"{h}x{w}"
        if reason is not None:
            skipped.append(f"{entry.name} / {rule_entry.label} at {h}x{w}: {reason}")
            continue
        if (cell / "metrics.json").is_file():
            done = json.loads((cell / "metrics.json").read_text())
            changed = changed_settings(done.get("protocol"), card)
            if not changed and set(wanted) <= set(done.get("requested", [])):
                continue
            if changed and rank == 0:
                print(f"[eval-grid] re-scoring {cell}: its {', '.join(changed)} differ(s)")
        if rank == 0:
            drop_stale_images(cell, card)
        barrier()
        if current is None or current[0] is not entry:
            current = (entry, load_model(entry, device))
        if rank == 0:
            print(f"[eval-grid] {entry.name} / {rule_entry.label} / {h}x{w}", flush=True)
        evaluate_cell(spec, current[1], entry, rule_entry, resolution, inception, wanted, cell)
    if rank == 0:
        return write_report(spec, note=note, skipped=skipped)
    return out / "results.md"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Evaluate a grid of models x rules x resolutions")
    parser.add_argument("grid", help="grid YAML, e.g. experiments/grid_demo.yaml")
    parser.add_argument("--print", action="store_true", help="print results.md at the end")
    opts = parser.parse_args(argv)
    spec = load_grid(opts.grid)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    path = run_grid(spec)
    if opts.print and rank_and_world()[0] == 0:
        print(path.read_text())
    return path


if __name__ == "__main__":
    main()
