"""Fixtures of the data tests (helpers in data_fixtures.py, a name unique across tests/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import write_shard_set


@pytest.fixture
def shard_set(tmp_path: Path) -> list[str]:
    """3 shards x 32 samples of 24x20 PNGs, 4 classes."""
    return write_shard_set(tmp_path / "shards", num_shards=3, per_shard=32)
