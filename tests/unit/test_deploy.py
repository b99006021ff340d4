"""What ships besides the code, checked with the real tools: hadolint, kubectl kustomize,
promtool; and that dashboards and rules only use metrics the daemon exports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from monitor import __version__
from monitor.app.config import Settings, load_settings
from monitor.app.targets import expand
from monitor.core.snapshot import StateSummary
from monitor.output.metrics import Metrics
from monitor.output.scope import Scope
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "dli-monitor.rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dli-monitor.dashboard.json"
SETTING_VARS = {f"DLI_MONITOR_{name.upper()}" for name in Settings.model_fields}


def run(*cmd: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "info": ("_info",),
}


def exported_names() -> set[str]:
    """Every series name the daemon can export, from its own registry's metric families."""
    metrics = Metrics(__version__)

    class View:
        scope = Scope("p")
        export_queues = ["q"]
        summary = StateSummary({}, {})
        tracked_jobs = 0

    metrics.add_views(lambda: [View()])
    return {
        family.name + suffix
        for family in metrics.registry.collect()
        for suffix in SUFFIXES[family.type]
    }


def recorded_names() -> set[str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(dli_[a-z_]+|queue:[a-z0-9_:]+)\b", expr))


def dashboard_exprs() -> list[str]:
    doc = orjson.loads(DASHBOARD.read_bytes())
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


@pytest.mark.needs("hadolint")
def test_dockerfile_passes_hadolint_and_matches_the_version() -> None:
    run(require_tool("hadolint"), "Dockerfile")
    text = (ROOT / "Dockerfile").read_text()
    assert f"ARG VERSION={__version__}" in text
    assert re.search(r"^ARG PYTHON_IMAGE=\S+@sha256:[0-9a-f]{64}$", text, re.MULTILINE), (
        "pinned by digest"
    )
    assert "--require-hashes" in text and "requirements.lock" in text
    assert 'ENTRYPOINT ["dli-monitor"]' in text and 'CMD ["run"]' in text
    assert re.search(r"^USER \d+", text, re.MULTILINE), "runs as a numeric non-root user"


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    """requirements.lock (what the image installs) covers pyproject.toml's dependencies, each at
    one exact version with hashes, and what those need in turn."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "requirements.lock").read_text()
    pins = dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$", lock, re.MULTILINE))
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock: regenerate it (see its header)"
    entries = re.split(r"\n(?=[a-z0-9])", lock.split("\n\n", 1)[-1].strip())
    unhashed = [e.split()[0] for e in entries if "==" in e and "--hash=sha256:" not in e]
    assert not unhashed, unhashed


KUBERNETES = DEPLOY / "kubernetes"
IMAGE = f"ghcr.io/dli-monitor/dli-monitor:{__version__}"


def kustomize(path: Path) -> list[dict[str, Any]]:
    rendered = run(require_tool("kubectl"), "kustomize", str(path))
    return [d for d in yaml.safe_load_all(rendered) if d]


def monitor_container(workload: dict[str, Any]) -> dict[str, Any]:
    pod = workload["spec"]["template"]["spec"]
    return next(c for c in pod["containers"] if c["name"] == "dli-monitor")


def assert_hardened_and_probing_the_process(container: dict[str, Any]) -> None:
    assert container["image"] == IMAGE, "the image is named in components/image, nowhere else"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    probes = [container.get(p, {}) for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    paths = {p["httpGet"]["path"] for p in probes if p}
    assert "/readyz" not in paths, "/readyz waits for DLI: no probe may depend on the API"
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"]["memory"]
    assert all(not e["name"].endswith(("_SK", "_TOKEN")) for e in container.get("env", []))
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/var/run/secrets/dli-monitor"]["readOnly"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    if "DLI_MONITOR_SECRETS_DIR" in env:  # else each target names its own directory
        assert env["DLI_MONITOR_SECRETS_DIR"] in mounts
    assert Path(env["DLI_MONITOR_STATE_FILE"]).parent.as_posix() in mounts


def assert_config(docs: list[dict[str, Any]]) -> dict[str, str]:
    kinds = [d["kind"] for d in docs]
    assert "Secret" not in kinds, "credentials are never shipped inline"
    config: dict[str, str] = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert set(config) <= SETTING_VARS, set(config) - SETTING_VARS
    assert not any(k.endswith(("_SK", "_TOKEN", "_AK")) for k in config)
    return config


@pytest.mark.needs("kubectl")
@pytest.mark.parametrize("path", ["base", "overlays/multi-queue", "overlays/plain-prometheus"])
def test_standalone_is_one_replica_that_never_overlaps(path: str) -> None:
    docs = kustomize(KUBERNETES / path)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = monitor_container(deployment)
    assert_hardened_and_probing_the_process(container)
    assert container["readinessProbe"]["httpGet"]["path"] == "/", "ready: the server answers"
    pod = deployment["spec"]["template"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    config = assert_config(docs)
    monitors = [d for d in docs if d["kind"] in {"ServiceMonitor", "PodMonitor"}]
    annotated = [d for d in docs if "prometheus.io/scrape" in str(d["metadata"])]
    annotated += [d for d in docs if "prometheus.io/scrape" in str(pod["metadata"])]
    assert not (monitors and annotated), "a monitor object and annotations: two scrapes"
    if path == "overlays/plain-prometheus":
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == "10071"
    if path == "overlays/multi-queue":
        assert config["DLI_MONITOR_QUEUES"].count(",") >= 2
        service = next(d for d in docs if d["kind"] == "Service")
        monitor = next(d for d in monitors if d["kind"] == "ServiceMonitor")
        assert monitor["metadata"]["labels"]["release"], "the label kube-prometheus-stack selects"
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items()
        )
        ports = {p["name"] for p in service["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports


@pytest.mark.needs("kubectl")
def test_sidecar_component_on_the_sample_workload() -> None:
    docs = kustomize(KUBERNETES / "examples" / "sidecar")
    host = next(d for d in docs if d["kind"] == "Deployment")
    containers = host["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["submitter", "dli-monitor"], "the host's first"
    sidecar = monitor_container(host)
    assert_hardened_and_probing_the_process(sidecar)
    assert "readinessProbe" not in sidecar, "the host's readiness is not ours to decide"
    config = assert_config(docs)
    assert {"DLI_MONITOR_PROJECT_ID", "DLI_MONITOR_QUEUES"} <= set(config)
    assert sidecar["envFrom"][0]["configMapRef"]["name"].startswith("dli-monitor-config-")
    assert host["spec"]["replicas"] == 1
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    labels = host["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for p in sidecar["ports"]}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
    assert any(d["kind"] == "PrometheusRule" for d in docs)


@pytest.mark.needs("kubectl")
def test_sidecar_component_joins_a_statefulset_without_touching_its_own_volumes(
    tmp_path: Path,
) -> None:
    host = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "submitter", "annotations": {"dli-monitor.io/sidecar": "true"}},
        "spec": {
            "serviceName": "submitter",
            "selector": {"matchLabels": {"app": "submitter"}},
            "template": {
                "metadata": {"labels": {"app": "submitter"}},
                "spec": {
                    "containers": [{"name": "app", "image": "app:1"}],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    bystander = {**host, "metadata": {"name": "other"}}
    (tmp_path / "host.yaml").write_text(yaml.safe_dump_all([host, bystander]))
    components = os.path.relpath(KUBERNETES / "components", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": ["host.yaml"],
                "components": [f"{components}/sidecar", f"{components}/image"],
                "configMapGenerator": [
                    {"name": "dli-monitor-config", "literals": ["DLI_MONITOR_PROJECT_ID=p1"]}
                ],
            }
        )
    )
    docs = {d["metadata"]["name"]: d for d in kustomize(tmp_path)}
    pod = docs["submitter"]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["app", "dli-monitor"]
    assert {v["name"] for v in pod["volumes"]} == {
        "data",
        "dli-monitor-credentials",
        "dli-monitor-state",
    }
    other = docs["other"]["spec"]["template"]["spec"]
    assert [c["name"] for c in other["containers"]] == ["app"], "only annotated workloads"


def test_the_image_is_named_in_one_place() -> None:
    def names_the_image(path: Path) -> bool:
        lines = [ln for ln in path.read_text().splitlines() if not ln.lstrip().startswith("#")]
        return any("newTag" in ln or "ghcr.io/" in ln for ln in lines)

    named = [p.relative_to(KUBERNETES).as_posix() for p in KUBERNETES.rglob("*.yaml")]
    named = [p for p in named if names_the_image(KUBERNETES / p)]
    assert named == ["components/image/kustomization.yaml"], named
    component = (KUBERNETES / "components/image/kustomization.yaml").read_text()
    assert f"newTag: {__version__}" in component


def test_prometheus_rule_is_generated_from_the_rules_file() -> None:
    run(sys.executable, str(DEPLOY / "prometheus" / "sync.py"), "--check")
    rule = yaml.safe_load(
        (KUBERNETES / "components/prometheus-rule/prometheusrule.yaml").read_text()
    )
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


@pytest.mark.needs("promtool")
def test_rules_pass_promtool_check_and_unit_tests() -> None:
    promtool = require_tool("promtool")
    run(promtool, "check", "rules", str(RULES))
    run(promtool, "test", "rules", "dli-monitor.rules.test.yml", cwd=DEPLOY / "prometheus")


def test_every_alert_is_documented_and_tested_both_ways() -> None:
    doc = yaml.safe_load(RULES.read_text())
    alerts = [r for g in doc["groups"] for r in g["rules"] if "alert" in r]
    runbook = (DEPLOY / "prometheus" / "RUNBOOK.md").read_text()
    tests = yaml.safe_load((DEPLOY / "prometheus" / "dli-monitor.rules.test.yml").read_text())
    cases = [c for t in tests["tests"] for c in t.get("alert_rule_test", [])]
    for alert in alerts:
        name = alert["alert"]
        assert {"summary", "description", "runbook_url"} <= alert["annotations"].keys(), name
        assert alert["annotations"]["runbook_url"].endswith(f"#{name.lower()}")
        assert f"## {name}\n" in runbook, name
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name} has no firing test"
        assert any(not c["exp_alerts"] for c in mine), f"{name} has no not-firing test"


@pytest.mark.needs("promtool")
def test_dashboard_and_rules_use_only_exported_metrics_and_parse(tmp_path: Path) -> None:
    known = exported_names() | recorded_names()
    rules = yaml.safe_load(RULES.read_text())
    exprs = dashboard_exprs() + [r["expr"] for g in rules["groups"] for r in g["rules"]]
    for expr in exprs:
        unknown = metric_names(expr) - known
        assert not unknown, f"{expr!r} uses {unknown}"
    # promtool parses PromQL in rule files: wrap every dashboard query as a recording rule.
    substituted = [
        e.replace("$__rate_interval", "5m")
        .replace('"$queue"', '".*"')
        .replace('"$project"', '".*"')
        for e in dashboard_exprs()
    ]
    wrapped: dict[str, Any] = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(substituted)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(wrapped))
    run(require_tool("promtool"), "check", "rules", str(path))


def test_every_query_keeps_projects_apart() -> None:
    """Queues of two projects may share a name: no grouping by queue without the project, and
    every dashboard query is filtered by the project variable."""
    rules = yaml.safe_load(RULES.read_text())
    exprs = dashboard_exprs() + [r["expr"] for g in rules["groups"] for r in g["rules"]]
    for expr in exprs:
        for grouping in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr):
            labels = {label.strip() for label in grouping.split(",")}
            assert "queue" not in labels or "project_id" in labels, expr
    for expr in dashboard_exprs():
        assert 'project_id=~"$project"' in expr, expr


def test_dashboard_covers_what_platform_teams_look_at() -> None:
    doc = orjson.loads(DASHBOARD.read_bytes())
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    for name in (
        "dli_batch_jobs",
        "dli_batch_job_transitions_total",
        "dli_batch_job_duration_seconds_bucket",
        "dli_batch_job_state_duration_seconds_bucket",
        "dli_batch_job_oldest_age_seconds",
        "dli_monitor_up",
    ):
        assert name in used, name
    assert {v["name"] for v in doc["templating"]["list"]} == {"datasource", "project", "queue"}
    exemplars = [t["expr"] for p in doc["panels"] for t in p["targets"] if t.get("exemplar")]
    for histogram in ("dli_batch_job_duration_seconds", "dli_batch_job_state_duration_seconds"):
        assert any(histogram in e for e in exemplars), f"{histogram}: job ids as exemplars"
    provisioning = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dli-monitor.yml").read_text()
    )
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_compose_file_wires_simulator_monitor_prometheus_grafana() -> None:
    compose_dir = DEPLOY / "compose"
    doc = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"simulator", "monitor", "prometheus", "grafana"}
    assert set(services["monitor"]["environment"]) <= SETTING_VARS
    assert services["monitor"]["environment"]["DLI_MONITOR_ENDPOINT"] == "http://simulator:8080"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (compose_dir / source).exists(), source
    scrape = yaml.safe_load((compose_dir / "prometheus.yml").read_text())
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["monitor:10071"]


@pytest.mark.needs("kubectl")
def test_sharded_overlay_is_a_statefulset_whose_shards_match_its_replicas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = kustomize(KUBERNETES / "overlays" / "sharded")
    statefulset = next(d for d in docs if d["kind"] == "StatefulSet")
    container = monitor_container(statefulset)
    assert_hardened_and_probing_the_process(container)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DLI_MONITOR_SHARD"] == "auto"
    assert int(env["DLI_MONITOR_TOTAL_SHARDS"]) == statefulset["spec"]["replicas"] > 1
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The shipped targets file is read by the daemon's own loader, and each target's secrets
    # directory is one the pod mounts.
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["targets.toml"]
    path = tmp_path / "targets.toml"
    path.write_text(config)
    monkeypatch.setenv("DLI_MONITOR_SHARD", "1")
    monkeypatch.setenv("DLI_MONITOR_TOTAL_SHARDS", env["DLI_MONITOR_TOTAL_SHARDS"])
    targets = expand(load_settings(path))
    volume = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if "secret" in v)
    mounted = {Path(item["path"]).parent.as_posix() for item in volume["secret"]["items"]}
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert {str(t.secrets_dir) for t in targets} == {f"{mount['mountPath']}/{d}" for d in mounted}
    assert len({t.state_file for t in targets}) == len(targets), "a state file per target"
