"""ResolutionEvalCallback: the curves of a tiny run (logs, CSV, figure), the same numbers as the
eval grid, exact resume, and bad input caught before the first training step."""

from __future__ import annotations

import csv
import json
import math
import warnings

import pytest
import torch
import yaml
from callback_fixtures import fit, training_module
from eval_fixtures import calibrated_inception_state_dict
from test_eval_grid import write_val_shards

from lit_rpe.eval.grid.run import run_grid
from lit_rpe.eval.grid.spec import load_grid
from lit_rpe.eval.settings import EvalSettings
from lit_rpe.precision import resolve_precision
from lit_rpe.sampling.sampler import RuleNotApplicable
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.callbacks import ResolutionEvalCallback
from lit_rpe.training.callbacks.eval_history import read_history_csv

CELLS = ["16x16/rpe2d_even", "16x16/ntk+shift_auto", "16x32/rpe2d_even", "16x32/ntk+shift_auto"]


@pytest.fixture
def val_shards(tmp_path, monkeypatch) -> str:
    """Validation shards of 16 photo crops; no Inception weights anywhere."""
    monkeypatch.setenv("LIT_RPE_WEIGHTS", str(tmp_path / "no_weights"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "no_hub"))
    return str(write_val_shards(tmp_path / "val"))


def callback(shards: str, every_n_steps: int = 2, **kwargs) -> ResolutionEvalCallback:
    settings = dict(
        resolutions=[16, [16, 32]],
        rules=["rpe2d_even", {"name": "ntk", "timestep_shift": "auto"}],
        num_images=8,
        batch_size=4,
        val_shards=shards,
        val_loss_images=8,
        val_loss_t=2,
    )
    return ResolutionEvalCallback(EvalSettings(**{**settings, **kwargs}), every_n_steps)


def test_tiny_run_logs_every_cell_writes_the_csv_and_the_figure(tmp_path, val_shards):
    cb = callback(val_shards)
    with pytest.warns(UserWarning, match="no FID Inception weights found") as caught:
        trainer, module = fit(tmp_path / "run", cb, steps=3)
    assert sum("no FID Inception weights" in str(w.message) for w in caught) == 1  # said once
    # every 2 steps, and at the end of training (step 3)
    assert cb.history.steps() == [2, 3]
    rows = read_history_csv(tmp_path / "run" / "eval" / "history.csv")
    assert rows == cb.history.rows
    assert {(r.step, r.cell, r.metric) for r in rows} == {
        (s, c, m) for s in (2, 3) for c in CELLS for m in ("val_loss", "swd")
    }
    assert all(math.isfinite(r.value) and r.value > 0 for r in rows)
    by_step = {s: [r.value for r in rows if r.step == s] for s in (2, 3)}
    assert by_step[2] != by_step[3]  # the EMA moved between the evaluations
    assert (tmp_path / "run" / "eval" / "history.png").stat().st_size > 10_000
    # every logger got eval/<metric>/<H>x<W>/<rule> at the evaluated steps
    (metrics_csv,) = (tmp_path / "run" / "logs").rglob("metrics.csv")
    with metrics_csv.open() as f:
        logged = [r for r in csv.DictReader(f) if r.get("eval/swd/16x32/ntk+shift_auto")]
    assert [int(r["step"]) for r in logged] == [2, 3]
    for row in logged:
        step = int(row["step"])
        for r in rows:
            if r.step == step:
                assert float(row[r.log_key]) == pytest.approx(r.value, rel=1e-6)
    assert trainer.callback_metrics["eval/val_loss/16x16/rpe2d_even"].item() == pytest.approx(
        next(r.value for r in rows[::-1] if r.log_key == "eval/val_loss/16x16/rpe2d_even")
    )
    assert not module.ema.training and module.net.training  # modes restored
    # each cell's protocol card, precision auto resolved by lit_rpe.precision for this CPU
    cards = json.loads((tmp_path / "run" / "eval" / "protocol.json").read_text())
    assert list(cards) == CELLS
    assert {c["step"] for c in cards.values()} == {3}
    assert {c["precision"] for c in cards.values()} == {resolve_precision("auto", "cpu").name}
    assert {(c["num_samples"], c["inception"], c["sampler"]) for c in cards.values()} == {
        (8, "none", "euler")
    }


@pytest.mark.parametrize(
    "inception",
    [False, pytest.param(True, marks=pytest.mark.slow)],  # the Inception on a CPU: minutes
    ids=["offline", "inception"],
)
def test_scores_equal_the_eval_grid_on_the_same_weights(tmp_path, val_shards, inception):
    """One implementation: the grid, scoring the saved checkpoint, finds the callback's numbers."""
    metrics = ["val_loss", "swd"]
    extra = {}
    if inception:
        weights = tmp_path / "inception.pth"
        torch.save(calibrated_inception_state_dict(), weights)
        metrics += ["fid", "is", "kid"]
        extra = {"inception_weights": str(weights), "reference_cache": str(tmp_path / "refs")}
    cb = callback(
        val_shards,
        resolutions=[16],
        rules=["rpe2d_even"],
        every_n_steps=0,
        num_images=12,
        metrics=metrics,
        fid_method="eigh",
        sampler=SamplerSettings(steps=3),
        **extra,
    )
    fit(tmp_path / "run", cb, steps=2, checkpoint_every=2)
    callback_values = {r.metric: r.value for r in cb.history.rows}
    assert set(callback_values) == set(metrics)
    spec = {
        "name": "same",
        "out_dir": str(tmp_path / "grid"),
        "val_shards": val_shards,
        "models": [{"name": "run", "checkpoint": str(tmp_path / "run/checkpoints/last.ckpt")}],
        "rules": ["rpe2d_even"],
        "resolutions": [16],
        "num_images": 12,
        "batch_size": 4,
        "sampler": {"steps": 3},
        "val_loss_images": 8,
        "val_loss_t": 2,
        "metrics": metrics,
        "fid_method": "eigh",
        **extra,
    }
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(spec))
    run_grid(load_grid(tmp_path / "grid.yaml"))
    cell = tmp_path / "grid" / "cells" / "run" / "rpe2d_even" / "16x16" / "metrics.json"
    record = json.loads(cell.read_text())
    assert record["metrics"] == callback_values
    card = json.loads((tmp_path / "run" / "eval" / "protocol.json").read_text())["16x16/rpe2d_even"]
    assert {k: v for k, v in card.items() if k != "step"} == record["protocol"]  # same protocol


def test_resumed_run_continues_the_curves_without_gaps_or_repeats(tmp_path, val_shards):
    straight = callback(val_shards, resolutions=[16])
    fit(tmp_path / "a", straight, steps=4, deterministic=True)
    assert straight.history.steps() == [2, 4]

    first = callback(val_shards, resolutions=[16])
    fit(tmp_path / "b", first, steps=2, checkpoint_every=2, deterministic=True)
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    resumed = callback(val_shards, resolutions=[16])
    calls = []
    real = resumed.evaluate
    resumed.evaluate = lambda trainer, module: (
        calls.append(trainer.global_step) or real(trainer, module)
    )
    fit(tmp_path / "b", resumed, steps=4, resume=last, checkpoint_every=2, deterministic=True)
    assert calls == [4]  # step 2 came with the checkpoint: not evaluated again
    assert resumed.history.rows == straight.history.rows  # same steps, same values
    assert read_history_csv(tmp_path / "b" / "eval" / "history.csv") == straight.history.rows

    # resuming a finished run evaluates nothing (its last step is in the checkpoint)
    done = callback(val_shards, resolutions=[16])
    done.evaluate = lambda trainer, module: pytest.fail("evaluated a finished run again")
    fit(tmp_path / "b", done, steps=4, resume=last, checkpoint_every=2)


def test_resume_of_a_run_whose_last_evaluation_came_after_its_checkpoint(tmp_path, val_shards):
    """A requeued job: the checkpoint predates an evaluation; the rerun redoes it once."""
    cb = callback(val_shards, resolutions=[16], every_n_steps=1)
    fit(tmp_path, cb, steps=3, checkpoint_every=2)  # evaluations at 1, 2, 3; saved at 2
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2
    assert [r.step for r in read_history_csv(tmp_path / "eval" / "history.csv")][-1] == 3
    resumed = callback(val_shards, resolutions=[16], every_n_steps=1)
    fit(tmp_path, resumed, steps=3, resume=last)
    assert resumed.history.rows == cb.history.rows  # step 3 once, with the same values
    assert read_history_csv(tmp_path / "eval" / "history.csv") == resumed.history.rows


# ------------------------------------------------------------------------------- bad input


def fails_before_training(tmp_path, cb, error, message):
    module = training_module()
    with pytest.raises(error) as caught:
        fit(tmp_path / "run", cb, steps=2, module=module)
    assert message in str(caught.value)
    assert module.trainer.global_step == 0  # nothing trained, nothing sampled
    return caught.value


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"resolutions": [16, 17]}, ValueError, "17x17 does not divide the patch grid"),
        ({"resolutions": [72]}, RuleNotApplicable, "cell 72x72/rpe2d_even"),
        ({"resolutions": [8]}, ValueError, "below min_resolution=16"),
        ({"val_shards": "missing/val"}, FileNotFoundError, "val_shards not found"),
        ({"num_images": 32}, ValueError, "holds 16 validation images, fewer than the 32"),
    ],
)
def test_bad_cells_and_data_fail_at_setup(tmp_path, val_shards, change, error, message):
    fails_before_training(tmp_path, callback(val_shards, **change), error, message)


def test_fid_without_weights_fails_at_setup_naming_the_file(tmp_path, val_shards):
    err = fails_before_training(
        tmp_path, callback(val_shards, metrics=["fid"]), FileNotFoundError, "FID Inception"
    )
    assert "weights-inception-2015-12-05-6726825d.pth" in str(err)
    assert str(tmp_path / "no_weights") in str(err)  # where to put it


def test_unknown_metrics_and_rules_fail_when_configured(val_shards):
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['lpips'\]"):
        callback(val_shards, metrics=["fid", "lpips"])
    with pytest.raises(ValueError, match="unknown inference rule 'ntk_aware'"):
        callback(val_shards, rules=["ntk_aware"])
    with pytest.raises(ValueError, match=r"unknown rule field\(s\) \[.shift.\]"):
        callback(val_shards, rules=[{"name": "ntk", "shift": 2}])


def test_checkpoint_holds_the_history_as_plain_data(tmp_path, val_shards):
    fit(tmp_path, callback(val_shards, resolutions=[16]), steps=2, checkpoint_every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    (saved,) = [v for k, v in state["callbacks"].items() if "ResolutionEvalCallback" in k]
    assert {tuple(r[:3]) for r in saved["history"]["rows"]} == {
        (2, c, m) for c in CELLS[:2] for m in ("val_loss", "swd")
    }


def test_yaml_configures_cells_rules_with_add_ons_and_the_sampler():
    """What LightningCLI does with an experiment's init_args (jsonargparse, typed __init__)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(parser_mode="omegaconf", exit_on_error=False)
    parser.add_class_arguments(ResolutionEvalCallback, "eval")
    config = yaml.safe_load(
        """
        eval:
          every_n_steps: 10
          settings:
            resolutions: [32, [32, 64]]
            rules: [rpe2d_even, {name: interpolate, attention_scale: proportional}]
            sampler: {method: heun, steps: 10}
            metrics: [swd, kid]
        """
    )
    cb = parser.instantiate(parser.parse_object(config)).eval
    assert [c.label for c in cb.cells] == [
        "32x32/rpe2d_even",
        "32x32/interpolate+attn_proportional",
        "32x64/rpe2d_even",
        "32x64/interpolate+attn_proportional",
    ]
    assert cb.cells[1].rule.attention_scale == "proportional"
    sampler = cb.settings.sampler
    assert (sampler.method, sampler.steps, sampler.cfg_scale) == ("heun", 10, None)
    assert cb.settings.wanted_metrics == ("swd", "kid") and cb.every_n_steps == 10
    config["eval"]["settings"]["rules"] = [{"name": "ntk", "shift": 2}]
    with pytest.raises(Exception, match=r"unknown rule field\(s\) \[.shift.\]"):  # when parsed
        parser.parse_object(config)
