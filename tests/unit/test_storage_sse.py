"""Server-side encryption of what the pipeline writes to S3 (storage.sse / sse_kms_key_id)."""

from __future__ import annotations

import json
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
    ("aws:kms", None, {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": None}),  # the account's aws/s3 key
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


def test_tasks_open_the_store_with_the_configured_encryption(s3_client, tmp_path, monkeypatch):
    """The Airflow path: ObjectStoreHook.for_config with the store's AWS connection (as tasks do)."""
    from llmops.config import parse_config
    from llmops_airflow.hooks.store import ObjectStoreHook

    monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_STORE_SSE", json.dumps(
        {"conn_type": "aws", "login": "testing", "password": "testing", "extra": {"region_name": "us-east-1"}}))
    s3_client.create_bucket(Bucket="bucket")
    cfg = parse_config({"storage": {"root": "s3://bucket/store", "conn_id": "llmops_store_sse",
                                    "sse": "aws:kms", "sse_kms_key_id": "alias/llmops"}})
    store = ObjectStoreHook.for_config(cfg).store
    calls = _capture(store.client)
    _write_all(store, tmp_path)
    writes = [params for op, params in calls if op in ("PutObject", "CreateMultipartUpload")]
    assert len(writes) == 3
    assert all((p.get("ServerSideEncryption"), p.get("SSEKMSKeyId")) == ("aws:kms", "alias/llmops") for p in writes)
    head = s3_client.head_object(Bucket="bucket", Key="store/a/manifest.json")
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", "alias/llmops")


@pytest.mark.parametrize("storage,key,fix", [
    ({"sse": "AES256", "sse_kms_key_id": "k"}, "storage.sse_kms_key_id", "storage.sse: aws:kms"),
    ({"sse_kms_key_id": "alias/llmops"}, "storage.sse_kms_key_id", "storage.sse: aws:kms"),
    ({"sse": "aes256"}, "storage.sse", "'AES256', 'aws:kms' or 'aws:kms:dsse'"),
    ({"sse": True}, "storage.sse", "'AES256', 'aws:kms' or 'aws:kms:dsse'"),
])
def test_a_wrong_encryption_setting_is_refused_naming_the_key(storage, key, fix):
    from llmops.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as err:
        parse_config({"storage": {"root": "s3://bucket/store", **storage}})
    line = next(ln.strip() for ln in str(err.value).splitlines() if ln.strip().startswith(key + ":"))
    assert fix in line


def test_the_store_refuses_a_kms_key_without_kms(s3_client):
    from llmops.storage import S3Store

    with pytest.raises(ValueError, match="aws:kms"):
        S3Store("s3://bucket/store", s3_client, sse="AES256", sse_kms_key_id="alias/llmops")
    assert S3Store("s3://bucket/store", s3_client, sse="aws:kms:dsse", sse_kms_key_id="k").write_args == {
        "ServerSideEncryption": "aws:kms:dsse", "SSEKMSKeyId": "k"}
