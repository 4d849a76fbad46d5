"""Secrets the pipeline resolves by reference (``conn:``, ``env:``, ``file:``) show as ``***`` in task
logs, and never reach XCom.

``dag.test()`` on its own runs tasks inside the test process and logs to its console, where
Airflow applies no secrets masker; so the DAG test runs its task the way a worker does
(``dag.test(use_executor=True)`` with an executor calling ``supervise_task``: a supervisor, the task
in a forked process, the JSON log file the UI and REST API read), the Execution API served
in-process. The masking checked is the one a deployment's task logs get.
"""

from __future__ import annotations

import json
import os
import secrets
import textwrap
from pathlib import Path

import pendulum
import pytest

from tests._airflow_worker import worker_like_executor

DAG_ID = "llmops_secret_masking_check"

# A task of the curate stage's kind: the PII redactor resolves its HMAC key through
# llmops.secrets (pii.pseudonym_key: conn:<id>, the key in the connection's extra "key", which
# Airflow itself does not mask), and the task also resolves a connection password, an environment
# variable and a file, then logs and prints every value.
DAG_SOURCE = textwrap.dedent(f'''
    import logging
    import os

    import pendulum
    from airflow.sdk import dag, task


    @dag(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
    def secret_masking_check():
        @task
        def pseudonymise() -> dict:
            from llmops.config import PIIConfig
            from llmops.privacy.pii import PIIRedactor
            from llmops.secrets import resolve_secret

            redactor = PIIRedactor(PIIConfig(entities=["EMAIL_ADDRESS"], default_operator="pseudonymize",
                                             pseudonym_key="conn:llmops_pii_hmac", spacy_model="blank"))
            resolved = {{"conn:llmops_pii_hmac": redactor._key.decode(),
                         "conn:llmops_planted": resolve_secret("conn:llmops_planted"),
                         "env:LLMOPS_PLANTED_KEY": resolve_secret("env:LLMOPS_PLANTED_KEY")}}
            key_file = "file:" + os.environ["LLMOPS_PLANTED_FILE"]
            resolved[key_file] = resolve_secret(key_file)
            for ref, value in resolved.items():
                logging.getLogger("llmops.curate").info("resolved %s = %s", ref, value)
                print(f"printed {{ref}} = {{value}}")
            return {{"text": redactor.redact("please write to bob@example.com").text, "refs": sorted(resolved)}}

        pseudonymise()


    secret_masking_check()
''')


def _planted() -> dict[str, str]:
    return {name: f"{name}-{secrets.token_hex(8)}" for name in ("hmac", "password", "env", "file")}


# --------------------------------------------------------------------------- resolution registers the masker
@pytest.mark.parametrize("scheme", ["env", "file", "conn-password", "conn-extra-key"])
def test_every_resolved_secret_is_masked(scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow.sdk._shared.secrets_masker import redact

    from llmops.secrets import resolve_secret

    value = f"{scheme}-{secrets.token_hex(8)}"
    if scheme == "env":
        monkeypatch.setenv("LLMOPS_MASKING_CHECK", value)
        ref = "env:LLMOPS_MASKING_CHECK"
    elif scheme == "file":
        (tmp_path / "key").write_text(value + "\n")
        ref = f"file:{tmp_path / 'key'}"
    else:
        conn = {"password": value} if scheme == "conn-password" else {"extra": {"key": value}}
        monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_MASKING_CHECK", json.dumps({"conn_type": "generic", **conn}))
        ref = "conn:llmops_masking_check"
    assert redact(f"key={value}") == f"key={value}"  # not known to the masker before
    assert resolve_secret(ref) == value
    assert redact(f"key={value}") == "key=***"


# --------------------------------------------------------------------------- a task's log and XCom
def _xcom_values(run_id: str) -> list[object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return [x.value for x in session.scalars(select(XComModel).where(XComModel.dag_id == DAG_ID,
                                                                           XComModel.run_id == run_id))]


@pytest.mark.slow
def test_a_task_logs_resolved_secrets_masked_and_keeps_them_out_of_xcom(
        airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag
    from airflow.executors.executor_loader import ExecutorLoader

    from llmops.privacy.pii import pseudonym

    planted = _planted()
    monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_PII_HMAC", json.dumps({"conn_type": "generic",
                                                                   "extra": {"key": planted["hmac"]}}))
    monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_PLANTED", json.dumps({"conn_type": "generic",
                                                                  "password": planted["password"]}))
    monkeypatch.setenv("LLMOPS_PLANTED_KEY", planted["env"])
    (tmp_path / "hmac.key").write_text(planted["file"] + "\n")
    monkeypatch.setenv("LLMOPS_PLANTED_FILE", str(tmp_path / "hmac.key"))
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "secret_masking_check.py").write_text(DAG_SOURCE)
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(dags))
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    log_folder = tmp_path / "logs"
    monkeypatch.setenv("AIRFLOW__LOGGING__BASE_LOG_FOLDER", str(log_folder))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(64))  # signs the workload token
    executor = worker_like_executor()
    monkeypatch.setattr(ExecutorLoader, "get_default_executor", classmethod(lambda cls: executor))

    dag = DagBag(dag_folder=str(dags)).get_dag(DAG_ID)
    dr = dag.test(logical_date=pendulum.datetime(2026, 11, 25, tz="UTC"), use_executor=True)

    assert dr.state == "success"
    logs = sorted(log_folder.rglob("*.log"))
    assert len(logs) == 1, logs
    text = logs[0].read_text()
    events = [json.loads(line).get("event", "") for line in text.splitlines() if line.strip()]
    for ref in ("conn:llmops_pii_hmac", "conn:llmops_planted", "env:LLMOPS_PLANTED_KEY",
                f"file:{os.environ['LLMOPS_PLANTED_FILE']}"):
        assert f"resolved {ref} = ***" in events and f"printed {ref} = ***" in events, ref
    for value in planted.values():
        assert value not in text
    xcoms = json.dumps(_xcom_values(dr.run_id), default=str)
    assert pseudonym(planted["hmac"].encode(), "EMAIL_ADDRESS", "bob@example.com") in xcoms  # the key was used
    for value in planted.values():
        assert value not in xcoms
