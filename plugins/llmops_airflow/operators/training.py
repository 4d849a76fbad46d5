"""Fine-tuning from Airflow: the DeepSpeed launcher as a subprocess of the worker, or a GPU pod.

:class:`DeepSpeedTrainOperator` trains one candidate. Its run folder and MLflow run are keyed by
(DAG, DAG run, task, map index, candidate), not by try number, so a retry resumes the newest
checkpoint and logs into the same run, and the model is registered once. Killing the task sends
SIGTERM to the training, which saves a checkpoint before it exits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import Context

from llmops_airflow.links import MLFLOW_RUN_XCOM_KEY, MlflowRunLink, mlflow_run_url
from llmops_airflow.operators.collection import PROJECT_DIR, _ConfiguredOperator
from llmops_airflow.operators.trigger import TriggerRunOperator

if TYPE_CHECKING:  # the llmops core stays out of DAG parsing; execute() imports what it runs
    from llmops.training.runfolder import RunFolder

DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class DeepSpeedTrainOperator(_ConfiguredOperator):
    """Trains one candidate (``{"name", "model", "train"}`` from ``plan_candidates``) on labeled
    dataset versions and returns its registered model version.

    ``training.launcher: local`` runs ``python -m llmops.training`` (CPU), ``deepspeed --num_gpus N``
    (one node) or DeepSpeed with a hostfile / torchrun with a rendezvous (several nodes) on the
    worker, streaming the training log into the task log. ``kubernetes`` hands the same command to
    ``KubernetesPodOperator`` as a GPU pod (the cncf.kubernetes provider must be installed).
    """

    template_fields: Sequence[str] = ("config_path", "candidate", "versions")
    ui_color = "#ede7f6"
    operator_extra_links = (MlflowRunLink(),)

    def __init__(self, *, candidate: dict[str, Any] | str, versions: list[str] | str, **kwargs: Any) -> None:
        kwargs.setdefault("partition", "")
        super().__init__(**kwargs)
        self.candidate = candidate
        self.versions = versions
        self._proc: subprocess.Popen[str] | None = None
        self._grace_s = 120

    # -- helpers ---------------------------------------------------------------------------------
    def _versions(self) -> list[str]:
        raw = self.versions
        if isinstance(raw, str):
            raw = json.loads(raw) if raw.strip().startswith("[") else raw.split(",")
        found = [str(v).strip() for v in raw if str(v).strip()]
        if not found:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException("no labeled dataset version to train on")
        return found

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from llmops.config import ConfigError, default_home
        from llmops.training.plan import build_train_config, run_folder_key, run_key
        from llmops.training.runfolder import RunFolder

        cfg = self.load_config()
        stage = cfg.training
        self._grace_s = stage.kill_grace_s
        candidate = json.loads(self.candidate) if isinstance(self.candidate, str) else dict(self.candidate)
        ti = context["ti"]
        key = run_key(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), candidate["name"])
        folder = RunFolder(self.open_store(cfg), run_folder_key(cfg.dataset, key), default_home() / "work")
        try:
            train_cfg = build_train_config(
                cfg, candidate, versions=self._versions(), output_dir=str(folder.path), key=key,
                tags={"airflow.dag_id": ti.dag_id, "airflow.run_id": ti.run_id, "airflow.task_id": ti.task_id})
        except (ConfigError, ValueError) as exc:
            raise AirflowFailException(str(exc)) from None  # a retry cannot fix a config
        self.log.info("candidate %s: run folder %s (%s), MLflow run key %s", candidate["name"], folder.path,
                      "synced to " + cfg.resolved_storage_root() if folder.remote else "on the object store", key)
        pulled = folder.pull()
        if pulled:
            self.log.info("pulled %d files of earlier tries from the object store", pulled)
        config_file = folder.path / "launch_config.json"
        config_file.write_text(train_cfg.model_dump_json(indent=2))

        if stage.launcher == "kubernetes":
            self._run_pod(context, cfg, train_cfg, key)
        else:
            self._run_local(stage, config_file, folder, self._store_env(cfg))
        result_file = folder.path / "train_result.json"
        if not result_file.exists():
            raise RuntimeError(f"the training ended without {result_file}")
        result = json.loads(result_file.read_text())
        out = {"candidate": candidate["name"], "run_key": key, "global_step": result["global_step"],
               "resumed_from": result.get("resumed_from"), "dataset_versions": result.get("dataset_versions"),
               "task": result.get("task"), "eval": result.get("eval", {}), "run_folder": folder.prefix,
               **(result.get("mlflow") or {})}
        self.log.info("trained %s: step %s, registered %s version %s (MLflow run %s)", candidate["name"],
                      out["global_step"], out.get("registered_model"), out.get("version"), out.get("run_id"))
        url = self._run_url(train_cfg, out.get("run_id"))
        if url:
            ti.xcom_push(key=MLFLOW_RUN_XCOM_KEY, value=url)
        return out

    def _run_url(self, train_cfg: Any, run_id: str | None) -> str:
        """The MLflow UI page of the training run (the task's "MLflow run" link)."""
        from llmops.training.tracking import tracking_uri

        uri = tracking_uri(train_cfg.tracking)
        if not run_id or not uri or not uri.startswith(("http://", "https://")):
            return ""
        from mlflow import MlflowClient

        try:
            experiment_id = MlflowClient(tracking_uri=uri).get_run(run_id).info.experiment_id
        except Exception as exc:  # the link is a convenience: never fail a finished training for it
            self.log.warning("no MLflow link: %s", type(exc).__name__)
            return ""
        return mlflow_run_url(uri, experiment_id, run_id)

    def _store_env(self, cfg: Any) -> dict[str, str]:
        """The object store's credentials for the launcher's processes, which read the dataset with
        boto3's default chain: an AWS connection's keys, region and S3-compatible endpoint go into
        their environment (never onto a command line, into the config file or the log)."""
        if not cfg.resolved_storage_root().startswith("s3://") or not cfg.storage.conn_id:
            return {}
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=cfg.storage.conn_id)
        env: dict[str, str] = {}
        creds = hook.get_credentials()
        if creds.access_key and creds.secret_key:
            env.update(AWS_ACCESS_KEY_ID=creds.access_key, AWS_SECRET_ACCESS_KEY=creds.secret_key)
            if creds.token:
                env["AWS_SESSION_TOKEN"] = creds.token
        endpoint = cfg.storage.endpoint_url or hook.conn_config.endpoint_url
        if endpoint:
            env["AWS_ENDPOINT_URL_S3"] = str(endpoint)
        if hook.conn_region_name:
            env["AWS_DEFAULT_REGION"] = str(hook.conn_region_name)
        return env

    def _command(self, stage: Any, config_file: Path) -> list[str]:
        from llmops.training.kube import launcher_command

        return launcher_command(gpus=stage.gpus, nnodes=stage.nnodes, rdzv_endpoint=stage.rdzv_endpoint,
                                hostfile=stage.hostfile, config_path=str(config_file), python=sys.executable)

    def _run_local(self, stage: Any, config_file: Path, folder: RunFolder,
                   store_env: dict[str, str] | None = None) -> None:
        cmd = self._command(stage, config_file)
        # the launcher describes the process world itself: none of the worker's own leaks into it
        env = {k: v for k, v in os.environ.items() if k not in DIST_ENV} | (store_env or {})
        env.update(PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
        env.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.executable).parents[1] / "torch-extensions"))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_DIR / "include"), env.get("PYTHONPATH")) if p)
        self.log.info("launching: %s", " ".join(cmd))
        tail: deque[str] = deque(maxlen=40)
        stop_sync = threading.Event()

        def sync() -> None:
            while not stop_sync.wait(stage.checkpoint_sync_s):
                folder.push()

        syncer = threading.Thread(target=sync, daemon=True, name="run-folder-sync")
        if folder.remote:
            syncer.start()
        # own session: on_kill signals the launcher and every worker process it started
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                                      cwd=str(folder.path), start_new_session=True, bufsize=1)
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.rstrip()
            tail.append(line)
            if line:
                self.log.info("%s", line)
        rc = self._proc.wait()
        stop_sync.set()
        folder.push()
        if rc != 0:
            why = "stopped by SIGTERM after saving a checkpoint" if rc in (143, -signal.SIGTERM) else f"exit code {rc}"
            raise RuntimeError(f"training failed ({why}); a retry resumes from the newest checkpoint. "
                               "Last lines:\n" + "\n".join(tail))

    def _run_pod(self, context: Context, cfg: Any, train_cfg: Any, key: str) -> None:
        try:
            from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        except ImportError:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException("training.launcher is kubernetes but apache-airflow-providers-cncf-kubernetes "
                                       "is not installed on this worker") from None
        from llmops.training.kube import PodSpec, launcher_command, pod_operator_kwargs

        stage = cfg.training
        if stage.nnodes > 1:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException("training.launcher kubernetes runs one pod (one node, `gpus` GPUs); for "
                                       "several nodes run the torchrun command of llmops.training.kube on an "
                                       "Indexed Job or a PyTorchJob")
        uri = train_cfg.tracking.tracking_uri or ""
        if "@" in uri.split("://", 1)[-1].split("/", 1)[0]:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException("training.tracking.tracking_uri holds credentials; put MLFLOW_TRACKING_USERNAME"
                                       "/PASSWORD in a Kubernetes Secret listed in training.kubernetes.env_from_secrets")
        k8s = stage.kubernetes
        spec = PodSpec(image=k8s.image, namespace=k8s.namespace, gpus_per_pod=stage.gpus, cpu=k8s.cpu,
                       memory=k8s.memory, service_account=k8s.service_account,
                       env_from_secrets=list(k8s.env_from_secrets), pvc=k8s.pvc,
                       node_selector=dict(k8s.node_selector))
        # the pod has no copy of the worker's files: the validated config travels inline
        command = launcher_command(gpus=stage.gpus, config_path="-", python="python")
        command[command.index("--config"):] = ["--config-json", train_cfg.model_dump_json()]
        kwargs = pod_operator_kwargs(spec, task_id=f"{self.task_id}_pod", name=key.replace("/", "-"),
                                     command=command, env={"MLFLOW_TRACKING_URI": uri})
        KubernetesPodOperator(**kwargs).execute(context)

    def on_kill(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self.log.warning("task killed: asking the training to checkpoint and stop (%ss)", self._grace_s)
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + self._grace_s
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(1)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class TrainingCatchUpOperator(TriggerRunOperator):
    """The last task of a fine-tuning run, also when the run trained nothing: when the labeled data
    (the newest labeled version of every partition) is not what any run trained on – a labeled
    version published while this run was busy, whose asset event the scheduler may drop
    (apache/airflow#56050) – trigger one more run; else do nothing. The triggered run's id is
    derived from the data's fingerprint, so a retry triggers nothing twice; it has this run's
    candidates and overrides. A run with its own ``versions`` (or ``force``) catches nothing up."""

    template_fields: Sequence[str] = (*TriggerRunOperator.template_fields, "config_path")
    ui_color = "#f3e5f5"

    def __init__(self, *, config_path: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_dag_id", "{{ dag.dag_id }}")
        kwargs.setdefault("trigger_run_id", "")
        kwargs.setdefault("trigger_rule", "none_failed")  # after a run that trained nothing too
        super().__init__(**kwargs)
        self.config_path = config_path

    def execute(self, context: Context) -> None:
        from llmops.config import load_config
        from llmops.training.plan import trained_marker, training_fingerprint
        from llmops.versions import latest_versions
        from llmops_airflow.dagconfig import resolve_config_path
        from llmops_airflow.hooks.store import ObjectStoreHook

        params = dict(context.get("params") or {})
        own = [k for k in ("versions", "force") if params.get(k) not in (None, "", False)]
        if own:
            self.log.info("this run chose its own data (%s): nothing to catch up", ", ".join(own))
            return None
        cfg = load_config(resolve_config_path(self.config_path))
        store = ObjectStoreHook.for_config(cfg).store
        versions = list(latest_versions(store, cfg.dataset, "labeled").values())
        if not versions:
            return None
        fingerprint = training_fingerprint(cfg, store, versions, params)  # the run's candidates and overrides
        if store.exists(trained_marker(cfg.dataset, fingerprint)):
            self.log.info("the newest labeled data (%s) is trained (fingerprint %s): nothing to catch up",
                          ", ".join(versions), fingerprint)
            return None
        self.log.info("the newest labeled data (%s) was not trained yet (fingerprint %s): one more run like this "
                      "one for it", ", ".join(versions), fingerprint)
        self.trigger_run_id = f"catch_up__{fingerprint[:16]}"
        self.conf = {k: v for k, v in params.items() if k not in ("versions", "force")} | {"config_path": self.config_path}
        self.skip_when_already_exists = True
        return super().execute(context)
