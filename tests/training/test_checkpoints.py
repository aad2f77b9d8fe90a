"""Damaged checkpoints are recognised cheaply, set aside and never block a resume (issue 24.1);
checkpoints are written atomically."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import pytest
import torch

from lit_rpe.training.checkpoints import (
    AtomicCheckpointIO,
    DamagedCheckpoint,
    NoReadableCheckpoint,
    resume_checkpoint,
    verify_checkpoint,
)


def write_checkpoint(path: Path, step: int, age_s: float = 0.0) -> Path:
    """A small checkpoint with the keys resume needs; ``age_s`` seconds old."""
    checkpoint = {
        "state_dict": {"net.w": torch.full((64, 64), float(step))},
        "optimizer_states": [{"state": {}}],
        "loops": {"fit_loop": {}},
        "global_step": step,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, path)
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))
    return path


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage_at_start":
        path.write_bytes(b"\x00" * 4096 + data[4096:])
    elif how == "text":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\n")
    elif how == "empty":
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "garbage_at_start", "text", "empty"])
def test_a_damaged_checkpoint_is_named_with_its_fault(tmp_path, how):
    path = write_checkpoint(tmp_path / "last.ckpt", 7)
    verify_checkpoint(path)  # intact: no error
    damage(path, how)
    with pytest.raises(DamagedCheckpoint) as caught:
        verify_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "weights_only=False" not in message  # never the unsafe advice for a broken file


def test_a_checkpoint_without_training_state_is_refused(tmp_path):
    path = tmp_path / "weights.ckpt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(DamagedCheckpoint, match="lacks optimizer_states, loops, global_step"):
        verify_checkpoint(path)


def test_resume_falls_back_to_the_newest_readable_and_keeps_the_damaged(tmp_path):
    folder, root = tmp_path / "checkpoints", tmp_path
    write_checkpoint(folder / "step0000100.ckpt", 100, age_s=30)
    write_checkpoint(folder / "step0000200.ckpt", 200, age_s=20)
    hpc = write_checkpoint(root / "hpc_ckpt_1.ckpt", 250, age_s=10)
    last = write_checkpoint(folder / "last.ckpt", 300)
    assert resume_checkpoint(folder, root).path == last  # the newest, when it is readable

    damage(last, "truncated")
    damage(hpc, "garbage_at_start")
    choice = resume_checkpoint(folder, root)
    assert choice.path == folder / "step0000200.ckpt"
    assert sorted((a.name, b.name) for a, b, _ in choice.set_aside) == [
        ("hpc_ckpt_1.ckpt", "hpc_ckpt_1.ckpt.damaged"),
        ("last.ckpt", "last.ckpt.damaged"),
    ]
    assert (folder / "last.ckpt.damaged").stat().st_size > 0 and not last.exists()
    # the next run does not trip over them again, and a new damaged last.ckpt keeps both
    write_checkpoint(folder / "last.ckpt", 400)
    damage(folder / "last.ckpt", "text")
    again = resume_checkpoint(folder, root)
    assert again.path == folder / "step0000200.ckpt"
    assert again.set_aside[0][1].name == "last.ckpt.damaged1"


def test_no_readable_checkpoint_is_one_clear_error_and_nothing_is_moved(tmp_path):
    folder = tmp_path / "checkpoints"
    for name in ("last.ckpt", "step0000100.ckpt"):
        damage(write_checkpoint(folder / name, 1), "truncated")
    with pytest.raises(NoReadableCheckpoint) as caught:
        resume_checkpoint(folder, tmp_path)
    message = str(caught.value)
    assert "last.ckpt" in message and "step0000100.ckpt" in message
    assert "--ckpt_path" in message and "\n" not in message
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step0000100.ckpt"]
    assert resume_checkpoint(tmp_path / "empty", tmp_path / "empty").path is None


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")


def test_atomic_save_never_leaves_a_partial_file(tmp_path):
    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "state_dict": {}}, target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"global_step": 2, "state_dict": {"x": Unpicklable()}}, target)
    assert target.read_bytes() == before  # the previous checkpoint is untouched
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]  # no temporary left
    io.save_checkpoint({"global_step": 3, "state_dict": {}}, target)
    assert torch.load(target, weights_only=True)["global_step"] == 3


class NotAllowlisted:
    """A class torch's weights-only loader refuses: a good checkpoint may still hold one."""

    def __init__(self):
        self.value = 3


def test_verification_runs_nothing_and_finds_missing_tensors(tmp_path):
    path = write_checkpoint(tmp_path / "last.ckpt", 5)
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["hyper_parameters"] = {"custom": NotAllowlisted()}
    torch.save(checkpoint, path)
    verify_checkpoint(path)  # readable: the class is neither imported nor run
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    tensor = next(name for name in members if "/data/" in name and name[-1].isdigit())
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            if name != tensor:
                archive.writestr(name, data)
    with pytest.raises(DamagedCheckpoint, match="lacks 1 tensor"):
        verify_checkpoint(path)
