"""Operator extra links: from a task to what it produced."""

from __future__ import annotations

from airflow.sdk import BaseOperatorLink
from airflow.sdk.execution_time.xcom import XCom

DATA_DOCS_XCOM_KEY = "data_docs_url"


class DataDocsLink(BaseOperatorLink):
    """"Data Docs" button: the Great Expectations Data Docs of the version the task validated."""

    name = "Data Docs"

    def get_link(self, operator, *, ti_key):  # type: ignore[no-untyped-def]
        return XCom.get_value(ti_key=ti_key, key=DATA_DOCS_XCOM_KEY) or ""


HIT_GROUP_XCOM_KEY = "hit_group_url"


class HitGroupLink(BaseOperatorLink):
    """"HIT group" button: the HITs on the MTurk worker site (sandbox or production) the task created."""

    name = "HIT group"

    def get_link(self, operator, *, ti_key):  # type: ignore[no-untyped-def]
        url = XCom.get_value(ti_key=ti_key, key=HIT_GROUP_XCOM_KEY) or ""
        return url if url.startswith("https://") else ""
