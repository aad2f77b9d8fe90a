"""sbatch rendering: nodes, tasks and devices agree for every allocation (issue 6)."""

import re

import pytest

from lit_rpe.training import slurm
from lit_rpe.training.experiments import EXPERIMENTS_DIR


@pytest.mark.parametrize("nodes,gpus", [(1, 1), (1, 8), (4, 8), (16, 4)])
def test_rendered_script_is_consistent(nodes, gpus):
    script, run_dir = slurm.render_sbatch("rpe2d_256", nodes=nodes, gpus=gpus, time="12:00:00")
    directives = dict(re.findall(r"#SBATCH --([\w-]+)=(\S+)", script))
    assert directives["nodes"] == str(nodes)
    assert directives["ntasks-per-node"] == str(gpus) == directives["gpus-per-node"]
    assert directives["signal"] == "SIGUSR1@90" and directives["time"] == "12:00:00"
    assert f"--trainer.num_nodes={nodes}" in script and f"--trainer.devices={gpus}" in script
    assert "srun " in script and "--trainer.strategy=ddp" in script
    assert "partition" not in directives
    assert str(run_dir) == "runs/rpe2d_256"
    assert directives["output"] == f"{EXPERIMENTS_DIR.parent}/runs/rpe2d_256/slurm-%j.out"


def test_partition_and_extra_args():
    script, _ = slurm.render_sbatch(
        "sincos_512_from256", nodes=2, gpus=8, partition="a100", args="--trainer.max_steps=5"
    )
    assert "#SBATCH --partition=a100" in script
    assert "--config experiments/sincos_512_from256.yaml" in script
    assert script.rstrip().endswith("--trainer.max_steps=5")


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="unknown experiment 'rpe3d'.*rpe2d_256"):
        slurm.render_sbatch("rpe3d", nodes=1, gpus=1)
    with pytest.raises(ValueError, match="nodes >= 1"):
        slurm.render_sbatch("rpe2d_256", nodes=0, gpus=8)


def test_dry_run_writes_beside_the_run_and_does_not_submit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    submitted = []
    monkeypatch.setattr(slurm.subprocess, "run", lambda *a, **k: submitted.append(a))
    path = slurm.main(["rope_256", "--nodes", "2", "--gpus", "4", "--dry"])
    assert path.resolve() == tmp_path / "runs" / "rope_256" / "train.sbatch"
    assert "--ntasks-per-node=4" in path.read_text()
    assert "dry run" in capsys.readouterr().out and not submitted
