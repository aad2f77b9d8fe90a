"""``ShardReadConfig`` and where a shard lives (``shard_url``)."""

from __future__ import annotations

import pytest

from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.shard_list import expand_shards
from lit_rpe.training.data.shard_url import (
    is_pipe,
    is_remote,
    local_path,
    open_filesystem,
    parent_url,
    url_protocol,
)


def test_backoff_doubles_and_the_skip_budget_is_a_fraction_of_the_epoch():
    config = ShardReadConfig(retry_delay_s=0.5, max_skipped_fraction=0.05)
    assert [config.retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert config.skip_budget(1000) == 50 and config.skip_budget(10) == 0


def test_bad_settings_fail_with_one_line_naming_them():
    with pytest.raises(ValueError, match=r"read.max_skipped_fraction must be in \[0, 1\], got 2"):
        ShardReadConfig(max_skipped_fraction=2)
    with pytest.raises(ValueError, match="read.retries must be >= 0"):
        ShardReadConfig(retries=-1)
    with pytest.raises(ValueError, match="read.timeout_s must be > 0"):
        ShardReadConfig(timeout_s=0)


def test_shard_locations_are_told_apart():
    assert url_protocol("s3://b/k.tar") == "s3" and url_protocol("HTTPS://h/a.tar") == "https"
    assert url_protocol("/data/a.tar") is None and url_protocol("pipe:curl http://h") is None
    assert is_remote("gs://b/a.tar") and not is_remote("file:///data/a.tar")
    assert is_pipe("pipe:cat a.tar") and not is_remote("pipe:cat a.tar")
    assert local_path("file:///data/a.tar") == "/data/a.tar"
    assert parent_url("s3://bucket/train/a.tar") == "s3://bucket/train"
    with pytest.raises(ValueError, match="names no file inside a folder or bucket"):
        parent_url("s3://bucket")


def test_url_patterns_expand_braces_and_refuse_globs():
    assert expand_shards("https://h/t/s-{0..2}.tar") == [f"https://h/t/s-{i}.tar" for i in range(3)]
    with pytest.raises(ValueError, match="glob patterns work on local paths only"):
        expand_shards("s3://bucket/train/*.tar")


def test_an_unknown_protocol_names_what_to_install():
    with pytest.raises(ValueError, match=r"no filesystem for nosuch://"):
        open_filesystem("nosuch://bucket/a.tar", ShardReadConfig())


def test_a_missing_extra_is_named():
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed here")
    with pytest.raises(
        ValueError, match=r"gs://b/a.tar: no filesystem for gs:// \(pip install 'lit_rpe\[gcs\]'\)"
    ):
        open_filesystem("gs://b/a.tar", ShardReadConfig())
