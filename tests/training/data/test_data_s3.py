"""Shards in an S3 bucket of a moto server on the loopback, read through s3fs (the real S3
client library): the same samples as local reading, and set-up errors naming the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import write_shard_set
from remote_servers import s3_server

from lit_rpe.training.data import ImageShardDataModule
from lit_rpe.training.data.make_manifest import manifest_entries
from lit_rpe.training.data.read_config import ShardReadConfig
from lit_rpe.training.data.remote_manifest import RemoteSetupError
from lit_rpe.training.data.shard_list import write_manifest

pytest.importorskip("s3fs", reason="the s3 extra (pip install 'lit_rpe[s3]')")
pytest.importorskip("moto.server", reason="the test extra's moto[server]")
pytestmark = pytest.mark.timeout(120)


def upload_folder(endpoint: str, folder: Path, bucket: str, prefix: str) -> None:
    """Every file of ``folder`` to ``s3://bucket/prefix/`` (the bucket is created)."""
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    for path in sorted(folder.iterdir()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")


@pytest.fixture
def bucket(tmp_path: Path, monkeypatch):
    """3 shards x 16 samples, their manifest and classes.json in ``s3://shards/train``; yields
    (local folder, the read config that reaches the server)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")  # moto accepts any credentials
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    folder = tmp_path / "train"
    write_shard_set(folder, num_shards=3, per_shard=16)
    write_manifest(folder, manifest_entries(folder))
    with s3_server() as endpoint:
        upload_folder(endpoint, folder, "shards", "train")
        config = ShardReadConfig(
            timeout_s=10,
            retries=1,
            retry_delay_s=0.01,
            storage_options={"s3": {"endpoint_url": endpoint}},
        )
        yield folder, config


def _module(shards: str, **kw) -> ImageShardDataModule:
    return ImageShardDataModule(
        shards, resolution=16, batch_size=8, num_workers=0, shuffle_buffer=8, seed=1, **kw
    )


def test_an_s3_epoch_is_sample_exact_equal_to_the_local_one(bucket):
    folder, config = bucket
    remote = _module("s3://shards/train/shard-{000000..000002}.tar", read=config)
    local = _module(str(folder))
    got, want = list(remote.train_dataloader()), list(local.train_dataloader())
    assert [b["key"] for b in got] == [b["key"] for b in want] and len(got) == 6
    assert all((a["image"] == b["image"]).all() for a, b in zip(got, want, strict=True))


def test_an_unknown_bucket_or_key_is_an_error_at_set_up_naming_the_url(bucket):
    _, config = bucket
    with pytest.raises(RemoteSetupError, match="no shards.json at s3://nobucket/train/shards.json"):
        _module("s3://nobucket/train/shard-000000.tar", read=config).setup("fit")
    with pytest.raises(RemoteSetupError, match="s3://shards/train/shard-000003.tar is not listed"):
        _module("s3://shards/train/shard-{000000..000007}.tar", read=config).setup("fit")
    import boto3  # a shard the manifest lists but the bucket lost

    endpoint = config.storage_options["s3"]["endpoint_url"]
    boto3.client("s3", endpoint_url=endpoint).delete_object(
        Bucket="shards", Key="train/shard-000001.tar"
    )
    with pytest.raises(RemoteSetupError, match="shard-000001.tar: size: FileNotFoundError"):
        _module("s3://shards/train/shard-{000000..000002}.tar", read=config).setup("fit")
