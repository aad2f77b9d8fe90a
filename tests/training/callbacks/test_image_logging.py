"""Sample grids to PNG files and TensorBoard while training: a demo-like run (CSV and TensorBoard
loggers, SampleGridCallback and ResolutionEvalCallback) read back from its event files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from callback_fixtures import fit
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_resolution_eval import callback, val_shards  # noqa: F401 (the fixture)

from lit_rpe.training.callbacks import SampleGridCallback
from lit_rpe.training.callbacks.eval_history import read_history_csv
from lit_rpe.training.callbacks.image_logging import KeptImages, is_logged_eval_cell
from lit_rpe.training.experiments import compose


def test_tensorboard_holds_the_sample_grids_at_the_evaluated_steps(tmp_path, val_shards):  # noqa: F811
    root = tmp_path / "run"
    evaluation = callback(val_shards, rules=["rpe2d_even"], metrics=["val_loss", "swd"])
    grids = SampleGridCallback(every_n_steps=2, num_images=4, scales=[1.0, 2.0])
    loggers = [CSVLogger(root, name="logs"), TensorBoardLogger(root, name="tensorboard")]
    fit(root, [evaluation, grids], steps=3, logger=loggers)
    (events,) = {p.parent for p in (root / "tensorboard").rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(events), size_guidance={"images": 0})
    acc.Reload()
    steps = {tag: [e.step for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
    assert steps == {
        "eval_samples/16x16/rpe2d_even": [2, 3],  # every 2 steps and at the end
        "eval_samples/16x32/rpe2d_even": [2, 3],
        "samples/16x16": [2, 3],  # every 2 steps and at the end of fit
        "samples/32x32": [2, 3],
    }
    # the logged image is the PNG written beside it: the 8 images of the cell, 16 x 32 px, in
    # 3 x 3 tiles with 2 px padding
    (last,) = [e for e in acc.Images("eval_samples/16x32/rpe2d_even") if e.step == 3]
    png = root / "eval" / "samples" / "step0000003_16x32_rpe2d_even.png"
    assert (last.width, last.height) == Image.open(png).size == (3 * 34 + 2, 3 * 18 + 2)
    assert (root / "samples" / "step0000002_32x32.png").is_file()


def test_kept_images_pass_every_chunk_and_keep_the_first():
    chunks = [(range(i, i + 3), torch.full((3, 3, 4, 4), i, dtype=torch.uint8)) for i in (0, 3)]
    kept = KeptImages(chunks, count=4)
    assert [(list(r), p.shape[0]) for r, p in kept] == [([0, 1, 2], 3), ([3, 4, 5], 3)]
    assert [int(p[0, 0, 0, 0]) for p in kept.kept] == [0, 3] and sum(map(len, kept.kept)) == 4
    assert kept.grid().shape == (2 * 6 + 2, 2 * 6 + 2, 3) and kept.grid().dtype == np.uint8
    with pytest.raises(ValueError, match="no image passed through KeptImages"):
        KeptImages([], count=4).grid()


def test_logged_cells_are_the_training_resolution_and_beyond():
    assert is_logged_eval_cell((32, 32), (32, 32)) and is_logged_eval_cell((32, 64), (32, 32))
    assert not is_logged_eval_cell((16, 64), (32, 32))


def test_demo_tensorboard_holds_images_at_its_evaluated_steps():
    """The run of `make demo` (skipped before it exists): every step in its eval/history.csv
    has the images of the cells at 32 px (its training resolution) and beyond."""
    run = Path("runs/demo")
    if not (run / "eval" / "history.csv").is_file():
        pytest.skip("runs/demo/eval/history.csv not found: `make demo` writes it")
    side = int(compose("experiments/demo.yaml").model.resolution)
    expected: dict[str, set[int]] = {}
    for row in read_history_csv(run / "eval" / "history.csv"):
        resolution, rule = row.cell.split("/")
        if is_logged_eval_cell(tuple(map(int, resolution.split("x"))), (side, side)):
            expected.setdefault(f"eval_samples/{resolution}/{rule}", set()).add(row.step)
    assert expected, "the demo scores its training resolution"
    steps: dict[str, set[int]] = {}
    for folder in {e.parent for e in (run / "tensorboard").rglob("events.out.tfevents.*")}:
        acc = EventAccumulator(str(folder), size_guidance={"images": 0})  # one per (re)start
        acc.Reload()
        for tag in acc.Tags()["images"]:
            steps.setdefault(tag, set()).update(e.step for e in acc.Images(tag))
    assert {tag: steps.get(tag, set()) & want for tag, want in expected.items()} == expected
