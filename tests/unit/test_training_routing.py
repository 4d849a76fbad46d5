"""Where a training runs in production: the deployment's config (LLMOPS_CONFIG) is every DAG's
default, `training.queue` routes the train task to GPU workers (with the training's own retries), and the launcher on a Celery
worker gets the object store's credentials from the Airflow connection, in its environment only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_deployment_config_routes_the_train_task_to_the_gpu_queue(tmp_path: Path):
    cfg = yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())
    cfg["training"].update(queue="gpu", pool="gpu_nodes", gpus=4, retries=4, retry_delay_s=300)
    path = tmp_path / "production.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"dag = DagBag(dag_folder={str(ROOT / 'dags' / 'llm_fine_tuning.py')!r}).dags['llm_fine_tuning']\n"
        "t = dag.get_task('train')\n"
        "print(json.dumps({'queue': t.partial_kwargs.get('queue', t.queue), 'pool': t.partial_kwargs.get('pool'),"
        " 'slots': t.partial_kwargs.get('pool_slots'), 'config': dag.params['config_path'],"
        " 'retries': t.partial_kwargs.get('retries'), 'delay': t.partial_kwargs.get('retry_delay').total_seconds()}))\n"
    )
    env = dict(os.environ, LLMOPS_CONFIG=str(path), PYTHONWARNINGS="ignore")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # a lost GPU node: the retry waits for its replacement, then resumes from the checkpoint
    assert got == {"queue": "gpu", "pool": "gpu_nodes", "slots": 4, "config": str(path), "retries": 4, "delay": 300}


def test_launcher_gets_the_store_credentials_of_the_connection(monkeypatch):
    from llmops.config import parse_config
    from llmops_airflow.operators.training import DeepSpeedTrainOperator

    monkeypatch.setenv("AIRFLOW_CONN_LLMOPS_STORE", json.dumps({
        "conn_type": "aws", "login": "AKIDEXAMPLE", "password": "wJalrXUtnFEMI/K7MDENG",
        "extra": {"endpoint_url": "http://s3.internal:8333", "region_name": "eu-west-1"}}))
    op = DeepSpeedTrainOperator(task_id="train", candidate={"name": "c"}, versions=["v"])
    cfg = parse_config({"storage": {"root": "s3://bucket/store", "conn_id": "llmops_store"}})
    assert op._store_env(cfg) == {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
                                  "AWS_ENDPOINT_URL_S3": "http://s3.internal:8333", "AWS_DEFAULT_REGION": "eu-west-1"}
    # a local store, or S3 through the default credential chain (instance role): nothing is passed
    assert op._store_env(parse_config({"storage": {"root": "/data/store"}})) == {}
    assert op._store_env(parse_config({"storage": {"root": "s3://bucket/store"}})) == {}
