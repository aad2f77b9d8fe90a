"""One eval-settings type: grid files and the callback read the same fields, names and checks."""

from pathlib import Path

import pytest
import yaml

from lit_rpe.eval.grid.spec import GridSpec, load_grid
from lit_rpe.eval.settings import ALL_METRICS, EvalSettings
from lit_rpe.posenc import InferenceRule
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.experiments import EXPERIMENTS_DIR

GRID_FILES = sorted(
    str(p.relative_to(EXPERIMENTS_DIR))
    for p in EXPERIMENTS_DIR.rglob("*.yaml")
    if p.name.startswith("grid")
)


@pytest.mark.parametrize("name", GRID_FILES)
def test_every_grid_file_parses_into_the_typed_settings(name):
    spec = load_grid(EXPERIMENTS_DIR / name, check_files=False)
    assert isinstance(spec, GridSpec) and isinstance(spec, EvalSettings)
    assert all(isinstance(rule, InferenceRule) for rule in spec.rules)
    assert all(isinstance(r, tuple) and len(r) == 2 for r in spec.resolutions)
    assert isinstance(spec.sampler, SamplerSettings)
    assert len(GRID_FILES) >= 6


def settings(**changes) -> EvalSettings:
    return EvalSettings.of({"resolutions": [32], "rules": ["ntk"], **changes})


@pytest.mark.parametrize(
    "old, new", [("num_samples", "num_images"), ("reference_images", "num_reference")]
)
def test_old_names_are_refused_with_the_new_one(tmp_path, old, new):
    with pytest.raises(ValueError, match=f"{old} is now {new}"):
        settings(**{old: 16})
    grid = yaml.safe_load((EXPERIMENTS_DIR / "grid_demo.yaml").read_text())
    grid[old] = grid.pop("num_images")
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    with pytest.raises(ValueError, match=f"{Path(path)}: {old} is now {new}"):
        load_grid(path, check_files=False)


def test_metrics_auto_means_every_metric_it_can_compute():
    assert settings(num_images=16).wanted_metrics == ALL_METRICS
    assert "is" not in settings(num_images=8).wanted_metrics  # IS: 10 splits
    assert settings(metrics=["swd"]).wanted_metrics == ("swd",)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"metrics": ["fid", "lpips"]}, "unknown metric(s) ['lpips']; valid: auto, val_loss"),
        ({"metrics": ["is"], "num_images": 8}, "IS needs at least 10 images"),
        ({"precision": "fp16"}, "unknown precision 'fp16'; valid: auto, bf16"),
        ({"fid_method": "svd"}, "unknown fid_method 'svd'; valid: sqrtm, eigh"),
        ({"rules": ["ntk", "ntk"]}, "rules or resolutions repeat"),
        ({"resolutions": []}, "at least one resolution and one rule"),
        ({"sampler": {"steps": 0}}, "sampler: sampler steps must be an integer >= 1"),
        ({"rules": [{"name": "ntk", "lambda_s": 2}]}, "rules: lambda_s/lambda_t apply to dype_"),
        ({"num_image": 8}, "unknown key(s) ['num_image'] in eval settings; valid: resolutions"),
    ],
)
def test_wrong_settings_fail_when_read_naming_the_field(changes, message):
    with pytest.raises(ValueError) as err:
        settings(**changes)
    assert message in str(err.value)


def test_the_references_default_to_the_generated_images():
    assert settings(num_images=12).reference_count == 12
    assert settings(num_images=12, num_reference=40).reference_count == 40
