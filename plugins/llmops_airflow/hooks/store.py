"""Object-store access for tasks: a local folder, or S3 through an Airflow AWS connection."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook


class ObjectStoreHook(BaseHook):
    """Opens the pipeline's object store. For ``s3://`` roots the boto3 client comes from
    ``aws_conn_id`` (credentials stay in the connection / secrets backend, never in config)."""

    conn_name_attr = "aws_conn_id"
    hook_name = "LLMOps object store"

    def __init__(self, root: str, aws_conn_id: str | None = None, endpoint_url: str | None = None, *,
                 sse: str | None = None, sse_kms_key_id: str | None = None) -> None:
        super().__init__()
        self.root = root
        self.aws_conn_id = aws_conn_id
        self.endpoint_url = endpoint_url
        self.sse = sse
        self.sse_kms_key_id = sse_kms_key_id

    @classmethod
    def for_config(cls, cfg: Any) -> ObjectStoreHook:
        """The store of a pipeline config's ``storage`` section."""
        st = cfg.storage
        return cls(cfg.resolved_storage_root(), st.conn_id, st.endpoint_url, sse=st.sse,
                   sse_kms_key_id=st.sse_kms_key_id)

    def _s3_client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=self.aws_conn_id)
        if self.endpoint_url:
            session = hook.get_session()
            return session.client("s3", endpoint_url=self.endpoint_url)
        return hook.get_conn()

    @cached_property
    def store(self) -> Any:
        from llmops.storage import open_store

        return open_store(self.root, s3_client_factory=self._s3_client if self.root.startswith("s3://") else None,
                          sse=self.sse, sse_kms_key_id=self.sse_kms_key_id)

    def get_conn(self) -> Any:
        return self.store
