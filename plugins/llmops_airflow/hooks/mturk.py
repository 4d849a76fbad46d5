"""Amazon Mechanical Turk through an Airflow AWS connection."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

SANDBOX_ENDPOINT = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
PRODUCTION_ENDPOINT = "https://mturk-requester.us-east-1.amazonaws.com"


class MTurkHook(AwsBaseHook):
    """A boto3 ``mturk`` client from ``aws_conn_id``. MTurk lives in us-east-1 only; the requester
    sandbox is the default and production needs ``sandbox=False``. An ``endpoint_url`` in the
    connection's extra (``service_config.mturk.endpoint_url``) overrides both."""

    def __init__(self, *args: Any, sandbox: bool = True, **kwargs: Any) -> None:
        kwargs["client_type"] = "mturk"
        kwargs.setdefault("region_name", "us-east-1")
        super().__init__(*args, **kwargs)
        self.sandbox = sandbox

    @property
    def endpoint_url(self) -> str:
        configured = self.conn_config.get_service_endpoint_url(service_name="mturk")
        return configured or (SANDBOX_ENDPOINT if self.sandbox else PRODUCTION_ENDPOINT)

    @cached_property
    def conn(self) -> Any:  # type: ignore[override]
        session = self.get_session(region_name=self.region_name)
        return session.client("mturk", endpoint_url=self.endpoint_url, config=self._get_config(), verify=self.verify)

    def get_conn(self) -> Any:
        return self.conn
