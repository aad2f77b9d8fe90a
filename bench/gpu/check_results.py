"""Results of ``bench/gpu_check.sh``: one JSON record per stage, merged into one JSON + markdown.

Each stage script keeps a ``StageReport`` and saves it after every measured row, so a stage that
hits its time cap still leaves what it measured. The shell records each stage's exit code, wall
time and cap beside it (``<stage>.shell.json``). ``write_report`` merges both into
``gpu_check.json`` and ``gpu_check.md`` and checks the targets of issues 19 and 29:

    python -m bench.gpu.check_results <stages dir> <out dir> [--command "..."]
"""

from __future__ import annotations

import argparse
import json
import os
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common.tables import fmt3, keyed_table

# Report order and titles; the shell runs the stages in this order.
STAGE_TITLES = {
    "setup": "0. Python and the packages the check imports (the carried wheels)",
    "environment": "Environment",
    "throughput": "1. DiT training and sampling throughput and MFU (eager)",
    "throughput_compiled": "1b. The same with torch.compile of the blocks",
    "lightning": "2. A real training run through the Lightning path (`lit-rpe fit`)",
    "memory": "3. Peak memory of training and sampling steps up to 1024 px",
    "eval_cell": "4. One eval-grid cell: generation and Inception features",
}
TIMEOUT_CODES = (124, 137)  # timeout(1) after TERM, and after KILL
MFU_TARGET = 0.40
ENCODER_TOLERANCE = 0.05
LIGHTNING_TOLERANCE = 0.10


@dataclass
class Table:
    """A result table: ``columns`` are (row key, header) pairs; rows hold raw values."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]] = field(default_factory=list)


class StageReport:
    """The record of one stage, written to ``path`` (atomically) after every change."""

    def __init__(self, path: str | os.PathLike | None, stage: str, config: dict[str, Any]):
        self.path = Path(path) if path else None
        self.stage = stage
        self.config = dict(config)
        self.status = "running"
        self.error: str | None = None
        self.tables: list[Table] = []
        self.data: dict[str, Any] = {}
        self.notes: list[str] = []
        self.save()

    def table(self, title: str, columns: Sequence[tuple[str, str]]) -> Table:
        table = Table(title, [tuple(c) for c in columns])
        self.tables.append(table)
        return table

    def add_row(self, table: Table, **row: Any) -> None:
        table.rows.append(row)
        self.save()

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.save()

    def finish(self) -> None:
        self.status = "ok"
        self.save()

    def fail(self, err: BaseException) -> None:
        """Record an exception that ended the stage (its type, message and last frames)."""
        self.status = "error"
        frames = traceback.format_exception(type(err), err, err.__traceback__)
        self.error = f"{type(err).__name__}: {err}"
        self.data["traceback"] = "".join(frames)[-3000:]
        self.save()

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "status": self.status,
            "error": self.error,
            "config": self.config,
            "tables": [asdict(t) for t in self.tables],
            "data": self.data,
            "notes": self.notes,
        }

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".partial")
        tmp.write_text(json.dumps(self.as_dict(), indent=1, default=str) + "\n")
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------- rendering


def render_table(table: dict[str, Any] | Table) -> str:
    """A stage's table (a ``Table`` or its JSON form) as markdown."""
    table = asdict(table) if isinstance(table, Table) else table
    return keyed_table([tuple(c) for c in table["columns"]], table["rows"])


# ------------------------------------------------------------------------------------ merging


def merge_stage(record: dict[str, Any] | None, shell: dict[str, Any] | None) -> dict[str, Any]:
    """One stage's entry in the report: its own record plus how its process ended.

    status: ``ok``; ``timeout`` (stopped at its cap; tables hold what was measured);
    ``error`` (with ``error`` set: the stage's exception, else the tail of its log);
    ``not run``.
    """
    entry = dict(record or {"tables": [], "data": {}, "notes": [], "config": {}})
    entry.setdefault("error", None)
    if shell is None:
        entry["status"] = "not run" if record is None else entry.get("status", "running")
        return entry
    entry["seconds"] = shell.get("seconds")
    entry["cap_s"] = shell.get("cap_s")
    rc = shell.get("rc")
    own = (record or {}).get("status")
    if rc in TIMEOUT_CODES:
        entry["status"] = "timeout"
        entry["error"] = f"stopped at its {shell.get('cap_s')} s cap; rows above are complete"
    elif own == "error":
        entry["status"] = "error"
    elif rc == 0 and own in ("ok", None):  # None: a stage that keeps no record (setup)
        entry["status"] = "ok"
    else:
        entry["status"] = "error"
        if not entry["error"]:
            entry["error"] = f"exit code {rc}: " + " | ".join(shell.get("log_tail", [])[-8:])
    return entry


def _rows(stage: dict[str, Any] | None, title_prefix: str = "") -> list[dict[str, Any]]:
    if not stage:
        return []
    return [
        row
        for table in stage.get("tables", [])
        if table["title"].startswith(title_prefix)
        for row in table["rows"]
    ]


def _target(name: str, value: str | None, met: bool | None, threshold: str) -> dict[str, Any]:
    status = "not measured" if met is None else ("met" if met else "missed")
    return {"target": name, "threshold": threshold, "value": value or "-", "status": status}


def evaluate_targets(stages: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 19's targets from the measured rows: MFU, encoder overhead, Lightning overhead and
    the 1024 px memory figure. A target whose rows are missing is 'not measured'."""
    throughput = [
        r
        for name in ("throughput", "throughput_compiled")
        for r in _rows(stages.get(name), "Throughput")
        if r.get("status") == "ok"
    ]
    first_px = min((r["px"] for r in throughput), default=None)
    train = [r for r in throughput if r["mode"] == "train" and r["px"] == first_px]
    targets = []

    mfus = [(r["mfu"], r) for r in train if r.get("mfu") is not None]
    best = max(mfus, key=lambda m: m[0], default=None)
    value = None
    if best is not None:
        r = best[1]
        value = f"{100 * best[0]:.1f}% ({r['encoder']}, compile={r['compile']}, batch {r['batch']})"
    targets.append(
        _target(
            f"training MFU at {first_px} px, best row",
            value,
            None if best is None else best[0] >= MFU_TARGET,
            f">= {100 * MFU_TARGET:.0f}%",
        )
    )

    ratios = []
    for compiled in (False, True):
        by_enc = {r["encoder"]: r for r in train if r["compile"] == compiled}
        if "sincos" not in by_enc:
            continue
        base = by_enc["sincos"]["images_per_s"]
        for enc in ("rope", "rpe2d"):
            if enc in by_enc:
                ratios.append((enc, compiled, by_enc[enc]["images_per_s"] / base))
    value = ", ".join(f"{e}{' compiled' if c else ''} {100 * q:.0f}%" for e, c, q in ratios)
    targets.append(
        _target(
            "rope and rpe2d training images/s relative to sincos",
            value,
            None if not ratios else all(q >= 1 - ENCODER_TOLERANCE for _, _, q in ratios),
            f">= {100 * (1 - ENCODER_TOLERANCE):.0f}%",
        )
    )

    lightning = (stages.get("lightning") or {}).get("data", {})
    lit_ips = lightning.get("images_per_s")
    bare = [
        r
        for r in throughput
        if r["mode"] == "train"
        and not r["compile"]
        and r["encoder"] == "rpe2d"
        and r["px"] == lightning.get("px")
        and r["batch"] == lightning.get("batch")
    ]
    met, value = None, None
    if lit_ips and bare:
        ratio = lit_ips / bare[0]["images_per_s"]
        met = ratio >= 1 - LIGHTNING_TOLERANCE
        value = (
            f"{fmt3(lit_ips)} vs {fmt3(bare[0]['images_per_s'])} images/s "
            f"({100 * ratio:.0f}%, rpe2d, batch {bare[0]['batch']})"
        )
    targets.append(
        _target(
            "Lightning fit images/s relative to the bare training step",
            value,
            met,
            f">= {100 * (1 - LIGHTNING_TOLERANCE):.0f}%",
        )
    )

    memory = [r for r in _rows(stages.get("memory"), "Peak memory") if r["step"] == "train"]
    top_px = max((r["px"] for r in memory), default=None)
    ckpt = [r for r in memory if r["px"] == top_px and r["checkpointing"]]
    met, value = None, None
    if ckpt:
        r = ckpt[0]
        met = r["status"] == "ok"
        total = ((stages.get("environment") or {}).get("data") or {}).get("gpu_memory_gib")
        of = f" of {fmt3(total)} GiB" if total else ""
        if not met:
            value = f"{r['status']} at batch {r['batch']}"
        elif r.get("peak_gib") is None:
            value = f"ran at batch {r['batch']} (no memory figure on this device)"
        else:
            value = f"peak {fmt3(r['peak_gib'])} GiB{of} at batch {r['batch']}"
    targets.append(
        _target(f"{top_px} px training fits with activation checkpointing", value, met, "fits")
    )
    return targets


def render_markdown(report: dict[str, Any]) -> str:
    env = report["stages"].get("environment", {}).get("data", {})
    lines = [
        "# GPU check of lit_rpe (issues 19 and 29)",
        "",
        env.get("summary", "environment not recorded"),
        "",
        f"Mode: {report['mode']}. Command: `{report.get('command') or '-'}`. Stages: "
        + ", ".join(f"{n} {s['status']}" for n, s in report["stages"].items()),
        "",
        "## Targets",
        "",
        render_table(
            Table(
                "Targets",
                [
                    ("target", "target"),
                    ("threshold", "threshold"),
                    ("value", "measured"),
                    ("status", "status"),
                ],
                report["targets"],
            )
        ),
    ]
    for name, stage in report["stages"].items():
        if name == "environment":
            continue
        lines += ["", f"## {STAGE_TITLES.get(name, name)}", ""]
        took = (
            f" in {stage['seconds']:.0f} s (cap {stage['cap_s']} s)" if stage.get("seconds") else ""
        )
        lines.append(f"Status: **{stage['status']}**{took}.")
        if stage.get("error"):
            lines += ["", f"Error: `{stage['error']}`"]
        for table in stage.get("tables", []):
            if table["rows"]:
                lines += ["", f"**{table['title']}**", "", render_table(table)]
        for text in stage.get("notes", []):
            lines += ["", f"- {text}"]
    return "\n".join(lines) + "\n"


def log_tail(path: Path, lines: int = 15) -> list[str]:
    """The last non-empty lines of a stage's log (what a failed stage said last)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_report(
    stages_dir: str | os.PathLike, out_dir: str | os.PathLike, command: str = "", mode: str = ""
) -> dict[str, Any]:
    """Merge ``<stage>.json`` and ``<stage>.shell.json`` of ``stages_dir`` (in the shell's run
    order, else STAGE_TITLES order) into ``out_dir/gpu_check.json`` and ``gpu_check.md``."""
    stages_dir, out_dir = Path(stages_dir), Path(out_dir)
    shells = {p.name[: -len(".shell.json")]: read_json(p) for p in stages_dir.glob("*.shell.json")}
    for shell in shells.values():
        if shell and shell.get("log"):
            shell["log_tail"] = log_tail(Path(shell["log"]))
    order = sorted(shells, key=lambda n: (shells[n] or {}).get("order", 99))
    names = order + [n for n in STAGE_TITLES if n not in shells]
    stages = {}
    for name in names:
        record = read_json(stages_dir / f"{name}.json")
        if record is None and name not in shells:
            continue
        stages[name] = merge_stage(record, shells.get(name))
    report = {
        "mode": mode or ("smoke" if "smoke" in command else "full"),
        "command": command,
        "stages": stages,
        "targets": evaluate_targets(stages),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gpu_check.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out_dir / "gpu_check.md").write_text(render_markdown(report))
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Merge the GPU check's stage records.")
    parser.add_argument("stages_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--command", default="")
    parser.add_argument("--mode", default="")
    args = parser.parse_args()
    report = write_report(args.stages_dir, args.out_dir, args.command, args.mode)
    print((Path(args.out_dir) / "gpu_check.md").read_text())
    print(f"-> {args.out_dir}/gpu_check.json ({len(report['stages'])} stages)")


if __name__ == "__main__":
    main()
