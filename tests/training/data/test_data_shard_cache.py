"""The local cache of remote shards: read once, whole files only, shared safely, size-limited."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
from data_fixtures import write_shard_set
from remote_servers import http_server

from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.shard_cache import ShardCache
from lit_rpe.training.data.shard_source import ShardSource
from lit_rpe.training.data.tar_io import ShardReadError, iter_tar_samples

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def served(tmp_path: Path):
    paths = write_shard_set(tmp_path / "data", num_shards=3, per_shard=8)
    with http_server(tmp_path / "data") as (base, faults):
        yield paths, base, faults


def _tar_gets(faults) -> int:
    return sum(1 for m, p, _ in faults.requests if m == "GET" and p.endswith(".tar"))


def test_a_cached_shard_is_downloaded_once_and_read_from_disk(served, tmp_path: Path):
    paths, base, faults = served
    config = ShardReadConfig(cache_dir=str(tmp_path / "cache"), retry_delay_s=0.01)
    source = ShardSource(config)
    url = f"{base}/shard-000001.tar"
    first = [(s.key, s.fields, s.shard) for s in source.samples(url, 2, 6)]
    asked = _tar_gets(faults)
    again = [(s.key, s.fields, s.shard) for s in source.samples(url, 2, 6)]
    assert first == again == [(s.key, s.fields, url) for s in iter_tar_samples(paths[1], 2, 6)]
    assert _tar_gets(faults) == asked  # the second read asked the server for no byte
    cached = sorted(os.listdir(tmp_path / "cache"))
    assert len(cached) == 1 and cached[0].endswith("-shard-000001.tar")
    assert Path(tmp_path / "cache" / cached[0]).read_bytes() == Path(paths[1]).read_bytes()


def _fetch_in_a_process(folder: str, url: str) -> bytes:
    """What a rank or loader worker does: fetch through the shared cache, read the copy."""
    return ShardCache(folder, 1 << 30).fetch(url, ShardReadConfig(block_size=4096)).read_bytes()


def test_processes_fetching_the_same_shard_at_once_each_get_the_whole_file(served, tmp_path):
    paths, base, _ = served
    url, folder = f"{base}/shard-000000.tar", str(tmp_path / "cache")
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        got = pool.starmap(_fetch_in_a_process, [(folder, url)] * 3)
    assert all(data == Path(paths[0]).read_bytes() for data in got)
    names = [p.name for p in (tmp_path / "cache").iterdir()]
    assert names == [ShardCache(folder, 1).path_for(url).name]  # no .partial left behind


def test_the_least_recently_used_shards_leave_a_full_cache(served, tmp_path: Path):
    paths, base, _ = served
    size = Path(paths[0]).stat().st_size
    cache = ShardCache(tmp_path / "cache", limit_bytes=2 * size + size // 2)
    config = ShardReadConfig()
    urls = [f"{base}/shard-{i:06d}.tar" for i in range(3)]
    for url in urls:
        os.utime(cache.fetch(url, config), ns=(0, 0)) if url == urls[0] else cache.fetch(
            url, config
        )
    kept = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert kept == sorted(cache.path_for(u).name for u in urls[1:])  # the oldest went


def test_a_failed_download_leaves_nothing_in_the_cache(served, tmp_path: Path):
    paths, base, faults = served
    faults.cut["shard-000002.tar"] = 3000
    cache = ShardCache(tmp_path / "cache", 1 << 30)
    config = ShardReadConfig(retries=1, retry_delay_s=0.01, block_size=2048)
    with pytest.raises(ShardReadError, match=f"{base}/shard-000002.tar: bytes 2048-4096"):
        cache.fetch(f"{base}/shard-000002.tar", config)
    assert list((tmp_path / "cache").iterdir()) == []
