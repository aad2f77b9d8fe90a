"""Two-process CPU DDP: ranks read disjoint samples and yield equal numbers of batches."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("data_ddp_probe.py")


@pytest.mark.ddp
def test_ranks_read_disjoint_samples_in_equal_batch_counts(shard_set, tmp_path):
    """3 shards for 2 ranks x 2 workers (fewer shards than readers), 96 samples, batch 4."""
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, str(PROBE), str(Path(shard_set[0]).parent), str(out)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=180, env=env, cwd=tmp_path
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"the 2-process run hung; its output:\n{err.stdout}\n{err.stderr}")
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    every_key = {f"s{s}_{i:04d}" for s in range(3) for i in range(32)}
    orders = []
    for epoch in ("0", "1"):
        batches = [r["train"][epoch] for r in ranks]
        assert [len(b) for b in batches] == [12, 12]  # 96 / (2 ranks x 4)
        keys = [{k for batch in b for k in batch} for b in batches]
        assert keys[0].isdisjoint(keys[1])
        assert keys[0] | keys[1] == every_key
        orders.append([k for batch in batches[0] for k in batch])
    assert orders[0] != orders[1]
    for epoch in ("0", "1"):
        val = [r["val"][epoch] for r in ranks]
        assert [len(v) for v in val] == [10, 10]  # 48 per rank in batches of 5: 9 + a last of 3
        keys = [[k for batch in v for k in batch] for v in val]
        assert set(keys[0]).isdisjoint(keys[1]) and set(keys[0]) | set(keys[1]) == every_key
