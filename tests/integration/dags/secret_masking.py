"""A DAG the production end-to-end test adds beside the project's: its task resolves planted
secrets through the pipeline's references (`env:`, `file:`, `conn:`) and logs and prints them,
so the test can show that the task log holds `***` instead."""

from __future__ import annotations

import logging
import os

import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False, tags=["llmops-e2e"])
def llmops_secret_masking() -> None:
    @task
    def leak() -> dict[str, list[str]]:
        from llmops.secrets import resolve_secret

        refs = ("env:LLMOPS_PLANTED", f"file:{os.environ['LLMOPS_PLANTED_FILE']}", "conn:llmops_planted")
        found = {ref: resolve_secret(ref) for ref in refs}
        for ref, value in found.items():
            logging.getLogger("llmops.secrets_check").info("resolved %s = %s", ref, value)
            print(f"printed {ref} = {value}")
        return {"resolved": sorted(found)}

    leak()


llmops_secret_masking()
