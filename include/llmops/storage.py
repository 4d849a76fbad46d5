"""Object store: a local folder by default, S3 (or any S3-compatible server) in production.

Keys are ``/``-separated relative paths. Writes are atomic: a local write goes to a temporary
file that is renamed into place; on S3 each object is one PUT, and directories are published
with their "commit" object (a dataset version's ``manifest.json``) uploaded last, so a reader
that finds the manifest finds every file it names. On S3 every write can ask for server-side
encryption (``storage.sse``: ``AES256``, ``aws:kms`` or ``aws:kms:dsse``, with an optional KMS key);
without it the bucket's default encryption applies.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

__all__ = ["LocalStore", "ObjectStore", "S3Store", "open_store"]


class ObjectStore(Protocol):
    uri: str

    def exists(self, key: str) -> bool: ...
    def read_bytes(self, key: str) -> bytes: ...
    def write_bytes(self, key: str, data: bytes) -> None: ...
    def create_bytes(self, key: str, data: bytes) -> bool: ...
    def list(self, prefix: str = "") -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def publish_dir(self, local_dir: Path, prefix: str, last: str | None = None) -> None: ...
    def download(self, key: str, dest: Path) -> Path: ...
    def local_path(self, key: str) -> Path | None: ...
    def url(self, key: str) -> str: ...


def _clean(key: str) -> str:
    key = key.strip("/")
    if any(part in ("..", "") for part in key.split("/")) and key:
        raise ValueError(f"invalid object key {key!r}")
    return key


class LocalStore:
    """A folder on the local file system (the embedded default)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def _p(self, key: str) -> Path:
        return self.root / _clean(key) if key else self.root

    def exists(self, key: str) -> bool:
        return self._p(key).exists()

    def read_bytes(self, key: str) -> bytes:
        return self._p(key).read_bytes()

    @staticmethod
    def _staged(path: Path, data: bytes) -> str:
        """A complete, synced temporary copy of ``data`` beside ``path`` (the caller moves or links it)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix="." + path.name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._p(key)
        tmp = self._staged(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist, atomically (a hard link of a complete temporary
        file: of two processes creating the same key at once, exactly one succeeds). True if created."""
        path = self._p(key)
        tmp = self._staged(path, data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)
        return True

    def list(self, prefix: str = "") -> list[str]:
        base = self._p(prefix)
        if not base.exists():
            return []
        if base.is_file():
            return [_clean(prefix)]
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )

    def delete(self, key: str) -> None:
        path = self._p(key)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)

    def publish_dir(self, local_dir: Path, prefix: str, last: str | None = None) -> None:
        """Move a staged folder to ``prefix`` atomically (rename); an existing target wins."""
        target = self._p(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            return
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        try:
            shutil.copytree(local_dir, staging, dirs_exist_ok=True)
            try:
                os.rename(staging, target)
            except OSError:
                if not target.exists():
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def download(self, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._p(key), dest)
        return dest

    def local_path(self, key: str) -> Path | None:
        return self._p(key)

    def url(self, key: str) -> str:
        return self._p(key).as_uri()


class S3Store:
    """``s3://bucket/prefix`` through a boto3 S3 client (built from an Airflow connection in tasks)."""

    def __init__(self, uri: str, client: Any, *, sse: str | None = None, sse_kms_key_id: str | None = None) -> None:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// uri: {uri}")
        bucket, _, prefix = uri[5:].partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        # server-side encryption of every object written (None: the bucket's default encryption)
        if sse_kms_key_id and not (sse or "").startswith("aws:kms"):
            raise ValueError(f"a KMS key needs sse='aws:kms' or 'aws:kms:dsse', not {sse!r}")
        self.write_args: dict[str, str] = {}
        if sse:
            self.write_args["ServerSideEncryption"] = sse
            if sse_kms_key_id:
                self.write_args["SSEKMSKeyId"] = sse_kms_key_id

    def _k(self, key: str) -> str:
        key = _clean(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._k(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def read_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=self._k(key))["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, **self.write_args)

    def create_bytes(self, key: str, data: bytes) -> bool:
        """Write ``key`` only if it does not exist: a conditional PUT (``If-None-Match: *``; S3 answers
        412 when the key exists, also to the second of two concurrent PUTs). True if created. A server
        without conditional writes (501 / NotImplemented) gets a check-then-write."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._k(key), Body=data, IfNoneMatch="*",
                                   **self.write_args)
            return True
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return False
            if code not in ("NotImplemented", "InvalidArgument") and status != 501:
                raise
        if self.exists(key):
            return False
        self.write_bytes(key, data)
        return True

    def _iter_keys(self, prefix: str) -> Iterator[str]:
        full = self._k(prefix) if prefix else self.prefix
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self.prefix) + 1 if self.prefix else 0
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self._iter_keys(prefix))

    def delete(self, key: str) -> None:
        keys = self.list(key) or [_clean(key)]
        for k in keys:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(k))

    def publish_dir(self, local_dir: Path, prefix: str, last: str | None = None) -> None:
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        rel = [p.relative_to(local_dir).as_posix() for p in files]
        if last is not None and self.exists(f"{prefix}/{last}"):
            return  # already published (content-addressed): nothing to do
        ordered = [r for r in rel if r != last] + ([last] if last in rel else [])
        for r in ordered:
            self.client.upload_file(str(local_dir / r), self.bucket, self._k(f"{prefix}/{r}"),
                                    ExtraArgs=dict(self.write_args) or None)

    def download(self, key: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, self._k(key), str(dest))
        return dest

    def local_path(self, key: str) -> Path | None:
        return None

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._k(key)}"


ClientFactory = Callable[[], Any]


def open_store(
    root: str,
    *,
    s3_client: Any | None = None,
    s3_client_factory: ClientFactory | None = None,
    endpoint_url: str | None = None,
    sse: str | None = None,
    sse_kms_key_id: str | None = None,
) -> ObjectStore:
    """Open the store at ``root`` (a path, ``file://`` URI or ``s3://`` URI).

    For S3 pass a client (Airflow tasks build it from the connection id) or let boto3 use its
    default credential chain (environment, instance profile) – never credentials in config.
    """
    if root.startswith("s3://"):
        client = s3_client
        if client is None and s3_client_factory is not None:
            client = s3_client_factory()
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url)
        return S3Store(root, client, sse=sse, sse_kms_key_id=sse_kms_key_id)
    if root.startswith("file://"):
        from urllib.parse import unquote, urlparse

        root = unquote(urlparse(root).path)
    return LocalStore(root)
