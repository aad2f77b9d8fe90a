"""The GPU check's stage records, their merge into one JSON + markdown, and the target checks."""

import json

import pytest

from bench.gpu.check_results import (
    StageReport,
    evaluate_targets,
    merge_stage,
    render_table,
    write_report,
)

THROUGHPUT_COLUMNS = [("mode", "step"), ("encoder", "encoder"), ("images_per_s", "images/s")]


def throughput_row(encoder, images_per_s, mfu, *, mode="train", compile=False, px=256):
    return dict(
        mode=mode, px=px, encoder=encoder, compile=compile, batch=32,
        images_per_s=images_per_s, mfu=mfu, status="ok",
    )  # fmt: skip


def stage(name, title, rows, data=None):
    return {
        "stage": name,
        "status": "ok",
        "tables": [{"title": title, "columns": [], "rows": rows}],
        "data": data or {},
    }


def test_a_stage_record_is_on_disk_after_every_row(tmp_path):
    """A stage killed at its time cap must leave the rows it measured."""
    path = tmp_path / "throughput.json"
    report = StageReport(path, "throughput", {"model": "DiT-XL/2"})
    assert json.loads(path.read_text())["status"] == "running"
    table = report.table("Throughput", THROUGHPUT_COLUMNS)
    report.add_row(table, mode="train", encoder="sincos", images_per_s=512.0)
    saved = json.loads(path.read_text())
    assert saved["tables"][0]["rows"] == [
        {"mode": "train", "encoder": "sincos", "images_per_s": 512.0}
    ]
    assert saved["config"] == {"model": "DiT-XL/2"}
    report.finish()
    assert json.loads(path.read_text())["status"] == "ok"


def test_a_failed_stage_records_the_exception(tmp_path):
    report = StageReport(tmp_path / "s.json", "memory", {})
    try:
        raise ValueError("resolution 1000 does not divide the patch grid")
    except ValueError as err:
        report.fail(err)
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["status"] == "error"
    assert saved["error"] == "ValueError: resolution 1000 does not divide the patch grid"
    assert "raise ValueError" in saved["data"]["traceback"]


def test_render_table_writes_headers_and_formatted_cells():
    table = {
        "title": "t",
        "columns": THROUGHPUT_COLUMNS,
        "rows": [{"mode": "train", "encoder": "rope", "images_per_s": 1234.5}],
    }
    assert render_table(table).splitlines() == [
        "| step | encoder | images/s |",
        "| --- | --- | --- |",
        "| train | rope | 1234 |",
    ]


def test_merge_keeps_the_rows_of_a_stage_stopped_at_its_cap():
    record = stage("throughput", "Throughput", [throughput_row("sincos", 500.0, 0.41)])
    record["status"] = "running"
    merged = merge_stage(record, {"rc": 124, "seconds": 70.2, "cap_s": 70})
    assert merged["status"] == "timeout"
    assert "70 s cap" in merged["error"]
    assert merged["tables"][0]["rows"][0]["encoder"] == "sincos"


def test_merge_reports_a_crash_without_record_with_the_log_tail():
    merged = merge_stage(None, {"rc": 1, "cap_s": 45, "log_tail": ["Traceback", "ImportError: x"]})
    assert merged["status"] == "error"
    assert "exit code 1" in merged["error"] and "ImportError: x" in merged["error"]


@pytest.mark.parametrize(
    "own, rc, status", [("ok", 0, "ok"), ("error", 1, "error"), ("running", 0, "error")]
)
def test_merge_status(own, rc, status):
    record = stage("memory", "Peak memory", [])
    record["status"] = own
    assert merge_stage(record, {"rc": rc, "cap_s": 45})["status"] == status


@pytest.mark.parametrize("rc, status", [(0, "ok"), (1, "error")])
def test_a_stage_without_a_record_is_judged_by_its_exit_code(rc, status):
    """The setup stage (the wheels) keeps no record: its exit code and log tail say it all."""
    merged = merge_stage(None, {"rc": rc, "cap_s": 180, "log_tail": ["no module named x"]})
    assert merged["status"] == status
    assert (merged["error"] is None) == (rc == 0)


def full_stages(*, rpe2d_ratio=0.97, lightning_ips=290.0, ckpt_status="ok"):
    rows = [
        throughput_row("sincos", 300.0, 0.43),
        throughput_row("rope", 295.0, 0.42),
        throughput_row("rpe2d", 300.0 * rpe2d_ratio, 0.41),
        throughput_row("sincos", 340.0, 0.47, compile=True),
        throughput_row("sincos", 900.0, 0.5, mode="sample"),
        throughput_row("sincos", 90.0, 0.45, px=512),
    ]
    memory = [
        dict(step="train", px=1024, batch=32, checkpointing=False, status="OOM"),
        dict(step="train", px=1024, batch=32, checkpointing=True, status=ckpt_status,
             peak_gib=61.5),
    ]  # fmt: skip
    return {
        "environment": {"data": {"gpu_memory_gib": 139.8}},
        "throughput": stage("throughput", "Throughput of DiT-XL/2, bf16", rows[:3] + rows[4:]),
        "throughput_compiled": stage("throughput_compiled", "Throughput", rows[3:4]),
        "lightning": {"data": {"images_per_s": lightning_ips, "px": 256, "batch": 32}},
        "memory": stage("memory", "Peak memory of DiT-XL/2", memory),
    }


def test_targets_met():
    targets = {t["target"]: t for t in evaluate_targets(full_stages())}
    mfu = targets["training MFU at 256 px, best row"]
    assert mfu["status"] == "met" and mfu["value"].startswith("47.0% (sincos, compile=True")
    encoders = targets["rope and rpe2d training images/s relative to sincos"]
    assert encoders["status"] == "met" and encoders["value"] == "rope 98%, rpe2d 97%"
    lightning = targets["Lightning fit images/s relative to the bare training step"]
    assert lightning["status"] == "met" and "(100%, rpe2d, batch 32)" in lightning["value"]
    memory = targets["1024 px training fits with activation checkpointing"]
    assert memory == {
        "target": "1024 px training fits with activation checkpointing",
        "threshold": "fits",
        "value": "peak 61.5 GiB of 140 GiB at batch 32",
        "status": "met",
    }


def test_targets_missed_name_the_figure():
    stages = full_stages(rpe2d_ratio=0.90, lightning_ips=230.0, ckpt_status="OOM")
    targets = {t["target"]: t for t in evaluate_targets(stages)}
    assert targets["rope and rpe2d training images/s relative to sincos"]["status"] == "missed"
    lightning = targets["Lightning fit images/s relative to the bare training step"]
    assert lightning["status"] == "missed" and "(85%, rpe2d" in lightning["value"]
    memory = targets["1024 px training fits with activation checkpointing"]
    assert memory["status"] == "missed" and memory["value"] == "OOM at batch 32"


def test_targets_without_measurements_are_not_measured():
    assert {t["status"] for t in evaluate_targets({})} == {"not measured"}


def test_write_report_merges_records_and_shell_status(tmp_path):
    stages_dir, out = tmp_path / "stages", tmp_path / "out"
    report = StageReport(stages_dir / "throughput.json", "throughput", {})
    table = report.table("Throughput of DiT-XL/2, bf16", THROUGHPUT_COLUMNS)
    report.add_row(table, **throughput_row("sincos", 300.0, 0.43))
    report.finish()
    log = stages_dir / "memory.log"
    log.write_text("building\nRuntimeError: CUDA error: no kernel image\n")
    for order, (name, rc) in enumerate((("throughput", 0), ("memory", 1)), start=1):
        shell = {"stage": name, "order": order, "rc": rc, "seconds": 3.0, "cap_s": 45}
        shell["log"] = str(stages_dir / f"{name}.log")
        (stages_dir / f"{name}.shell.json").write_text(json.dumps(shell))
    written = write_report(stages_dir, out, command="bash bench/gpu_check.sh out")
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md"]
    assert json.loads((out / "gpu_check.json").read_text()) == written
    assert list(written["stages"]) == ["throughput", "memory"]
    assert written["stages"]["memory"]["status"] == "error"
    assert "no kernel image" in written["stages"]["memory"]["error"]
    markdown = (out / "gpu_check.md").read_text()
    assert "## 1. DiT training and sampling throughput and MFU (eager)" in markdown
    assert "| train | sincos | 300 |" in markdown
    assert "Status: **error**" in markdown
    assert "## Targets" in markdown and "43.0% (sincos" in markdown
