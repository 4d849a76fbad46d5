"""Training pods and launch commands: the v1 Pod manifest handed to KubernetesPodOperator, the
operator's keyword arguments, and launcher command lines checked against the installed
``deepspeed`` and ``torchrun`` CLIs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from llmops.training.kube import (
    PodSpec,
    launcher_command,
    pod_name,
    pod_operator_kwargs,
    torchrun_command,
    training_pod,
)

BIN = Path(sys.executable).parent
CMD = ["deepspeed", "--num_gpus", "4", "--module", "llmops.training", "--config", "/workspace/train.yaml"]


def _pod(**spec_kwargs):
    spec = PodSpec(image="registry.example/llmops-train:1", **spec_kwargs)
    return training_pod(spec, name="finetune-run", command=CMD, env={"LLMOPS_HOME": "/workspace"})


def _container(manifest):
    return manifest["spec"]["containers"][0]


# --------------------------------------------------------------------------- manifest


def test_gpu_pod_manifest_structure():
    spec = PodSpec(image="registry.example/llmops-train:1", namespace="ml", gpus_per_pod=4, cpu="32",
                   memory="256Gi", node_selector={"gpu-type": "a100"}, service_account="trainer",
                   env_from_secrets=["mlflow-creds", "s3-creds"], labels={"team": "ml"})
    pod = training_pod(spec, name="finetune-run", command=CMD, env={"LLMOPS_HOME": "/workspace", "NCCL_DEBUG": "WARN"})

    assert json.loads(json.dumps(pod)) == pod  # plain JSON data
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    assert pod["metadata"] == {"name": "finetune-run", "namespace": "ml",
                               "labels": {"team": "ml", "app.kubernetes.io/name": "llmops-train",
                                          "app.kubernetes.io/instance": "finetune-run"}}
    s = pod["spec"]
    assert s["restartPolicy"] == "Never"
    assert s["nodeSelector"] == {"gpu-type": "a100"}
    assert s["serviceAccountName"] == "trainer"
    assert s["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert len(s["containers"]) == 1
    c = _container(pod)
    assert c["name"] == "base"
    assert c["image"] == "registry.example/llmops-train:1"
    assert c["command"] + c["args"] == CMD and c["command"] == ["deepspeed"]
    assert c["resources"] == {"requests": {"cpu": "32", "memory": "256Gi"},
                              "limits": {"cpu": "32", "memory": "256Gi", "nvidia.com/gpu": "4"}}
    assert c["env"] == [{"name": "LLMOPS_HOME", "value": "/workspace"}, {"name": "NCCL_DEBUG", "value": "WARN"}]
    assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}, {"secretRef": {"name": "s3-creds"}}]
    assert "secretKeyRef" not in json.dumps(pod) and "AKIA" not in json.dumps(pod)


def test_no_gpu_limit_or_toleration_without_gpus():
    pod = _pod(gpus_per_pod=0)
    c = _container(pod)
    assert c["resources"]["limits"] == {"cpu": "8", "memory": "64Gi"}
    assert not any("gpu" in k for k in c["resources"]["requests"])
    assert "tolerations" not in pod["spec"]


def test_custom_gpu_resource_and_explicit_tolerations():
    pod = _pod(gpus_per_pod=2, gpu_resource="amd.com/gpu", tolerations=[])
    assert _container(pod)["resources"]["limits"]["amd.com/gpu"] == "2"
    assert "tolerations" not in pod["spec"]  # an explicit empty list replaces the default
    tol = [{"key": "dedicated", "operator": "Equal", "value": "training", "effect": "NoSchedule"}]
    assert _pod(tolerations=tol)["spec"]["tolerations"] == tol


def test_shm_volume_and_pvc_mount():
    pod = _pod(pvc="llmops-runs", shm_size="32Gi")
    assert pod["spec"]["volumes"] == [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "32Gi"}},
        {"name": "workspace", "persistentVolumeClaim": {"claimName": "llmops-runs"}},
    ]
    assert _container(pod)["volumeMounts"] == [
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "workspace", "mountPath": "/workspace"},
    ]
    default = _pod()  # S3 store: no PVC; /dev/shm still enlarged
    assert [v["name"] for v in default["spec"]["volumes"]] == ["dshm"]
    assert default["spec"]["volumes"][0]["emptyDir"]["sizeLimit"] == "16Gi"
    bare = _pod(shm_size=None)
    assert "volumes" not in bare["spec"] and "volumeMounts" not in _container(bare)


def test_name_is_sanitised_bounded_and_deterministic():
    long = "LLMOps Fine_Tune/" + "x" * 100
    name = pod_name(long)
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert name == pod_name(long) and name.startswith("llmops-fine-tune-")
    assert pod_name("finetune-run") == "finetune-run"  # already valid: unchanged
    assert pod_name("Train_A") != pod_name("train-a")  # changed names keep a hash of the original
    assert re.fullmatch(r"[a-z0-9-]+", pod_name("__")) and len(pod_name("Ünïcode!!")) <= 63

    spec = PodSpec(image="img:1")
    a = training_pod(spec, name=long, command=CMD, env={"A": "1"})
    b = training_pod(spec, name=long, command=CMD, env={"A": "1"})
    assert a == b and json.dumps(a) == json.dumps(b)
    assert a["metadata"]["name"] == name
    with pytest.raises(ValueError, match="name"):
        pod_name("")


def test_manifest_does_not_alias_the_spec():
    spec = PodSpec(image="img:1", tolerations=[{"key": "k", "operator": "Exists"}], node_selector={"a": "b"})
    pod = training_pod(spec, name="x", command=CMD, env={})
    pod["spec"]["tolerations"][0]["key"] = "changed"
    pod["spec"]["nodeSelector"]["a"] = "changed"
    assert spec.tolerations == [{"key": "k", "operator": "Exists"}] and spec.node_selector == {"a": "b"}


@pytest.mark.parametrize("key", ["HF_TOKEN", "aws_secret_access_key", "DB_Password", "AWS_ACCESS_KEY_ID",
                                 "GOOGLE_APPLICATION_CREDENTIALS", "MLFLOW_TRACKING_TOKEN"])
def test_secret_looking_env_is_refused_naming_it(key):
    spec = PodSpec(image="img:1")
    with pytest.raises(ValueError, match=re.escape(repr(key))) as err:
        training_pod(spec, name="x", command=CMD, env={"LLMOPS_HOME": "/w", key: "hunter2"})
    assert "env_from_secrets" in str(err.value) and "hunter2" not in str(err.value)
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        pod_operator_kwargs(spec, task_id="t", name="x", command=CMD, env={key: "v"})


def test_env_and_spec_validation():
    spec = PodSpec(image="img:1")
    ok = training_pod(spec, name="x", command=CMD, env={"TOKENIZERS_PARALLELISM": "false"})
    assert _container(ok)["env"] == [{"name": "TOKENIZERS_PARALLELISM", "value": "false"}]
    with pytest.raises(ValueError, match="'STEPS'"):
        training_pod(spec, name="x", command=CMD, env={"STEPS": 3})
    with pytest.raises(ValueError, match="'1BAD NAME'"):
        training_pod(spec, name="x", command=CMD, env={"1BAD NAME": "v"})
    with pytest.raises(ValueError, match="command"):
        training_pod(spec, name="x", command="deepspeed --num_gpus 1", env={})
    for bad in ({"image": ""}, {"gpus_per_pod": -1}, {"memory": "64 GB"}, {"cpu": "eight"},
                {"namespace": "Not_Valid"}, {"env_from_secrets": ["Bad_Secret"]}, {"pvc": "/mnt/x"},
                {"labels": {"team": "has space"}}):
        with pytest.raises(ValueError, match="PodSpec"):
            PodSpec(**{"image": "img:1", **bad})


# --------------------------------------------------------------------------- operator kwargs


def test_pod_operator_kwargs():
    spec = PodSpec(image="img:1", namespace="ml", gpus_per_pod=4, env_from_secrets=["s3-creds"])
    kw = pod_operator_kwargs(spec, task_id="train", name="Fine Tune", command=CMD, env={"A": "1"})
    assert json.loads(json.dumps(kw)) == kw
    assert set(kw) == {"task_id", "namespace", "image", "cmds", "arguments", "name", "pod_template_dict",
                       "get_logs", "on_finish_action", "log_events_on_failure", "deferrable",
                       "startup_timeout_seconds"}
    assert kw["task_id"] == "train" and kw["namespace"] == "ml" and kw["image"] == "img:1"
    assert kw["cmds"] == ["deepspeed"] and kw["arguments"] == CMD[1:]
    assert kw["pod_template_dict"] == training_pod(spec, name="Fine Tune", command=CMD, env={"A": "1"})
    assert kw["name"] == kw["pod_template_dict"]["metadata"]["name"] == pod_name("Fine Tune")
    assert kw["get_logs"] is True and kw["on_finish_action"] == "delete_pod" and kw["deferrable"] is False
    kw2 = pod_operator_kwargs(spec, task_id="train", name="x", command=CMD, env={}, deferrable=True,
                              startup_timeout_seconds=60, kubernetes_conn_id="k8s_gpu")
    assert kw2["deferrable"] is True and kw2["startup_timeout_seconds"] == 60 and kw2["kubernetes_conn_id"] == "k8s_gpu"


# --------------------------------------------------------------------------- launch commands

CONFIG = "/workspace/train.yaml"


def test_launcher_cpu():
    assert launcher_command(gpus=0, config_path=CONFIG) == ["python", "-m", "llmops.training", "--config", CONFIG]
    assert launcher_command(gpus=0, config_path=CONFIG, python="/opt/venv/bin/python")[0] == "/opt/venv/bin/python"


def test_launcher_single_node_deepspeed():
    assert launcher_command(gpus=4, config_path=CONFIG) == [
        "deepspeed", "--num_gpus", "4", "--module", "llmops.training", "--config", CONFIG]


def test_launcher_hostfile():
    assert launcher_command(gpus=8, nnodes=2, hostfile="/etc/ds/hostfile", config_path=CONFIG) == [
        "deepspeed", "--hostfile", "/etc/ds/hostfile", "--num_nodes", "2", "--num_gpus", "8",
        "--module", "llmops.training", "--config", CONFIG]
    cmd = launcher_command(gpus=8, nnodes=2, hostfile="/h", master_addr="10.0.0.1", config_path=CONFIG)
    assert cmd[cmd.index("--master_addr") + 1] == "10.0.0.1"


def test_launcher_rendezvous():
    cmd = launcher_command(gpus=8, nnodes=4, rdzv_endpoint="train-0.train:29400", config_path=CONFIG)
    rdzv_id = cmd[cmd.index("--rdzv-id") + 1]
    assert cmd == torchrun_command(nnodes=4, nproc_per_node=8, rdzv_endpoint="train-0.train:29400",
                                   config_path=CONFIG, rdzv_id=rdzv_id)
    assert cmd == ["torchrun", "--nnodes", "4", "--nproc-per-node", "8", "--rdzv-backend", "c10d",
                   "--rdzv-endpoint", "train-0.train:29400", "--rdzv-id", rdzv_id,
                   "-m", "llmops.training", "--config", CONFIG]
    # every node computes the same id; another job gets another one
    assert cmd == launcher_command(gpus=8, nnodes=4, rdzv_endpoint="train-0.train:29400", config_path=CONFIG)
    other = launcher_command(gpus=8, nnodes=4, rdzv_endpoint="train-0.train:29400", config_path="/w/other.yaml")
    assert other[other.index("--rdzv-id") + 1] != rdzv_id
    named = launcher_command(gpus=1, nnodes=2, rdzv_endpoint="[fd00::1]:29400", rdzv_id="job-7", config_path=CONFIG)
    assert named[named.index("--rdzv-id") + 1] == "job-7"


@pytest.mark.parametrize("kwargs, match", [
    ({"gpus": 4, "nnodes": 2}, "hostfile"),
    ({"gpus": 0, "nnodes": 2}, "gpus"),
    ({"gpus": 0, "rdzv_endpoint": "h:1"}, "gpus"),
    ({"gpus": 4, "hostfile": "/h", "rdzv_endpoint": "h:1"}, "not both"),
    ({"gpus": -1}, "gpus"),
    ({"gpus": 1, "nnodes": 0}, "nnodes"),
    ({"gpus": 1, "nnodes": 2, "rdzv_endpoint": "h:1; rm -rf /"}, "rdzv_endpoint"),
    ({"gpus": 1, "master_addr": "10.0.0.1"}, "master_addr"),
])
def test_launcher_rejects(kwargs, match):
    with pytest.raises(ValueError, match=match):
        launcher_command(config_path=CONFIG, **kwargs)
    with pytest.raises(ValueError, match="config_path"):
        launcher_command(gpus=1, config_path="")


# --------------------------------------------------------------------------- real CLIs


def _options(help_text: str) -> set[str]:
    """Option strings defined in an argparse ``--help`` (the "options:" lines, e.g.
    ``  -H HOSTFILE, --hostfile HOSTFILE``), not words that merely appear in help prose."""
    found: set[str] = set()
    for line in help_text.splitlines():
        if re.match(r"^ {2}-", line):
            invocation = re.split(r"\s{2,}", line.strip())[0]
            found.update(part.split(" ")[0] for part in invocation.split(", "))
    return found


@pytest.fixture(scope="module")
def cli_options() -> dict[str, set[str]]:
    tools = {name: BIN / name for name in ("deepspeed", "torchrun")}
    missing = [str(p) for p in tools.values() if not p.exists()]
    if missing:
        pytest.skip(f"not installed: {missing}")
    env = {**os.environ, "COLUMNS": "200"}
    # both start together: each spends seconds importing torch
    procs = {name: subprocess.Popen([str(path), "--help"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True, env=env) for name, path in tools.items()}
    out = {}
    for name, proc in procs.items():
        stdout, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{name} --help exited {proc.returncode}"
        out[name] = _options(stdout)
    return out


def _flags(cmd: list[str]) -> list[str]:
    """The launcher's own flags: every option before the module it launches."""
    end = cmd.index("llmops.training")
    return [t for t in cmd[1:end] if t.startswith("-")]


@pytest.mark.slow
def test_emitted_flags_exist_in_the_installed_launchers(cli_options):
    ds, tr = cli_options["deepspeed"], cli_options["torchrun"]
    assert {"--hostfile", "--num_gpus", "--num_nodes", "--module"} <= ds  # the parser found the options
    assert "-m" not in ds  # deepspeed has no -m short flag: `deepspeed -m pkg` is rejected
    commands = [
        launcher_command(gpus=4, config_path=CONFIG),
        launcher_command(gpus=8, nnodes=2, hostfile="/h", master_addr="10.0.0.1", config_path=CONFIG),
    ]
    for cmd in commands:
        assert cmd[0] == "deepspeed"
        for flag in _flags(cmd):
            assert flag in ds, f"deepspeed has no {flag} option"
    cmd = launcher_command(gpus=8, nnodes=2, rdzv_endpoint="h:29400", config_path=CONFIG)
    assert cmd[0] == "torchrun"
    for flag in _flags(cmd):
        assert flag in tr, f"torchrun has no {flag} option"
