"""The whole chain on real servers, as production runs it: Airflow's API server, scheduler, DAG
processor, triggerer and a Celery worker on a PostgreSQL database of their own with Redis as the
broker, two schedulers (high availability), an MLflow tracking server (PostgreSQL backend,
artifacts in S3) and a SeaweedFS S3 server that checks request signatures. ``llm_data_collection``
is triggered through the REST API; the assets chain annotation, fine-tuning and evaluation. A
scheduler and the worker are killed while the model trains and restarted: every run still succeeds,
each HIT is created once and the model is registered and promoted once. A reprocessing backfill
after a curation-config change buys no label and trains nothing. Then Chromium (Debian's package, driven by Playwright) logs in to the UI, opens the finished
fine-tuning run and follows its "MLflow run" link. Screenshots go to ``$LLMOPS_ARTIFACTS`` (default:
the test's temporary folder)."""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.scheduler]
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from local_airflow import prepare, sample_days  # noqa: E402
from prod_stack import BUCKET, STORE_CONN_ID, ProdStack  # noqa: E402

CHAIN = ("llm_data_collection", "llm_annotation", "llm_fine_tuning", "llm_evaluation")
DONE = ("success", "failed")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("production")
    day = sample_days(1)[0]
    prepare(home, [day], 40)  # one partition of 40 records: every stage runs, none longer than it must
    planted = {name: f"{name}-{secrets.token_hex(8)}" for name in ("envsecret", "filesecret", "connsecret")}
    (home / "hmac.key").write_text(planted["filesecret"] + "\n")
    # two schedulers (high availability, as production runs them): they share the runs through row
    # locks in PostgreSQL, and an asset event may start a consumer DAG twice (apache/airflow#54491)
    s = ProdStack(home, schedulers=2, extra_dag_folders=[Path(__file__).parent / "dags"], extra_env={
        "LLMOPS_PLANTED": planted["envsecret"], "LLMOPS_PLANTED_FILE": str(home / "hmac.key"),
        "AIRFLOW_CONN_LLMOPS_PLANTED": json.dumps({"conn_type": "generic", "password": planted["connsecret"]})},
        # 20 items to label; a training of 30 steps with a checkpoint every 10, the one the retry resumes from,
        # 5 s after the scheduler failed the lost try
        # and the shipped evaluation suite with fewer perturbations and attributions (tests/integration/suites)
        # the partition's raw version in 2 shards (24 rows each): curated by mapped tasks on the Celery worker
        config_overrides={"curation": {"shard_rows": 24},
                          "annotation": {"selection": {"size": 20}},
                          "training": {"defaults": {"train": {"max_steps": 30, "save_steps": 10}},
                                       "retry_delay_s": 5},  # the worker is back at once
                          "evaluation": {"suites_dir": str(Path(__file__).parent / "suites")}})
    s.planted = planted  # type: ignore[attr-defined]
    s.start(support_api_folder=home / "api")
    s.day = day  # type: ignore[attr-defined]
    s.state = {}  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        dbs, redis_db = list(s.created_dbs + [s.airflow_db, s.mlflow_db]), s.redis_db
        s.stop()
        # the shared servers are left as they were found: databases dropped, Redis index empty
        import psycopg2
        import redis

        with psycopg2.connect(f"{s.postgres}/postgres") as conn, conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            assert not set(dbs) & {r[0] for r in cur.fetchall()}
        assert redis.Redis.from_url(f"{s.redis}/{redis_db}").dbsize() == 0


def _runs(s: ProdStack, token: str, dag_id: str) -> list[dict[str, Any]]:
    return list(s.rest("GET", f"dags/{dag_id}/dagRuns?limit=100", token=token)["dag_runs"])


def _tis(s: ProdStack, token: str, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return list(s.rest("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", token=token)["task_instances"])


def _wait(what: str, fn: Any, timeout: float, s: ProdStack, every: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(every)
    logs = "\n".join(f"--- {c.name}\n{c.tail(15)}" for c in s.components.values())
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def _keys(client: Any, prefix: str) -> list[str]:
    """The S3 object keys under ``prefix`` in the stack's bucket, sorted."""
    return sorted(o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
                  for o in page.get("Contents", []))


def _manifests(client: Any, stage: str) -> list[dict[str, Any]]:
    """The manifests of the ``stage`` versions in S3."""
    return [json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())
            for k in _keys(client, f"store/datasets/support_messages/{stage}/versions/") if k.endswith("/manifest.json")]


def _settled(s: ProdStack, before: dict[str, set[str]], ready: Any,
             quiet_s: float = 15) -> Any:
    """A poll for ``_wait``: once every run of the chain is finished, nothing changed for ``quiet_s``
    seconds (an asset event has had time to start its run) and ``ready()`` holds, the runs each DAG
    made since ``before`` (its run ids then)."""
    last: list[Any] = []

    def poll() -> dict[str, list[dict[str, Any]]] | None:
        t = s.token()
        runs = {d: _runs(s, t, d) for d in CHAIN}
        snapshot = sorted((d, r["dag_run_id"], r["state"]) for d, rs in runs.items() for r in rs)
        quiet = bool(last) and last[0][0] == snapshot and time.monotonic() - last[0][1] >= quiet_s
        if not last or last[0][0] != snapshot:
            last[:] = [(snapshot, time.monotonic())]
        if not quiet or any(r["state"] not in DONE for rs in runs.values() for r in rs) or not ready():
            return None
        return {d: [r for r in rs if r["dag_run_id"] not in before[d]] for d, rs in runs.items()}

    return poll


def _print_task_times(s: ProdStack, states: dict[str, dict[str, str]]) -> None:
    """Where the chain's minutes went (shown with -s or on a failure): each task's tries and seconds."""
    from datetime import datetime

    tok = s.token()
    for dag_id, runs in states.items():
        for run_id in runs:
            for t in _tis(s, tok, dag_id, run_id):
                if t.get("start_date") and t.get("end_date"):
                    secs = (datetime.fromisoformat(t["end_date"]) - datetime.fromisoformat(t["start_date"])).total_seconds()
                    print(f"e2e task {dag_id}.{t['task_id']}[{t.get('map_index', -1)}] try {t['try_number']}: "
                          f"{t['state']} {secs:.1f}s (started {t['start_date']})")


@pytest.mark.timeout(900)
def test_chain_on_real_servers_survives_a_scheduler_and_worker_kill(stack: ProdStack):
    s, day = stack, stack.day  # type: ignore[attr-defined]
    # auth is on: the REST API refuses a request without a token
    with pytest.raises(urllib.error.HTTPError) as denied:
        s.rest("GET", "dags")
    assert denied.value.code == 401
    token = s.token()
    dags = {d["dag_id"] for d in s.rest("GET", "dags?limit=100", token=token)["dags"]}
    assert set(CHAIN) <= dags

    # the partition's run, through the REST API (before unpausing, so the scheduler does not
    # create its own run for the same interval)
    run = s.rest("POST", "dags/llm_data_collection/dagRuns", token=token, body={
        "dag_run_id": f"e2e__{day}", "logical_date": f"{day}T00:00:00Z", "conf": {"partition": day}})
    assert run["state"] == "queued"
    for dag_id in CHAIN:
        s.rest("PATCH", f"dags/{dag_id}", token=token, body={"is_paused": False})

    def training() -> dict[str, Any] | None:
        for r in _runs(s, s.token(), "llm_fine_tuning"):
            for ti in _tis(s, s.token(), "llm_fine_tuning", r["dag_run_id"]):
                if ti["task_id"] == "train" and ti["state"] == "running":
                    return {"run_id": r["dag_run_id"], **ti}
        failed = [r["dag_run_id"] for d in CHAIN for r in _runs(s, s.token(), d) if r["state"] == "failed"]
        assert not failed, f"runs failed before training: {failed}"
        return None

    ti = _wait("the fine-tuning run's train task", training, 600, s)
    client = s.s3_client()

    def checkpoint_in_s3() -> list[str]:
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="store/training/").get("Contents", [])]
        return [k for k in keys if "/checkpoint-" in k and k.endswith("/trainer_state.json")]

    _wait("a checkpoint of the training in S3", checkpoint_in_s3, 300, s)
    (running,) = [t for t in _tis(s, s.token(), "llm_fine_tuning", ti["run_id"]) if t["task_id"] == "train"]
    assert running["state"] == "running", "the training is still running when its node is lost"
    # lose a scheduler and the worker (with the training it launched), then bring them back; the
    # other scheduler runs on
    assert s.components["scheduler-2"].alive()
    scheduler, worker = s.components["scheduler"], s.components["worker"]
    scheduler.kill()
    worker.kill()
    assert not scheduler.alive() and not worker.alive()
    time.sleep(5)
    s.start_component("scheduler")
    s.start_component("worker")

    def chain_done() -> dict[str, dict[str, str]] | None:
        tok = s.token()
        states = {d: {r["dag_run_id"]: r["state"] for r in _runs(s, tok, d)} for d in CHAIN}
        if all(states[d] for d in CHAIN) and all(v in DONE for d in CHAIN for v in states[d].values()):
            return states
        if any(v == "failed" for d in CHAIN for v in states[d].values()):
            return states
        return None

    states = _wait("every run of the chain", chain_done, 600, s, every=3)
    s.state["runs"] = states  # type: ignore[attr-defined]
    _print_task_times(s, states)
    assert all(v == "success" for d in CHAIN for v in states[d].values()), states
    assert states["llm_data_collection"] == {f"e2e__{day}": "success"}
    assert len(states["llm_fine_tuning"]) == 1 and len(states["llm_evaluation"]) == 1

    # the killed training was failed by the scheduler (no heartbeat) and retried on the new worker
    tok = s.token()
    (train,) = [t for t in _tis(s, tok, "llm_fine_tuning", ti["run_id"]) if t["task_id"] == "train"]
    assert train["state"] == "success" and train["try_number"] > ti["try_number"], (ti, train)
    s.state["train"] = train  # type: ignore[attr-defined]

    result = s.rest("GET", f"dags/llm_fine_tuning/dagRuns/{ti['run_id']}/taskInstances/train/xcomEntries/"
                           "return_value?map_index=0", token=tok)["value"]
    result = json.loads(result) if isinstance(result, str) else result
    assert result["resumed_from"], "the retry resumed from the checkpoint in S3"
    links = s.rest("GET", f"dags/llm_fine_tuning/dagRuns/{ti['run_id']}/taskInstances/train/links?map_index=0",
                   token=tok)["extra_links"]
    assert str(links.get("MLflow run")).startswith(f"{s.mlflow}/#/experiments/"), links
    s.state["mlflow_link"] = links["MLflow run"]  # type: ignore[attr-defined]

    # versions in S3, through a client that signs with the store's keys ...
    keys = _keys(client, "")
    for stage in ("raw", "curated", "labeled"):
        manifests = [k for k in keys if k.startswith(f"store/datasets/support_messages/{stage}/versions/")
                     and k.endswith("/manifest.json")]
        assert len(manifests) == 1, (stage, manifests)
        manifest = json.loads(client.get_object(Bucket=BUCKET, Key=manifests[0])["Body"].read())
        assert manifest["partition"] == day and manifest["counts"]["kept"] > 0
        if stage == "raw":
            assert len(manifest["files"]) >= 2, "the raw version is cut in shards"
        if stage == "curated":
            assert manifest["shards"] >= 2
    # one mapped curate_shard per shard, each run by the Celery worker; the staged shards were removed
    shard_tis = [t for t in _tis(s, tok, "llm_data_collection", f"e2e__{day}") if t["task_id"] == "curate_shard"]
    assert len(shard_tis) >= 2 and all(t["state"] == "success" and t["hostname"] for t in shard_tis), shard_tis
    staged = [k for k in keys if k.startswith("store/datasets/support_messages/staging/")]
    assert staged and all(k.endswith("/merged.json") for k in staged), staged
    assert any(k.startswith("mlflow/") for k in keys), "MLflow artifacts are in S3"
    # the curated version's Data Docs through the API server's /llmops/docs: only with a login
    (index,) = [k.removeprefix("store/") for k in keys if k.startswith("store/datasets/support_messages/curated/")
                and k.endswith("/docs/curated/index.html")]
    with pytest.raises(urllib.error.HTTPError) as no_login:
        urllib.request.urlopen(f"{s.api}/llmops/docs/{index}", timeout=30)
    assert no_login.value.code == 401
    docs = urllib.request.Request(f"{s.api}/llmops/docs/{index}", headers={"Authorization": f"Bearer {tok}"})
    with urllib.request.urlopen(docs, timeout=30) as resp:
        assert resp.status == 200 and b"Data Docs: validations" in resp.read()
    # the audit trail in S3 (written through the store's Airflow connection): the export to the
    # crowd and the promotion, once each
    audit = [k for k in keys if k.startswith("store/audit/events/")]
    assert len([k for k in audit if "/model_promotion/" in k]) == 1, audit
    assert len([k for k in audit if "/annotation_export/" in k]) == 1, audit
    # each HIT once: the ledgers name every HIT the crowd holds, none twice
    ledgers = [json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys
               if k.startswith("store/annotations/support_messages/jobs/") and k.endswith("/ledger.json")]
    in_ledgers = [h["hit_id"] for ledger in ledgers for h in ledger["hits"].values()]
    crowd_hits = [k for k in keys if k.startswith("store/crowd/local/support_messages/hits/")]
    assert in_ledgers and len(set(in_ledgers)) == len(in_ledgers) == len(crowd_hits), (in_ledgers, crowd_hits)
    # ... and a server that rejects a wrong signature
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as bad:
        s.s3_client(secret="not-the-secret").list_objects_v2(Bucket=BUCKET)
    assert bad.value.response["Error"]["Code"] in ("SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId")

    # one model version, made champion by the evaluation gate
    from mlflow import MlflowClient

    mlflow = MlflowClient(tracking_uri=s.mlflow)
    versions = mlflow.search_model_versions("name = 'support-intent'")
    assert len(versions) == 1, "the retried training registered its model once"
    champion = mlflow.get_model_version_by_alias("support-intent", "champion")
    assert champion.version == versions[0].version
    assert champion.tags.get("eval.support_intents.decision") == "promote"
    s.state["champion"] = champion  # type: ignore[attr-defined]

    # the store's keys are in the metadata DB encrypted with the Fernet key
    import psycopg2

    with psycopg2.connect(f"{s.postgres}/{s.airflow_db}") as conn, conn.cursor() as cur:
        cur.execute("SELECT is_encrypted, password FROM connection WHERE conn_id = %s", (STORE_CONN_ID,))
        encrypted, stored = cur.fetchone()
    assert encrypted and stored and s.s3_secret not in stored


@pytest.mark.timeout(600)
def test_reprocessing_backfill_after_a_curation_change_buys_and_trains_nothing(stack: ProdStack):
    """What a user does after changing the curation config: a backfill of a finished day through the
    REST API, reprocessing completed runs. The day's source text is unchanged: a new curated
    version (the config is part of its identity) whose annotation run carries the labels forward
    (no HIT, no payment, no export event) and whose fine-tuning run trains nothing (same rows and
    settings as the run that trained the model): no MLflow version, no evaluation.

    While that annotation run is running, another curated version is published with its asset event
    and no event after it: the pattern of apache/airflow#56050 (the scheduler may drop an event that
    arrives while the DAG is at max_active_runs=1). It is labeled all the same."""
    import yaml

    from llmops.annotation.jobs import unlabeled_curated
    from llmops.config import load_config
    from llmops.storage import S3Store
    from llmops.versions import VersionWriter, iter_batches

    s, day = stack, stack.day  # type: ignore[attr-defined]
    assert s.state.get("runs"), "runs after the chain test"  # type: ignore[attr-defined]
    client = s.s3_client()
    store = S3Store(f"s3://{BUCKET}/store", client)

    keys, manifests = functools.partial(_keys, client), functools.partial(_manifests, client)

    hits = keys("store/crowd/local/support_messages/hits/")
    assert hits
    tok = s.token()
    before = {d: {r["dag_run_id"] for r in _runs(s, tok, d)} for d in CHAIN}
    config = s.home / "pipeline.yaml"
    data = yaml.safe_load(config.read_text())
    data["curation"]["filters"]["min_chars"] -= 1  # no sample message is that short: the same kept text
    config.write_text(yaml.safe_dump(data))
    cfg = load_config(config)

    backfill = s.rest("POST", "backfills", token=tok, body={
        "dag_id": "llm_data_collection", "from_date": f"{day}T00:00:00Z", "to_date": f"{day}T00:00:00Z",
        "reprocess_behavior": "completed", "max_active_runs": 1})

    def annotation_running() -> dict[str, Any] | None:
        """The backfill's annotation run, running, once its `select` chose what it labels."""
        t = s.token()
        for r in _runs(s, t, "llm_annotation"):
            if r["dag_run_id"] not in before["llm_annotation"] and r["state"] == "running":
                tis = {ti["task_id"]: ti["state"] for ti in _tis(s, t, "llm_annotation", r["dag_run_id"])}
                if tis.get("select") == "success" and tis.get("publish") not in ("success", "failed"):
                    return r
        return None

    running = _wait("an annotation run started by the backfill's curated event", annotation_running, 300, s, every=0.5)
    # meanwhile another curated version: the next day's messages, reposts of this day's (same ids and
    # texts), with its asset event and no later one
    src = max(manifests("curated"), key=lambda m: m["created_at"])  # the re-curated day, just published
    from datetime import date, timedelta

    next_day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    writer = VersionWriter(cfg.dataset, "curated", config_hash="reposts", extra={"privacy": src["privacy"]})
    labeled_ids = {r["id"] for m in manifests("labeled") for b in iter_batches(store, m) for r in b.to_pylist()}
    rows = [r for b in iter_batches(store, src) for r in b.to_pylist() if r["id"] in labeled_ids]
    assert rows
    writer.counts.input = len(rows)
    writer.add_rows(rows)
    reposts = writer.finish(store, partition=next_day)
    (asset,) = [a for a in s.rest("GET", "assets?limit=100", token=s.token())["assets"]
                if a["uri"] == "x-llmops://datasets/support_messages/curated"]
    s.rest("POST", "assets/events", token=s.token(), body={"asset_id": asset["id"], "extra": {
        "version_id": reposts["id"], "partition": next_day}})
    still = annotation_running()
    assert still is not None and still["dag_run_id"] == running["dag_run_id"], \
        "the event arrived while the annotation run was running, after its select"

    settled = _settled(s, before, lambda: bool(s.rest("GET", f"backfills/{backfill['id']}", token=s.token())
                                                .get("completed_at")) and not unlabeled_curated(cfg, store))
    done = _wait("the backfill, the reposts and the runs they start", settled, 480, s, every=3)
    done["collection"] = _runs(s, s.token(), "llm_data_collection")
    assert [(r["dag_run_id"], r["state"]) for r in done["collection"]] == [(f"e2e__{day}", "success")]
    tok = s.token()
    assert done["llm_annotation"] and all(r["state"] == "success" for r in done["llm_annotation"]), done
    assert done["llm_fine_tuning"] and all(r["state"] == "success" for r in done["llm_fine_tuning"]), done
    # the same raw version; a new curated version of the day and the reposts, each labeled once by
    # carrying the labels forward
    assert len(manifests("raw")) == 1 and len(manifests("curated")) == 3
    labeled = manifests("labeled")
    assert len(labeled) == 3, "the reposts were labeled by a run after the one they arrived during"
    parents = [p for m in labeled for p in m["parents"]]
    assert len(parents) == len(set(parents)) == 3 and reposts["id"] in parents
    carried = [m for m in labeled if (m["annotation"].get("carry_forward") or {}).get("carried")]
    assert len(carried) == 2
    for m in carried:
        assert m["annotation"]["hits"] == [] and m["annotation"]["carry_forward"]["bought"] == 0
        assert m["annotation"]["carry_forward"]["carried"] == m["counts"]["input"] > 0
    # no HIT, no review (payment), no export event
    assert keys("store/crowd/local/support_messages/hits/") == hits
    assert len([k for k in keys("store/audit/events/") if "/annotation_export/" in k]) == 1
    # the fine-tuning runs trained nothing: the same rows and settings as the model's run
    for run in done["llm_fine_tuning"]:
        ft_states = {t["task_id"]: t["state"] for t in _tis(s, tok, "llm_fine_tuning", run["dag_run_id"])}
        assert ft_states["resolve"] == "skipped" and ft_states["train"] == "skipped", ft_states
    assert done["llm_evaluation"] == []
    from mlflow import MlflowClient

    assert len(MlflowClient(tracking_uri=s.mlflow).search_model_versions("name = 'support-intent'")) == 1


@pytest.mark.timeout(900)
def test_a_burst_of_curated_events_under_two_schedulers_is_labeled_and_trained_once(stack: ProdStack):
    """Three partitions' curated versions published at once, their asset events in a burst, while
    both schedulers run (an event may start a consumer DAG twice: apache/airflow#54491, #63507; one
    may be dropped while a DAG is at max_active_runs=1: #56050). However many runs the schedulers
    make of it: each curated version is labeled exactly once, each HIT created once, each training
    is on data no other run trained on and registers one version, each version is evaluated once
    and the alias moves at most once per version."""
    from mlflow import MlflowClient

    from llmops.annotation.jobs import unlabeled_curated
    from llmops.config import load_config
    from llmops.storage import S3Store
    from llmops.versions import VersionWriter, iter_batches

    s, day = stack, stack.day  # type: ignore[attr-defined]
    assert s.state.get("runs"), "runs after the chain test"  # type: ignore[attr-defined]
    assert s.components["scheduler"].alive() and s.components["scheduler-2"].alive()
    client = s.s3_client()
    store = S3Store(f"s3://{BUCKET}/store", client)
    cfg = load_config(s.home / "pipeline.yaml")
    mlflow = MlflowClient(tracking_uri=s.mlflow)

    keys, manifests = functools.partial(_keys, client), functools.partial(_manifests, client)

    # new content can make the export PII scan flag a word of it ("Have a nice day.": LOCATION): such
    # items are set aside (annotation.pii_rescan: exclude) instead of blocking the whole export
    import yaml

    data = yaml.safe_load((s.home / "pipeline.yaml").read_text())
    data["annotation"]["pii_rescan"] = "exclude"
    (s.home / "pipeline.yaml").write_text(yaml.safe_dump(data))
    cfg = load_config(s.home / "pipeline.yaml")
    tok = s.token()
    before = {d: {r["dag_run_id"] for r in _runs(s, tok, d)} for d in CHAIN}
    versions_before = {str(v.version) for v in mlflow.search_model_versions("name = 'support-intent'")}
    # three more days of messages: the first day's, each day signed off differently (new content)
    from datetime import date, timedelta

    first = min(manifests("curated"), key=lambda m: m["created_at"])
    rows = [r for b in iter_batches(store, first) for r in b.to_pylist()]
    burst = []
    for n, sign_off in enumerate((" Thanks a lot.", " Kind regards.", " Many thanks in advance."), start=2):
        partition = (date.fromisoformat(day) + timedelta(days=n)).isoformat()
        writer = VersionWriter(cfg.dataset, "curated", config_hash=f"burst-{n}", extra={"privacy": first["privacy"]})
        writer.counts.input = len(rows)
        writer.add_rows([{**r, "id": f"{partition}-{r['id']}", "text": r["text"] + sign_off} for r in rows])
        burst.append(writer.finish(store, partition=partition))
    (asset,) = [a for a in s.rest("GET", "assets?limit=100", token=tok)["assets"]
                if a["uri"] == "x-llmops://datasets/support_messages/curated"]
    for m in burst:
        s.rest("POST", "assets/events", token=tok, body={"asset_id": asset["id"], "extra": {
            "version_id": m["id"], "partition": m["partition"]}})

    done = _wait("the runs the burst starts", _settled(s, before, lambda: not unlabeled_curated(cfg, store)), 780, s,
                 every=3)
    assert all(r["state"] == "success" for rs in done.values() for r in rs), done
    assert done["llm_annotation"] and done["llm_fine_tuning"], done
    # each curated version of the burst is the parent of exactly one labeled version; none twice
    parents = [p for m in manifests("labeled") for p in m["parents"]]
    assert len(parents) == len(set(parents)) and {m["id"] for m in burst} <= set(parents)
    # each HIT once
    ledgers = [json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())
               for k in keys("store/annotations/support_messages/jobs/") if k.endswith("/ledger.json")]
    in_ledgers = [h["hit_id"] for ledger in ledgers for h in ledger["hits"].values()]
    assert len(in_ledgers) == len(set(in_ledgers)) == len(keys("store/crowd/local/support_messages/hits/"))
    # each training on data no other run trained on, one version each
    trained = [json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())
               for k in keys("store/training/support_messages/trained/")]
    in_burst = [t for t in trained if t["run_id"] in {r["dag_run_id"] for r in done["llm_fine_tuning"]}]
    assert len({t["fingerprint"] for t in trained}) == len(trained)
    # the three versions were in the store before their events: whichever run selects first labels all
    # three in one job (a doubled run is the same job), so one training and one new model version
    assert len(in_burst) == 1, in_burst
    new_versions = {str(v.version) for v in mlflow.search_model_versions("name = 'support-intent'")} - versions_before
    assert sorted(new_versions) == sorted(v.split("/")[-1] for t in in_burst for v in t["registered"])
    assert len(new_versions) == 1
    # each new version evaluated once; the alias moved at most once per version
    for version in new_versions:
        evals = mlflow.search_runs(experiment_ids=[e.experiment_id for e in mlflow.search_experiments()],
                                   filter_string=f"tags.`llmops.model_version` = '{version}'")
        assert len(evals) == 1, (version, evals)
    promotions = [json.loads(client.get_object(Bucket=BUCKET, Key=k)["Body"].read())
                  for k in keys("store/audit/events/") if "/model_promotion/" in k]
    moved = [json.dumps(p, sort_keys=True) for p in promotions if str(p.get("details", {}).get("version")) in new_versions]
    assert len(moved) <= len(new_versions), promotions  # the gate may keep the champion; never two moves
    print(f"burst: {len(done['llm_annotation'])} annotation, {len(done['llm_fine_tuning'])} fine-tuning "
          f"({len(in_burst)} trained), {len(done['llm_evaluation'])} evaluation runs")


@pytest.mark.timeout(300)
def test_secrets_are_masked_in_task_logs(stack: ProdStack):
    """A task on the Celery worker logs and prints secrets it resolved by reference: the task log
    (read through the REST API, as the UI does) holds `***`, never a secret; nor does its XCom."""
    s = stack
    token = s.token()
    s.rest("PATCH", "dags/llmops_secret_masking", token=token, body={"is_paused": False})
    run = s.rest("POST", "dags/llmops_secret_masking/dagRuns", token=token, body={"logical_date": None})
    run_id = run["dag_run_id"]
    _wait("the secret-masking run", lambda: s.rest("GET", f"dags/llmops_secret_masking/dagRuns/{run_id}",
                                                    token=s.token())["state"] in DONE, 240, s, every=3)
    assert s.rest("GET", f"dags/llmops_secret_masking/dagRuns/{run_id}", token=token)["state"] == "success"
    log = s.rest("GET", f"dags/llmops_secret_masking/dagRuns/{run_id}/taskInstances/leak/logs/1?full_content=true",
                 token=token)
    text = json.dumps(log)
    home = s.home
    for ref in ("env:LLMOPS_PLANTED", f"file:{home / 'hmac.key'}", "conn:llmops_planted"):
        assert f"resolved {ref} = ***" in text, text[-2000:]
        assert f"printed {ref} = ***" in text, text[-2000:]
    assert not any(v in text for v in s.planted.values())  # type: ignore[attr-defined]
    xcom = s.rest("GET", f"dags/llmops_secret_masking/dagRuns/{run_id}/taskInstances/leak/xcomEntries/return_value",
                  token=token)
    assert "conn:llmops_planted" in json.dumps(xcom)
    assert not any(v in json.dumps(xcom) for v in s.planted.values())  # type: ignore[attr-defined]


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("LLMOPS_NO_BROWSER") == "1":
            pytest.skip("LLMOPS_NO_BROWSER=1")
        pytest.fail("the browser test needs Debian's chromium package (scripts/setup.sh installs it): "
                    "apt-get install chromium, or set LLMOPS_NO_BROWSER=1 to skip")
    return path


@pytest.mark.timeout(300)
def test_ui_in_a_real_browser(stack: ProdStack, tmp_path: Path):
    s = stack
    if "runs" not in s.state:  # type: ignore[attr-defined]
        pytest.skip("the chain did not finish")
    shots = Path(os.environ.get("LLMOPS_ARTIFACTS") or tmp_path) / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import expect, sync_playwright

    run_id = s.state["train"]["dag_run_id"]  # type: ignore[attr-defined]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(60_000)
            # not logged in: the UI sends the browser to the login form
            page.goto(f"{s.api}/")
            page.wait_for_url("**/login**")
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", s.admin_password)
            page.screenshot(path=str(shots / "01-login.png"))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "login" not in url)

            # the project's DAGs in the DAG list
            page.goto(f"{s.api}/dags?tags=llmops")
            for dag_id in CHAIN:
                expect(page.get_by_text(dag_id, exact=True).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(shots / "02-dags.png"), full_page=True)

            # the finished fine-tuning run, its training task, and the MLflow link
            page.goto(f"{s.api}/dags/llm_fine_tuning/runs/{run_id}")
            # the UI renders the run after its API calls: on a busy machine that takes more than 5 s
            expect(page.get_by_text("success").first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(shots / "03-run.png"), full_page=True)
            page.goto(f"{s.api}/dags/llm_fine_tuning/runs/{run_id}/tasks/train/mapped/0/details")
            link = page.get_by_role("link", name="MLflow run")
            expect(link).to_be_visible(timeout=60_000)
            href = link.get_attribute("href") or ""
            assert href == s.state["mlflow_link"] and s.state["champion"].run_id in href
            page.screenshot(path=str(shots / "04-task.png"), full_page=True)
            # the link opens the MLflow server's page of the training run in a new tab
            with page.expect_popup() as popup:
                link.click()
            mlflow_page = popup.value
            mlflow_page.set_default_timeout(60_000)
            mlflow_page.wait_for_url(f"{s.mlflow}/**")
            expect(mlflow_page.get_by_text("minilm", exact=True).first).to_be_visible(timeout=60_000)
            expect(mlflow_page.get_by_text("Metrics").first).to_be_visible(timeout=60_000)
            mlflow_page.screenshot(path=str(shots / "05-mlflow-run.png"), full_page=True)
        finally:
            browser.close()
    assert sorted(p.name for p in shots.iterdir()) == [
        "01-login.png", "02-dags.png", "03-run.png", "04-task.png", "05-mlflow-run.png"]
