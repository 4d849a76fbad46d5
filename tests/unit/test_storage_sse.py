"""Server-side encryption of what the pipeline writes to S3 (storage.sse / sse_kms_key_id)."""

from __future__ import annotations

from pathlib import Path

import pytest


def _capture(client) -> list[tuple[str, dict]]:
    """The parameters of every S3 call the client makes, as sent."""
    calls: list[tuple[str, dict]] = []
    client.meta.events.register("provide-client-params.s3.*",
                                lambda params, model, **_: calls.append((model.name, dict(params))))
    return calls


def _write_all(store, tmp_path: Path) -> None:
    store.write_bytes("a/manifest.json", b"{}")
    staged = tmp_path / "staged"
    (staged / "part").mkdir(parents=True)
    (staged / "part" / "data.jsonl").write_text("{}\n")
    (staged / "manifest.json").write_text("{}")
    store.publish_dir(staged, "versions/v1", last="manifest.json")


@pytest.mark.parametrize("sse,key,expected", [
    ("AES256", None, {"ServerSideEncryption": "AES256"}),
    ("aws:kms", "arn:aws:kms:us-east-1:111122223333:key/llmops",
     {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "arn:aws:kms:us-east-1:111122223333:key/llmops"}),
])
def test_every_write_asks_for_the_configured_encryption(s3_client, tmp_path, sse, key, expected):
    from llmops.config import parse_config
    from llmops.stages import open_config_store

    s3_client.create_bucket(Bucket="bucket")
    cfg = parse_config({"storage": {"root": "s3://bucket/store", "sse": sse, "sse_kms_key_id": key}})
    store = open_config_store(cfg, s3_client_factory=lambda: s3_client)
    calls = _capture(s3_client)
    _write_all(store, tmp_path)
    writes = [params for op, params in calls if op in ("PutObject", "CreateMultipartUpload")]
    assert len(writes) == 3
    for params in writes:
        assert {k: params.get(k) for k in expected} == expected
    head = s3_client.head_object(Bucket="bucket", Key="store/versions/v1/part/data.jsonl")
    assert head["ServerSideEncryption"] == sse
    if key:
        assert head["SSEKMSKeyId"] == key


def test_default_leaves_encryption_to_the_bucket(s3_client, tmp_path):
    from llmops.storage import open_store

    s3_client.create_bucket(Bucket="bucket")
    store = open_store("s3://bucket/store", s3_client=s3_client)
    calls = _capture(s3_client)
    _write_all(store, tmp_path)
    writes = [params for op, params in calls if op in ("PutObject", "CreateMultipartUpload")]
    assert len(writes) == 3 and not any("ServerSideEncryption" in p or "SSEKMSKeyId" in p for p in writes)


def test_a_kms_key_without_aws_kms_is_refused_naming_the_key():
    from llmops.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as err:
        parse_config({"storage": {"root": "s3://bucket/store", "sse": "AES256", "sse_kms_key_id": "k"}})
    assert "sse_kms_key_id" in str(err.value) and "aws:kms" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_config({"storage": {"root": "s3://bucket/store", "sse": "aes256"}})
    assert "storage.sse" in str(err.value)
