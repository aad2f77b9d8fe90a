"""Shards read over HTTP from a real server on the loopback, and from ``pipe:`` commands:
the same samples as local reading, exact resume, and every fault's outcome and message."""

from __future__ import annotations

import logging
import shlex
import socket
from pathlib import Path

import pytest
import torch
from data_fixtures import write_shard_set
from remote_servers import http_server

from lit_rpe.training.data import ImageShardDataModule
from lit_rpe.training.data.make_manifest import manifest_entries
from lit_rpe.training.data.read_config import ShardReadConfig, TooManySkippedSamples
from lit_rpe.training.data.remote_manifest import RemoteSetupError
from lit_rpe.training.data.shard_list import write_manifest
from lit_rpe.training.data.shard_source import ShardSource
from lit_rpe.training.data.tar_io import ShardReadError, iter_tar_samples

pytestmark = pytest.mark.timeout(60)

FAST = ShardReadConfig(timeout_s=2.0, retries=2, retry_delay_s=0.01, block_size=20_000)
NAMES = "shard-{000000..000002}.tar"


@pytest.fixture
def served(tmp_path: Path):
    """3 shards x 32 samples with their manifest and classes.json, served over HTTP; yields
    (local shard paths, base URL of their folder, the server's faults)."""
    paths = write_shard_set(tmp_path / "data" / "train", num_shards=3, per_shard=32)
    write_manifest(tmp_path / "data" / "train", manifest_entries(tmp_path / "data" / "train"))
    with http_server(tmp_path / "data") as (base, faults):
        yield paths, f"{base}/train", faults


def _module(shards: str, **kw) -> ImageShardDataModule:
    options = dict(resolution=16, batch_size=8, num_workers=0, shuffle_buffer=16, seed=3)
    return ImageShardDataModule(shards, **{**options, **kw})


def _same_batches(got: list[dict], want: list[dict]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a["key"] == b["key"]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["box"], b["box"])
        assert torch.equal(a["label"], b["label"])


def test_an_http_epoch_is_sample_exact_equal_to_the_local_one(served):
    paths, url, faults = served
    local = _module(str(Path(paths[0]).parent), val_shards=str(Path(paths[0]).parent))
    remote = _module(f"{url}/{NAMES}", val_shards=f"{url}/{NAMES}", read=FAST)
    assert remote.num_classes == local.num_classes == 4  # classes.json from the same place
    _same_batches(list(remote.train_dataloader()), list(local.train_dataloader()))
    _same_batches(list(remote.val_dataloader()), list(local.val_dataloader()))
    ranges = [r for method, _, r in faults.requests if method == "GET" and ".tar" in _]
    assert ranges and all(r.startswith("bytes=") for r in ranges)  # a stream of ranged reads


def test_resuming_an_http_stream_continues_it_exactly(served):
    _, url, _ = served
    spec = f"{url}/{NAMES}"
    reference = _module(spec, read=FAST)
    reference.set_epoch(1)
    full = list(reference.train_dataloader())
    stopped = _module(spec, read=FAST)
    stopped.set_epoch(1)
    iterator = iter(stopped.train_dataloader())
    head = [next(iterator) for _ in range(5)]
    state = stopped.state_dict()
    del iterator
    resumed = _module(spec, read=FAST)
    resumed.load_state_dict(state)
    _same_batches(head + list(resumed.train_dataloader()), full)


def test_503s_and_dropped_connections_are_retried_resuming_at_the_byte(served, caplog):
    paths, url, faults = served
    faults.once["shard-000001.tar"] = ["503", "503", "ok", "drop"]  # one per GET, in order
    with caplog.at_level(logging.WARNING, logger="lit_rpe.training.data"):
        got = [(s.key, s.fields) for s in ShardSource(FAST).samples(f"{url}/shard-000001.tar")]
    assert got == [(s.key, s.fields) for s in iter_tar_samples(paths[1])]
    retries = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 3 and "503" in retries[0] and "ClientPayloadError" in retries[2]
    gets = [r for m, p, r in faults.requests if m == "GET" and p.endswith("shard-000001.tar")]
    # after the cut the stream asks again for the bytes it had not delivered, not from 0
    assert gets[:6] == [
        "bytes=0-19999",
        "bytes=0-19999",
        "bytes=0-19999",
        "bytes=20000-39999",
        "bytes=20000-39999",
        "bytes=40000-59999",
    ]


def test_a_stalled_read_times_out_and_is_retried(served, caplog):
    paths, url, faults = served
    faults.once["shard-000000.tar"] = ["stall"]
    config = ShardReadConfig(timeout_s=0.5, retries=1, retry_delay_s=0.01, block_size=20_000)
    with caplog.at_level(logging.WARNING, logger="lit_rpe.training.data"):
        got = [s.key for s in ShardSource(config).samples(f"{url}/shard-000000.tar")]
    assert got == [s.key for s in iter_tar_samples(paths[0])]
    assert any("Timeout" in r.getMessage() for r in caplog.records)


def test_a_shard_cut_short_for_good_skips_its_rest_counted_and_logged_with_its_url(served, caplog):
    paths, url, faults = served
    faults.cut["shard-000001.tar"] = Path(paths[1]).stat().st_size // 2
    spec = f"{url}/{NAMES}"
    data = _module(spec, val_shards=spec, val_batch_size=96, read=FAST)
    with caplog.at_level(logging.WARNING, logger="lit_rpe.training.data"):
        batch = next(iter(data.val_dataloader()))  # in stream order
    delivered = sum(k.startswith("s1_") for k in batch["key"])
    assert 0 < delivered < 32
    assert int(batch["corrupt"].sum()) == 32 - delivered  # the rest of the shard, counted
    skip = [r.getMessage() for r in caplog.records if "skipped the rest" in r.getMessage()]
    assert len(skip) == 1 and f"({32 - delivered} sample(s))" in skip[0]
    assert f"{url}/shard-000001.tar" in skip[0] and "gave up after 2 retries" in skip[0]


def test_too_many_skipped_samples_stop_training_with_one_clear_error(served):
    paths, url, faults = served
    faults.cut["shard-000002.tar"] = 5_000
    data = _module(f"{url}/{NAMES}", samples_per_epoch=96, shuffle_buffer=0, read=FAST)
    with pytest.raises(TooManySkippedSamples, match=r"samples skipped in epoch 0 on rank 0, more"):
        list(data.train_dataloader())


def test_a_missing_shard_is_an_error_at_set_up_naming_its_url(served):
    paths, url, _ = served
    Path(paths[2]).unlink()  # listed in the manifest, gone from the server: a 404
    data = _module(f"{url}/{NAMES}", read=FAST)
    with pytest.raises(RemoteSetupError, match=f"{url}/shard-000002.tar.*FileNotFoundError"):
        data.setup("fit")


def test_access_denied_is_an_error_at_set_up_naming_the_url_without_retries(served, caplog):
    _, url, faults = served
    faults.forbidden.add("shard-000001.tar")
    with pytest.raises(RemoteSetupError, match=f"{url}/shard-000001.tar: size: .*403"):
        _module(f"{url}/{NAMES}", read=FAST).setup("fit")
    assert not any("retry" in r.getMessage() for r in caplog.records)  # a denial is final


def test_without_a_manifest_the_error_says_how_to_make_one(served):
    paths, url, _ = served
    (Path(paths[0]).parent / "shards.json").unlink()
    with pytest.raises(RemoteSetupError, match=f"no shards.json at {url}/shards.json.*make_manif"):
        _module(f"{url}/{NAMES}", read=FAST).setup("fit")


def test_a_manifest_that_disagrees_with_its_shards_is_an_error_at_set_up(served):
    paths, url, _ = served
    Path(paths[1]).write_bytes(Path(paths[1]).read_bytes()[:-1024])
    with pytest.raises(RemoteSetupError, match=f"shards.json disagrees with {url}/shard-000001"):
        _module(f"{url}/{NAMES}", read=FAST).setup("fit")


def test_pipe_shards_read_a_commands_output_like_the_file(tmp_path: Path):
    paths = write_shard_set(tmp_path / "train", num_shards=2, per_shard=16)
    pipes = [f"pipe:cat {shlex.quote(p)}" for p in paths]
    local = _module(str(tmp_path / "train"), samples_per_epoch=32)
    piped = _module(pipes, samples_per_epoch=32, classes_file=str(tmp_path / "train/classes.json"))
    _same_batches(list(piped.train_dataloader()), list(local.train_dataloader()))


def test_a_failing_pipe_is_an_error_naming_the_command(tmp_path: Path):
    config = ShardReadConfig(retries=1, retry_delay_s=0.01)
    with pytest.raises(ShardReadError, match="pipe:echo oops >&2; exit 3: .*exit status 3: oops"):
        list(ShardSource(config).samples("pipe:echo oops >&2; exit 3"))


def test_an_unreachable_server_is_an_error_at_set_up_after_its_retries():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/train"
    with pytest.raises(RemoteSetupError, match=f"{url}/shards.json: reading: gave up after 2 ret"):
        _module(f"{url}/{NAMES}", read=FAST).setup("fit")
