"""The FiTv2 grids (issue 25): published figures beside ours, and the shipped grid run end to
end on the CPU with a tiny random FiT file in place of the real one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file
from test_eval_grid import write_val_shards

from lit_rpe.eval.grid.published import PublishedFigure, published_table
from lit_rpe.eval.grid.run import run_grid
from lit_rpe.eval.grid.spec import load_grid

sys.path.insert(0, str(Path(__file__).parents[2] / "models"))
from test_fit import official_state  # noqa: E402

GRID = Path("experiments/grid_fitv2_xl.yaml")


def test_the_grid_holds_the_published_figures_with_sources():
    spec = load_grid(GRID, check_files=False)
    figures = {(f.model, f.rule, f.resolution): f for f in spec.published}
    assert figures["fitv2_xl", "extrapolate", (256, 256)].value == 2.26
    assert figures["fitv2_xl", "ntk+attn_fit_pro2", (320, 320)].value == 3.55
    assert figures["fitv2_xl_dype", "dype_yarn", (384, 384)].value == 21.75
    assert all(f.source for f in spec.published)
    hr = load_grid("experiments/grid_fitv2_hr_xl.yaml", check_files=False)
    assert [f.value for f in hr.published] == [2.90, 4.87]
    assert hr.models[0].options == {"context_size": 1024, "ori_max_pe_len": 16}


def test_a_published_figure_of_an_unknown_rule_is_refused(tmp_path):
    raw = yaml.safe_load(GRID.read_text())
    raw["published"][0]["rule"] = "ntkpro2"
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="published.0.: model 'fitv2_xl' has no rule 'ntkpro2'"):
        load_grid(path, check_files=False)


def test_published_table_prints_ours_and_the_difference():
    figures = [
        PublishedFigure("m", "ntk", (320, 320), "fid", 3.55, "README"),
        PublishedFigure("m", "ntk", (384, 384), "fid", None, "paper"),
    ]
    records = [dict(model="m", rule="ntk", height=320, width=320, metrics={"fid": 3.6})]
    lines = published_table(figures, records)
    assert "| m / ntk | 320x320 | fid | 3.55 | 3.60 | +0.05 | README |" in lines
    assert "| m / ntk | 384x384 | fid | - | not measured | - | paper |" in lines


@pytest.mark.slow
def test_the_shipped_fitv2_grid_runs_on_the_cpu_with_a_tiny_file(tmp_path, vae_folder, monkeypatch):
    """grid_fitv2_xl.yaml with its file, sizes and sample count overridden: a tiny random FiTv2
    file (128 px), 2 images per cell at 64 and 64 x 128 px, the offline metric."""
    monkeypatch.setenv("LIT_RPE_WEIGHTS", str(tmp_path / "no_weights"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_hub"))
    ckpt = tmp_path / "tiny_fitv2.safetensors"
    save_file(official_state("fitv2"), str(ckpt))
    raw = yaml.safe_load(GRID.read_text())
    for model in raw["models"]:
        model.update(checkpoint=str(ckpt), vae_path=str(vae_folder))
        model["options"] = {"num_heads": 2, "context_size": 64, "ori_max_pe_len": 8}
    raw.update(
        out_dir=str(tmp_path / "out"),
        val_shards=str(write_val_shards(tmp_path / "val", size=64)),
        resolutions=[64, [64, 128]],
        num_images=2,
        batch_size=2,
        grid_images=2,
        metrics=["swd"],
        reference_cache=str(tmp_path / "refs"),
        sampler={"method": "dopri5", "steps": 10, "cfg_scale": 1.5},
    )
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw))
    run_grid(load_grid(path))
    text = (tmp_path / "out" / "results.md").read_text()
    assert "### Published figures beside ours" in text
    assert "| fitv2_xl / extrapolate | 256x256 | fid | 2.26 | not measured | - |" in text
    cells = list((tmp_path / "out" / "cells").rglob("metrics.json"))
    assert len(cells) == 9 * 2
