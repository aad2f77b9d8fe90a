"""bench/gpu_check.sh --smoke: every stage of the GPU check at toy scale on the CPU, end to end
(4 to 8 minutes on 2 shared cores), with the files and fields the device run will produce."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STAGES = [
    "setup",
    "environment",
    "throughput",
    "throughput_compiled",
    "lightning",
    "memory",
    "eval_cell",
]


@pytest.mark.slow
def test_smoke_run_writes_every_stage(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_WORK=str(work))
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh", str(out), "--smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # what comes back from the device: 3 files (its limit is 8)
    assert sorted(p.name for p in out.iterdir()) == [
        "gpu_check.json", "gpu_check.md", "gpu_check_logs.tar.gz"
    ]  # fmt: skip
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["mode"] == "smoke"
    assert list(report["stages"]) == STAGES
    assert {name: s["status"] for name, s in report["stages"].items()} == dict.fromkeys(
        STAGES, "ok"
    ), {name: s.get("error") for name, s in report["stages"].items()}
    stages = report["stages"]

    assert stages["environment"]["data"]["torch"]
    rows = stages["throughput"]["tables"][0]["rows"]
    assert len(rows) == 12  # 2 resolutions x 3 encoders x (train, sample)
    assert {(r["mode"], r["encoder"]) for r in rows} == {
        (m, e) for m in ("train", "sample") for e in ("sincos", "rope", "rpe2d")
    }
    for row in rows:
        assert row["status"] == "ok" and row["images_per_s"] > 0
        assert row["attention"] == "flash"  # the CPU's fused SDPA kernel
    probe = stages["throughput"]["tables"][1]["rows"]
    assert [r["px"] for r in probe] == [64, 128] and probe[0]["efficient"] == "refused"
    compiled = stages["throughput_compiled"]["tables"][0]["rows"]
    assert [(r["mode"], r["compile"], r["status"]) for r in compiled] == [
        ("train", True, "ok"), ("sample", True, "ok")
    ]  # fmt: skip

    lightning = stages["lightning"]["data"]
    assert lightning["resumed_from_step"] == 3
    assert "run/samples/step0000006_128x128.png" in lightning["grids"]
    assert lightning["sample_cli"]["grid"] == "rpe2d_even_128x128.png"
    fits = lightning["fits"]
    assert [(f["start_step"], f["end_step"]) for f in fits] == [(0, 3), (3, 6)]
    assert all(f["images_per_s"] > 0 and f["measured_steps"] == 1 for f in fits)
    assert lightning["images_per_s"] > 0

    memory = stages["memory"]["tables"][0]["rows"]
    assert [(r["step"], r["px"], r["checkpointing"]) for r in memory] == [
        ("train", 64, False), ("train", 64, True), ("train", 128, False), ("train", 128, True),
        ("sample (CFG 1.5)", 128, False), ("VAE decode", 128, False),
    ]  # fmt: skip
    assert all(r["status"] == "ok" for r in memory)
    generation, inception = (t["rows"] for t in stages["eval_cell"]["tables"])
    assert [r["px"] for r in generation] == [64, 128] and [r["px"] for r in inception] == [64, 128]
    assert all(r["images_per_s"] > 0 for r in generation + inception)

    targets = {t["target"]: t["status"] for t in report["targets"]}
    assert len(targets) == 4
    assert targets["training MFU at 64 px, best row"] == "not measured"  # no peak on a CPU
    markdown = (out / "gpu_check.md").read_text()
    for title in ("## Targets", "## 2. A real training run", "## 4. One eval-grid cell"):
        assert title in markdown
    with tarfile.open(out / "gpu_check_logs.tar.gz") as logs:
        names = logs.getnames()
    assert "./lightning.log" in names or "stages/lightning.log" in names
    assert any(n.endswith("fit_from0000003.json") for n in names)
    assert not any(n.endswith((".ckpt", ".png", ".safetensors")) for n in names)


@pytest.mark.slow
def test_only_the_named_stages_run_and_the_check_cleans_its_own_work_folder(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=sys.executable, TMPDIR=str(tmp_path))
    env.pop("GPU_CHECK_WORK", None)
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh", str(out), "--smoke", "--only", "environment"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["command"].endswith("--smoke --only environment")
    assert {n: s["status"] for n, s in report["stages"].items()} == {
        "setup": "ok", "environment": "ok"
    }  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("gpu_check.")]


def test_a_failed_setup_still_writes_the_report(tmp_path):
    """A Python that cannot import the check's packages (here: no site-packages, no pip): the
    setup stage fails with one line naming the cause, no stage runs, the report is written."""
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHON=str(python), GPU_CHECK_WORK=str(tmp_path / "work"))
    env["GPU_CHECK_SITE"] = str(tmp_path / "site")
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh", str(out), "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert list(report["stages"]) == ["setup"]
    setup = report["stages"]["setup"]
    assert setup["status"] == "error" and "importing lit_rpe" in setup["error"]
    assert "Status: **error**" in (out / "gpu_check.md").read_text()
    assert (out / "gpu_check_logs.tar.gz").is_file()
