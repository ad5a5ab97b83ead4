"""The deployment files in docker/: they parse, point at real files, and hold valid router configs.

No Docker daemon or cluster is reachable here, so these checks read the files: the image's
stages and entry point, the compose topology, and the Kubernetes manifests' mounts, probes and
shutdown budget. The embedded router configs go through the router's own validation.
"""

from __future__ import annotations

import json
import os
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from router.config.loader import ConfigError, parse_config
from router.demo.model_server import VERSIONS
from tests.support import ROOT

DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
ENV = {"ROUTER_ADMIN_TOKEN": "x", "REDIS_PASSWORD": "r"}
CONFIG_DIR = "/etc/traffic-router"
# After SIGTERM the router drains in-flight requests for up to this long (issue 8).
DRAIN_SECONDS = 30
YAML_FILES = sorted(p for p in DOCKER.rglob("*") if p.suffix in (".yaml", ".yml"))


def documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def load(path: Path) -> Any:
    (doc,) = documents(path)
    return doc


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions


def stages() -> dict[str, list[tuple[str, str]]]:
    """Instructions by stage name (the part after ``FROM ... AS``)."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in dockerfile():
        if keyword == "FROM":
            current = result.setdefault(args.split()[-1], [])
        current.append((keyword, args))
    return result


def runtime(keyword: str) -> list[str]:
    return [args for kw, args in stages()["runtime"] if kw == keyword]


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = load(K8S / "deployment.yaml")["spec"]["template"]["spec"]
    return spec


def container() -> dict[str, Any]:
    (only,) = pod_spec()["containers"]
    return dict(only)


def embedded_config() -> str:
    text: str = load(K8S / "configmap.yaml")["data"]["config.yaml"]
    return text


# ---- every YAML file ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=[str(p.relative_to(DOCKER)) for p in YAML_FILES])
def test_yaml_file_parses_into_mappings(path: Path) -> None:
    docs = documents(path)
    assert docs
    assert all(isinstance(doc, dict) for doc in docs)


def test_the_expected_files_are_there() -> None:
    names = {str(p.relative_to(DOCKER)) for p in YAML_FILES}
    assert names >= {
        "compose.yaml", "prometheus.yml", "config-compose/config.yaml", "k8s/deployment.yaml",
        "k8s/service.yaml", "k8s/configmap.yaml", "k8s/pdb.yaml", "k8s/secret.example.yaml",
        "k8s/kustomization.yaml", "k8s/redis.yaml",
    }


# ---- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_builds_a_wheel_then_installs_it_on_slim() -> None:
    args = dict(a.split("=", 1) for kw, a in dockerfile() if kw == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    by_stage = stages()
    assert list(by_stage) == ["builder", "runtime"]
    assert all(by_stage[s][0][1].startswith("${PYTHON_IMAGE}") for s in by_stage)
    builder_runs = " ".join(a for kw, a in by_stage["builder"] if kw == "RUN")
    assert "pip wheel" in builder_runs and "/wheels" in builder_runs
    assert "${EXTRAS:+[$EXTRAS]}" in builder_runs  # the demo extra is optional, by build arg
    runtime_runs = " ".join(runtime("RUN"))
    assert "from=builder" in runtime_runs and "pip install --no-index" in runtime_runs
    assert "--uid 10001" in runtime_runs and "useradd" in runtime_runs


def test_dockerfile_runs_as_the_non_root_router_user() -> None:
    users = runtime("USER")
    assert users, "the runtime stage must drop root"
    assert users[-1].split(":")[0] in ("10001", "router")


def test_dockerfile_exposes_ports_checks_readiness_and_stops_on_sigterm() -> None:
    assert set(" ".join(runtime("EXPOSE")).split()) == {"8080", "9901"}
    assert runtime("STOPSIGNAL") == ["SIGTERM"]
    (healthcheck,) = runtime("HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    assert "urllib" in command[2] and "http://127.0.0.1:9901/readyz" in command[2]
    compile(command[2], "<healthcheck>", "exec")


def test_dockerfile_cmd_serves_the_mounted_config_with_the_console_script() -> None:
    (cmd,) = runtime("CMD")
    assert json.loads(cmd) == ["traffic-router", "serve", "--config", f"{CONFIG_DIR}/config.yaml"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "traffic-router" in project["scripts"]
    assert "demo" in project["optional-dependencies"]


def test_dockerfile_copies_only_paths_that_exist() -> None:
    sources = []
    for keyword, args in dockerfile():
        if keyword in ("COPY", "ADD"):
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            if "--from=" not in args:
                sources += words[:-1]
    assert sources
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"COPY sources missing from the repository: {missing}"


# ---- compose -----------------------------------------------------------------------------------


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = load(DOCKER / "compose.yaml")["services"]
    return services


def test_compose_builds_from_the_dockerfile_with_the_repo_as_context() -> None:
    services = compose_services()
    assert set(services) >= {"router", "model-v1", "model-v2", "prometheus"}
    for name in ("router", "model-v1", "model-v2"):
        build = services[name]["build"]
        context = Path(os.path.normpath(DOCKER / build["context"]))
        assert context == ROOT
        assert (context / build["dockerfile"]).is_file()
    assert services["model-v1"]["build"]["args"]["EXTRAS"] == "demo"


def test_compose_mounts_existing_files() -> None:
    for name, service in compose_services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).exists(), f"{name}: {source} does not exist"
    router = compose_services()["router"]
    assert f"./config-compose:{CONFIG_DIR}:ro" in router["volumes"]
    assert {"ROUTER_ADMIN_TOKEN", "REDIS_PASSWORD"} <= set(router["environment"])
    assert {p.split(":")[0] for p in router["ports"]} == {"8080-8081", "9901-9902"}


def test_compose_model_servers_match_the_backends_of_the_compose_config() -> None:
    config = parse_config((DOCKER / "config-compose/config.yaml").read_text(), env=ENV)
    urls = {urlsplit(b.url).hostname: urlsplit(b.url).port for b in config.backends.values()}
    services = compose_services()
    for version in VERSIONS:
        name = f"model-{version}"
        command = services[name]["command"]
        assert command[:3] == ["python", "-m", "router.demo.model_server"]
        flags = dict(zip(command[3::2], command[4::2], strict=True))
        assert flags["--version"] == version and flags["--host"] == "0.0.0.0"
        assert urls[name] == int(flags["--port"])


def test_prometheus_scrapes_the_router_admin_port() -> None:
    (job,) = load(DOCKER / "prometheus.yml")["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (every_replica,) = job["dns_sd_configs"]
    assert every_replica == {"names": ["router"], "type": "A", "port": 9901}
    prometheus = compose_services()["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus")
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]


# ---- the router configs ------------------------------------------------------------------------

CONFIGS = {
    "compose": lambda: (DOCKER / "config-compose/config.yaml").read_text(),
    "configmap": embedded_config,
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_passes_the_router_validation(name: str) -> None:
    config = parse_config(CONFIGS[name](), env=ENV)
    assert config.admin.listen == "0.0.0.0:9901"
    assert config.admin.token is not None and config.admin.token.get_secret_value() == "x"
    assert config.state.store == "redis"
    assert config.state.cache.startswith("/var/lib/traffic-router/")
    (canary,) = [r.strategy for r in config.routes if r.strategy.type == "canary"]
    stable, candidate = getattr(canary, "stable"), getattr(canary, "candidate")  # noqa: B009
    assert urlsplit(config.backends[stable].url).hostname == "model-v1"
    assert urlsplit(config.backends[candidate].url).hostname == "model-v2"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_refuses_to_load_without_the_admin_token(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(CONFIGS[name](), env={})
    assert any("ROUTER_ADMIN_TOKEN" in issue.message for issue in caught.value.issues)


# ---- Kubernetes --------------------------------------------------------------------------------


def test_deployment_mounts_the_configmap_as_a_directory() -> None:
    configmap = load(K8S / "configmap.yaml")
    (volume,) = [v for v in pod_spec()["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert "items" not in volume["configMap"]
    (mount,) = [m for m in container()["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount and "subPathExpr" not in mount
    assert mount["mountPath"] == CONFIG_DIR and mount["readOnly"] is True


def test_deployment_shutdown_budget_covers_prestop_and_drain() -> None:
    pre_stop = container()["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod_spec()["terminationGracePeriodSeconds"] > int(pre_stop[1]) + DRAIN_SECONDS


def test_deployment_probes_the_admin_port() -> None:
    router = container()
    ports = {p["name"]: p["containerPort"] for p in router["ports"]}
    assert ports == {"http": 8080, "admin": 9901}
    assert router["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "admin"}
    assert router["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    annotations = load(K8S / "deployment.yaml")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["admin"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_deployment_is_locked_down_with_writable_state() -> None:
    pod, router = pod_spec(), container()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert router["securityContext"]["readOnlyRootFilesystem"] is True
    assert router["securityContext"]["allowPrivilegeEscalation"] is False
    assert set(router["resources"]) == {"requests", "limits"}
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    writable = [m["mountPath"] for m in router["volumeMounts"] if m["name"] in empty_dirs]
    cache = parse_config(embedded_config(), env=ENV).state.cache
    assert any(cache.startswith(path + "/") for path in writable)


def test_deployment_reads_the_token_from_the_example_secret() -> None:
    secret = load(K8S / "secret.example.yaml")
    (env,) = [e for e in container()["env"] if e["name"] == "ROUTER_ADMIN_TOKEN"]
    ref = env["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]


def test_services_and_pdb_select_the_router_pods() -> None:
    deployment = load(K8S / "deployment.yaml")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    port_names = {p["name"] for p in container()["ports"]}
    services = documents(K8S / "service.yaml")
    assert {s["metadata"]["name"] for s in services} == {"traffic-router", "traffic-router-admin"}
    for service in services:
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names
    pdb = load(K8S / "pdb.yaml")
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert deployment["spec"]["replicas"] > pdb["spec"]["minAvailable"]


def test_kustomization_lists_existing_resources_but_not_the_example_secret() -> None:
    resources = load(K8S / "kustomization.yaml")["resources"]
    assert all((K8S / r).is_file() for r in resources)
    assert set(resources) == {
        "configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "redis.yaml",
    }


# ---- replicas: one rollout through Redis ---------------------------------------------------------


def test_compose_runs_two_router_replicas_on_one_redis() -> None:
    services = compose_services()
    assert services["router"]["deploy"]["replicas"] == 2
    assert "redis" in services["router"]["depends_on"]
    redis = services["redis"]
    assert redis["image"].startswith("redis:")
    assert "--requirepass" in redis["command"][-1] and "$$REDIS_PASSWORD" in redis["command"][-1]
    state = parse_config((DOCKER / "config-compose/config.yaml").read_text(), env=ENV).state
    url = urlsplit(state.url or "")
    assert (url.hostname, url.port, url.password) == ("redis", 6379, "r")


def test_k8s_replicas_share_the_redis_of_redis_yaml_with_the_secret_password() -> None:
    deployment = load(K8S / "deployment.yaml")
    assert deployment["spec"]["replicas"] == 2
    state = parse_config(embedded_config(), env=ENV).state
    assert state.store == "redis" and state.lease == 5.0
    url = urlsplit(state.url or "")
    service, statefulset = documents(K8S / "redis.yaml")
    assert service["kind"] == "Service" and statefulset["kind"] == "StatefulSet"
    assert url.hostname == service["metadata"]["name"] and url.password == "r"
    assert url.port == service["spec"]["ports"][0]["port"]
    pod = statefulset["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    secret = load(K8S / "secret.example.yaml")
    (router_env,) = [e for e in container()["env"] if e["name"] == "REDIS_PASSWORD"]
    (redis,) = pod["spec"]["containers"]
    (redis_env,) = [e for e in redis["env"] if e["name"] == "REDIS_PASSWORD"]
    for ref in (router_env["valueFrom"]["secretKeyRef"], redis_env["valueFrom"]["secretKeyRef"]):
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    assert "--requirepass" in redis["command"][-1]
