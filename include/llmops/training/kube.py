"""Launch commands and Kubernetes pod manifests for a fine-tuning run.

A run is ``python -m llmops.training --config FILE``; with GPUs it goes through a launcher:

* one node:   ``deepspeed --num_gpus G --module llmops.training --config FILE``
* a hostfile: ``deepspeed --hostfile H --num_nodes N --num_gpus G --module llmops.training ...``
  (DeepSpeed reaches the other hosts over ssh/pdsh)
* rendezvous: ``torchrun --nnodes N --nproc-per-node G --rdzv-backend c10d --rdzv-endpoint HOST:PORT
  --rdzv-id ID -m llmops.training --config FILE`` started once per node (one pod per node, e.g. a
  Kubernetes Indexed Job behind a headless Service), with no ssh between pods.

``deepspeed`` has no ``-m`` short flag (its launcher only defines ``--module``); ``torchrun``
accepts ``-m``. DeepSpeed passes ``--local_rank=N`` to each worker, which the entry point accepts.

The manifest is a plain, JSON-serialisable ``v1`` Pod dict with Kubernetes' camelCase field
names, so it works without the ``kubernetes`` package: ``KubernetesPodOperator`` takes it as
``pod_template_dict`` and deserialises it into a ``V1Pod`` (by the API's JSON field names) before
merging its own arguments over it. Credentials never appear in it: they come from Kubernetes
Secrets named in :attr:`PodSpec.env_from_secrets` (``envFrom``/``secretRef``).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "APP_NAME",
    "BASE_CONTAINER",
    "MODULE",
    "SHM_PATH",
    "WORKSPACE_PATH",
    "PodSpec",
    "launcher_command",
    "pod_name",
    "pod_operator_kwargs",
    "torchrun_command",
    "training_pod",
]

MODULE = "llmops.training"
APP_NAME = "llmops-train"
# KubernetesPodOperator follows (logs, exit status) the container named by its
# BASE_CONTAINER_NAME class attribute, "base".
BASE_CONTAINER = "base"
WORKSPACE_PATH = "/workspace"
SHM_PATH = "/dev/shm"
MAX_NAME_LENGTH = 63  # DNS-1123 label; also the provider's POD_NAME_MAX_LENGTH

# Substrings (case-insensitive) that mark an environment variable as a credential.
SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL")
# Well-known settings that contain a marker but hold no secret.
NOT_SECRET_ENV = frozenset({"TOKENIZERS_PARALLELISM"})

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                        r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_RDZV_ENDPOINT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)(:[0-9]{1,5})?$")


def _gpu_toleration(resource: str) -> dict[str, str]:
    return {"key": resource, "operator": "Exists", "effect": "NoSchedule"}


@dataclass(frozen=True)
class PodSpec:
    """Where and with what a training pod runs.

    ``tolerations=None`` (the default) tolerates the GPU taint (``<gpu_resource>:NoSchedule``,
    as GPU node pools are usually tainted) when the pod asks for GPUs; pass a list to replace it.
    ``pvc`` mounts a PersistentVolumeClaim at ``/workspace`` (run folders, checkpoints) for a
    local object store; leave it ``None`` when the store is S3. ``shm_size=None`` leaves
    ``/dev/shm`` at the container runtime's default (64 MiB, too small for NCCL and DataLoader
    workers).
    """

    image: str
    namespace: str = "default"
    gpus_per_pod: int = 1
    cpu: str = "8"
    memory: str = "64Gi"
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] | None = None
    service_account: str | None = None
    env_from_secrets: list[str] = field(default_factory=list)
    pvc: str | None = None
    shm_size: str | None = "16Gi"
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.image, str) or not self.image.strip():
            raise ValueError("PodSpec.image: an image reference is required")
        if not _DNS_LABEL.match(self.namespace) or len(self.namespace) > MAX_NAME_LENGTH:
            raise ValueError(f"PodSpec.namespace: {self.namespace!r} is not a valid namespace name")
        if isinstance(self.gpus_per_pod, bool) or not isinstance(self.gpus_per_pod, int) or self.gpus_per_pod < 0:
            raise ValueError(f"PodSpec.gpus_per_pod: expected an integer >= 0, got {self.gpus_per_pod!r}")
        for key in ("cpu", "memory") + (("shm_size",) if self.shm_size is not None else ()):
            value = getattr(self, key)
            if not isinstance(value, str) or not _QUANTITY.match(value):
                raise ValueError(f"PodSpec.{key}: {value!r} is not a Kubernetes quantity (e.g. '8', '500m', '64Gi')")
        if not _LABEL_KEY.match(self.gpu_resource):
            raise ValueError(f"PodSpec.gpu_resource: {self.gpu_resource!r} is not a resource name")
        for secret in self.env_from_secrets:
            if not isinstance(secret, str) or not _DNS_SUBDOMAIN.match(secret) or len(secret) > 253:
                raise ValueError(f"PodSpec.env_from_secrets: {secret!r} is not a Secret name")
        if self.pvc is not None and (not _DNS_SUBDOMAIN.match(self.pvc) or len(self.pvc) > 253):
            raise ValueError(f"PodSpec.pvc: {self.pvc!r} is not a PersistentVolumeClaim name")
        if self.service_account is not None and not _DNS_SUBDOMAIN.match(self.service_account):
            raise ValueError(f"PodSpec.service_account: {self.service_account!r} is not a ServiceAccount name")
        for mapping_name in ("labels", "node_selector"):
            for key, value in getattr(self, mapping_name).items():
                if not isinstance(key, str) or not _LABEL_KEY.match(key):
                    raise ValueError(f"PodSpec.{mapping_name}: {key!r} is not a label key")
                if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                    raise ValueError(f"PodSpec.{mapping_name}[{key!r}]: {value!r} is not a label value")

    def effective_tolerations(self) -> list[dict[str, Any]]:
        if self.tolerations is not None:
            return copy.deepcopy(list(self.tolerations))
        return [_gpu_toleration(self.gpu_resource)] if self.gpus_per_pod > 0 else []


# --------------------------------------------------------------------------- names and env


def pod_name(name: str) -> str:
    """A DNS-1123 label (lower-case alphanumerics and ``-``, at most 63 characters) for ``name``.

    Deterministic; a name that had to be changed or shortened gets a short hash of the original,
    so different inputs (``Train_A`` and ``train-a``) stay different.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("pod name: a non-empty name is required")
    clean = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if clean == name and len(clean) <= MAX_NAME_LENGTH:
        return clean
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    stem = clean[: MAX_NAME_LENGTH - len(digest) - 1].strip("-") or "llmops"
    return f"{stem}-{digest}"


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return upper not in NOT_SECRET_ENV and any(marker in upper for marker in SECRET_MARKERS)


def _env_list(env: Mapping[str, str]) -> list[dict[str, str]]:
    out = []
    for key, value in env.items():
        if not isinstance(key, str) or not _ENV_NAME.match(key):
            raise ValueError(f"env: {key!r} is not a valid environment variable name")
        if _looks_secret(key):
            raise ValueError(
                f"env: {key!r} looks like a credential (its name contains one of "
                f"{', '.join(SECRET_MARKERS)}); put it in a Kubernetes Secret and name the Secret "
                "in PodSpec.env_from_secrets instead of passing its value"
            )
        if not isinstance(value, str):
            raise ValueError(f"env: the value of {key!r} must be a string, got {type(value).__name__}")
        out.append({"name": key, "value": value})
    return out


def _check_command(command: Sequence[str]) -> list[str]:
    if isinstance(command, str) or not command or not all(isinstance(c, str) and c for c in command):
        raise ValueError("command: expected a non-empty list of non-empty strings, e.g. launcher_command(...)")
    return list(command)


# --------------------------------------------------------------------------- manifest


def training_pod(spec: PodSpec, *, name: str, command: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """A ``v1`` Pod manifest running ``command`` in the ``base`` container.

    The first word of ``command`` becomes the container's ``command`` (the image's ENTRYPOINT is
    replaced) and the rest its ``args``. GPUs are requested as an extended resource in
    ``limits`` (Kubernetes sets the request equal to it); CPU and memory requests equal their
    limits, which gives the pod the Guaranteed QoS class (last to be evicted).
    """
    command = _check_command(command)
    env_list = _env_list(env)
    metadata_name = pod_name(name)

    limits: dict[str, str] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus_per_pod > 0:
        limits[spec.gpu_resource] = str(spec.gpus_per_pod)
    container: dict[str, Any] = {
        "name": BASE_CONTAINER,
        "image": spec.image,
        "command": command[:1],
        "args": command[1:],
        "resources": {"requests": {"cpu": spec.cpu, "memory": spec.memory}, "limits": limits},
    }
    if env_list:
        container["env"] = env_list
    if spec.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in spec.env_from_secrets]

    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if spec.shm_size is not None:
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": spec.shm_size}})
        mounts.append({"name": "dshm", "mountPath": SHM_PATH})
    if spec.pvc is not None:
        volumes.append({"name": "workspace", "persistentVolumeClaim": {"claimName": spec.pvc}})
        mounts.append({"name": "workspace", "mountPath": WORKSPACE_PATH})
    if mounts:
        container["volumeMounts"] = mounts

    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if volumes:
        pod_spec["volumes"] = volumes
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    tolerations = spec.effective_tolerations()
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account

    labels = {**spec.labels, "app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": metadata_name}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": metadata_name, "namespace": spec.namespace, "labels": labels},
        "spec": pod_spec,
    }


def pod_operator_kwargs(
    spec: PodSpec,
    *,
    task_id: str,
    name: str,
    command: Sequence[str],
    env: Mapping[str, str],
    deferrable: bool = False,
    startup_timeout_seconds: int = 900,
    kubernetes_conn_id: str | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``KubernetesPodOperator(**kwargs)`` (cncf.kubernetes provider).

    The whole pod travels as ``pod_template_dict``; ``image``, ``cmds``, ``arguments``, ``name``
    and ``namespace`` repeat what it holds so they show in the task's rendered fields (the
    operator's own values take precedence over the template's). Env, volumes and resources are
    left to the template only: the operator concatenates list fields such as ``env`` and
    ``volumes`` from both sides, so passing them twice would duplicate them.

    ``startup_timeout_seconds`` defaults high because a CUDA image is large to pull.
    ``on_finish_action="delete_pod"`` removes the pod whatever its outcome (its logs are in the
    task log, ``get_logs=True``); ``log_events_on_failure`` reports why a pod could not be
    scheduled (e.g. no node with free GPUs).
    """
    if not isinstance(task_id, str) or not task_id:
        raise ValueError("task_id: a task id is required")
    if not isinstance(startup_timeout_seconds, int) or startup_timeout_seconds <= 0:
        raise ValueError(f"startup_timeout_seconds: expected a positive integer, got {startup_timeout_seconds!r}")
    manifest = training_pod(spec, name=name, command=command, env=env)
    container = manifest["spec"]["containers"][0]
    kwargs: dict[str, Any] = {
        "task_id": task_id,
        "namespace": spec.namespace,
        "image": spec.image,
        "cmds": list(container["command"]),
        "arguments": list(container["args"]),
        "name": manifest["metadata"]["name"],
        "pod_template_dict": manifest,
        "get_logs": True,
        "on_finish_action": "delete_pod",
        "log_events_on_failure": True,
        "deferrable": bool(deferrable),
        "startup_timeout_seconds": startup_timeout_seconds,
    }
    if kubernetes_conn_id is not None:
        kwargs["kubernetes_conn_id"] = kubernetes_conn_id
    return kwargs


# --------------------------------------------------------------------------- launch commands


def _positive(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _config(config_path: str) -> str:
    if not isinstance(config_path, str) or not config_path.strip():
        raise ValueError("config_path: the training YAML's path is required")
    return config_path


def torchrun_command(*, nnodes: int, nproc_per_node: int, rdzv_endpoint: str, config_path: str,
                     rdzv_id: str) -> list[str]:
    """``torchrun`` with c10d rendezvous, started identically on every node of a multi-node job.

    Every node must be given the same ``rdzv_endpoint`` (``HOST:PORT`` of one of them, e.g. the
    first pod of an Indexed Job via a headless Service) and the same ``rdzv_id``.
    """
    _positive("nnodes", nnodes, 1)
    _positive("nproc_per_node", nproc_per_node, 1)
    if not isinstance(rdzv_endpoint, str) or not _RDZV_ENDPOINT.match(rdzv_endpoint):
        raise ValueError(f"rdzv_endpoint: expected HOST:PORT, got {rdzv_endpoint!r}")
    if not isinstance(rdzv_id, str) or not re.match(r"^[A-Za-z0-9_.-]+$", rdzv_id):
        raise ValueError(f"rdzv_id: expected letters, digits, '.', '_' or '-', got {rdzv_id!r}")
    return [
        "torchrun",
        "--nnodes", str(nnodes),
        "--nproc-per-node", str(nproc_per_node),
        "--rdzv-backend", "c10d",
        "--rdzv-endpoint", rdzv_endpoint,
        "--rdzv-id", rdzv_id,
        "-m", MODULE,
        "--config", _config(config_path),
    ]


def launcher_command(*, gpus: int, nnodes: int = 1, rdzv_endpoint: str | None = None, hostfile: str | None = None,
                     config_path: str, python: str = "python", rdzv_id: str | None = None,
                     master_addr: str | None = None) -> list[str]:
    """The command line of a training run with ``gpus`` GPUs per node on ``nnodes`` nodes.

    * ``gpus == 0``: ``python -m llmops.training --config F`` (single process, CPU).
    * ``hostfile``: ``deepspeed --hostfile H --num_nodes N --num_gpus G [--master_addr A]``
      ``--module llmops.training --config F`` (ssh/pdsh to the hosts in the file).
    * ``rdzv_endpoint``: :func:`torchrun_command`, run on each node; ``rdzv_id`` defaults to a
      hash of the endpoint, node count and config path, the same on every node.
    * otherwise one node: ``deepspeed --num_gpus G --module llmops.training --config F``.
    """
    _positive("gpus", gpus, 0)
    _positive("nnodes", nnodes, 1)
    config_path = _config(config_path)
    if hostfile is not None and rdzv_endpoint is not None:
        raise ValueError("launcher: give hostfile (DeepSpeed over ssh) or rdzv_endpoint (torchrun), not both")
    if master_addr is not None and hostfile is None:
        raise ValueError("launcher: master_addr applies to a hostfile (DeepSpeed multi-node) launch only")
    if gpus == 0:
        if nnodes > 1 or hostfile is not None or rdzv_endpoint is not None:
            raise ValueError("launcher: multi-node training needs gpus >= 1")
        return [python, "-m", MODULE, "--config", config_path]
    if rdzv_endpoint is not None:
        if rdzv_id is None:
            digest = hashlib.sha256(f"{rdzv_endpoint}|{nnodes}|{config_path}".encode()).hexdigest()[:12]
            rdzv_id = f"{APP_NAME}-{digest}"
        return torchrun_command(nnodes=nnodes, nproc_per_node=gpus, rdzv_endpoint=rdzv_endpoint,
                                config_path=config_path, rdzv_id=rdzv_id)
    if hostfile is not None:
        if not isinstance(hostfile, str) or not hostfile:
            raise ValueError("hostfile: a path is required")
        cmd = ["deepspeed", "--hostfile", hostfile, "--num_nodes", str(nnodes), "--num_gpus", str(gpus)]
        if master_addr:
            cmd += ["--master_addr", master_addr]
        return cmd + ["--module", MODULE, "--config", config_path]
    if nnodes > 1:
        raise ValueError(f"launcher: nnodes={nnodes} needs a hostfile (DeepSpeed) or an rdzv_endpoint (torchrun)")
    return ["deepspeed", "--num_gpus", str(gpus), "--module", MODULE, "--config", config_path]
