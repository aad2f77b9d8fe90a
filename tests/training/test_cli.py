"""The command line: every experiment parses, SLURM requeue resumes, sampling writes grids."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lit_rpe.eval.settings import EvalSettings
from lit_rpe.posenc import InferenceRule, parse_rule
from lit_rpe.sampling.settings import SamplerSettings
from lit_rpe.training.cli import main
from lit_rpe.training.experiments import EXPERIMENTS_DIR, list_experiments

ROOT = EXPERIMENTS_DIR.parent


@pytest.mark.parametrize("experiment", list_experiments())
def test_print_config_parses_every_experiment(experiment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(EXPERIMENTS_DIR / f"{experiment}.yaml"), "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert f"default_root_dir: runs/{experiment}" in out
    assert "${" not in out  # every interpolation resolved
    # ... into the typed settings: the rule, the sampler, the callback's eval settings
    config = yaml.safe_load(out)
    model = config["model"]
    assert model["rule"] is None or isinstance(parse_rule(model["rule"]), InferenceRule)
    assert isinstance(SamplerSettings.of(model["sampling"]), SamplerSettings)
    for callback in config["trainer"]["callbacks"] or []:
        if callback["class_path"].endswith("ResolutionEvalCallback"):
            settings = EvalSettings.of(callback["init_args"]["settings"])
            assert all(isinstance(rule, InferenceRule) for rule in settings.rules)


def test_wrong_config_key_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                str(EXPERIMENTS_DIR / "demo.yaml"),
                "--model.net.encoderr=rope",
                "--print_config",
            ]
        )
    assert exit_info.value.code != 0
    assert "encoderr" in capsys.readouterr().err


def test_rule_add_ons_parse_from_the_command_line(capsys):
    args = ["sample", "--config", str(EXPERIMENTS_DIR / "demo.yaml")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--model.rule={name: tasr, tau_axes: max}", "--print_config"])
    assert exit_info.value.code in (0, None)
    out = capsys.readouterr().out
    assert "name: tasr" in out and "tau_axes: max" in out
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--model.rule={name: yarn, tau_axes: mean}", "--print_config"])
    assert exit_info.value.code != 0
    assert "unknown tau_axes 'mean'; valid: per_axis, max" in capsys.readouterr().err


def tiny_fit_args(run_dir: Path, probe: Path, max_steps: int, delay: float) -> list[str]:
    """The demo experiment shrunk to seconds: DiT-N/2 at 16 px, no validation."""
    return [
        sys.executable,
        "-m",
        "lit_rpe",
        "fit",
        "--config",
        "experiments/demo.yaml",
        f"--trainer.default_root_dir={run_dir}",
        f"--trainer.max_steps={max_steps}",
        "--trainer.limit_val_batches=0",
        "--trainer.log_every_n_steps=1",
        "--model.net.name=DiT-N/2",
        "--data.resolution=16",
        "--data.batch_size=4",
        "--data.num_workers=0",
        "--trainer.precision=32",
        # the demo's last callback, ResolutionEvalCallback: one cheap cell at the 16 px here
        "--trainer.callbacks.init_args.settings.resolutions=[16]",
        "--trainer.callbacks.init_args.settings.num_images=2",
        "--trainer.callbacks+=cli_probe.StepProbe",
        f"--trainer.callbacks.init_args.path={probe}",
        f"--trainer.callbacks.init_args.delay={delay}",
    ]


def slurm_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "training"))
    env.update(
        SLURM_NTASKS="1",
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="lit_rpe_test",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
        SLURM_NTASKS_PER_NODE="1",
    )
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "scontrol").exists()
    )
    return env


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def photo_set():
    if not (ROOT / "data" / "photos" / "classes.json").is_file():
        subprocess.run(
            [sys.executable, "data/build_photos.py", "--no-progress"], cwd=ROOT, check=True
        )


def test_fit_resumes_by_itself_and_sample_writes_a_grid(tmp_path, photo_set):
    run_dir, probe = tmp_path / "run", tmp_path / "steps.txt"
    for steps in (2, 4):
        done = subprocess.run(
            tiny_fit_args(run_dir, probe, steps, 0.0),
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "training")),
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert probe.read_text().split().count("start") == 2
    assert "start 2" in probe.read_text()  # the second run picked up last.ckpt by itself
    history = (run_dir / "eval" / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history] == ["step", "2", "2", "4", "4"]

    def sample(*extra: str) -> subprocess.CompletedProcess:
        cmd = [
            sys.executable,
            "-m",
            "lit_rpe",
            "sample",
            "--config",
            "experiments/demo.yaml",
            f"--trainer.default_root_dir={run_dir}",
            "--model.net.name=DiT-N/2",
            "--data.resolution=16",
            *extra,
        ]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)

    done = sample(
        "--resolution=32", "--rule=dype_ntk", "--num_images=4", "--steps=2", f"--out_dir={tmp_path}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "dype_ntk_32x32.png").is_file()
    done = sample(
        "--resolution=[16,32]",
        "--rule={name: tasr, tau_axes: max}",
        "--num_images=2",
        "--steps=2",
        f"--out_dir={tmp_path}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "tasr+tau_max_16x32.png").is_file()  # named by the rule's label
    bad = sample("--resolution=33")
    assert bad.returncode != 0 and "multiple of 2" in bad.stderr
