"""deploy/kubernetes/: the manifests render, validate against the Kubernetes schemas offline, and agree
with the code they run (the monitor's flags and config loader, the Dockerfile's user, the rule files)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from harness import ROOT
from incident.cli import build_parser as incident_parser
from incident.config import IncidentConfig
from monitor.cli import build_parser
from monitor.config import load_file

K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
OPERATOR = K8S / "components" / "prometheus-operator"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
KUBERNETES_VERSION = "1.30.0"  # the oldest release still supported upstream when this was written
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

sys.path.insert(0, str(ROOT / "scripts"))
import render_prometheusrule  # noqa: E402


def kustomizations() -> Iterator[Path]:
    yield from sorted(K8S.rglob("kustomization.yaml"))


def _plain_render(folder: Path) -> list[dict[str, Any]]:
    """What kustomize would emit, for the subset of it these folders use (without kubectl)."""
    k = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for entry in [*k.get("resources", []), *k.get("components", [])]:
        path = (folder / entry).resolve()
        if path.is_dir():
            docs.extend(_plain_render(path))
        else:
            docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    for gen in k.get("configMapGenerator", []):
        data = {Path(f).name: (folder / f).read_text() for f in gen.get("files", [])}
        docs.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data}
        )
    return docs


def render(folder: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` where kubectl is installed, else the plain YAML loaded as kustomize would."""
    if shutil.which("kubectl") is None:
        return _plain_render(folder)
    proc = subprocess.run(
        ["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(BASE)


def one(docs: list[dict[str, Any]], kind: str, name_prefix: str = "") -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, (kind, name_prefix, [d["metadata"]["name"] for d in found])
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


# --- rendering and schemas ------------------------------------------------------------------------


def test_every_kustomization_names_files_that_exist() -> None:
    found = list(kustomizations())
    assert {BASE / "kustomization.yaml", OPERATOR / "kustomization.yaml"} <= set(found)
    for k_path in found:
        k = yaml.safe_load(k_path.read_text())
        entries = [*k.get("resources", []), *k.get("components", [])]
        entries += [f for gen in k.get("configMapGenerator", []) for f in gen.get("files", [])]
        assert entries, k_path
        for entry in entries:
            assert (k_path.parent / entry).exists(), f"{k_path}: {entry} does not exist"


@pytest.mark.parametrize("folder", [BASE, *OVERLAYS], ids=lambda p: str(p.relative_to(K8S)))
def test_every_object_validates_against_the_kubernetes_schemas(folder: Path) -> None:
    docs = render(folder)
    core = [d for d in docs if d["kind"] not in CRD_KINDS]
    assert {d["kind"] for d in core} >= {
        "StatefulSet",
        "Deployment",
        "ConfigMap",
        "Service",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
    }
    for doc in core:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {exc.message}")


def test_a_broken_object_fails_validation() -> None:
    # The validator has teeth: a misspelt field in a container is rejected.
    statefulset = one(render(BASE), "StatefulSet")
    pod_spec(statefulset)["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


def test_the_operator_overlay_adds_exactly_the_component(base: list[dict[str, Any]]) -> None:
    overlay = render(K8S / "overlays" / "prometheus-operator")
    names = {(d["kind"], d["metadata"]["name"]) for d in overlay}
    assert names - {(d["kind"], d["metadata"]["name"]) for d in base} == {
        ("ServiceMonitor", "streamwatch-monitor"),
        ("ServiceMonitor", "streamwatch-incident-detector"),
        ("PrometheusRule", "streamwatch"),
    }


# --- the monitors' StatefulSet ---------------------------------------------------------------------


def test_monitor_replicas_match_the_shard_count(base: list[dict[str, Any]]) -> None:
    statefulset = one(base, "StatefulSet", "streamwatch-monitor")
    command = pod_spec(statefulset)["containers"][0]["command"]
    shard = command[command.index("--shard") + 1]
    assert re.fullmatch(r"auto/\d+", shard), shard
    assert statefulset["spec"]["replicas"] == int(shard.split("/")[1])
    # The shard ordinal comes from the pod's host name, which the StatefulSet gives as <name>-<ordinal>.
    assert statefulset["spec"]["serviceName"] == statefulset["metadata"]["name"]


def test_monitor_command_is_one_the_monitor_accepts(base: list[dict[str, Any]]) -> None:
    container = pod_spec(one(base, "StatefulSet", "streamwatch-monitor"))["containers"][0]
    command = container["command"]
    assert command[:2] == ["python", "monitor.py"] and (ROOT / "monitor.py").exists()
    args = build_parser().parse_args(command[2:])  # a flag it does not know is a UserError
    assert args.metric is None  # the many-series form: everything from --config
    assert args.host == "0.0.0.0"  # reachable by Prometheus from outside the pod
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.port_option == ports["metrics"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert args.model_dir.is_relative_to(mounts["state"])
    assert args.config == Path(mounts["config"]) / "monitor.toml"


def test_state_lives_on_a_volume_claim_per_replica(base: list[dict[str, Any]]) -> None:
    statefulset = one(base, "StatefulSet", "streamwatch-monitor")
    claims = [c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]]
    mounts = [m["name"] for m in pod_spec(statefulset)["containers"][0]["volumeMounts"]]
    assert "state" in claims and "state" in mounts


def _dockerfile_uid() -> int:
    m = re.search(r"useradd [^\n]*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert m is not None
    return int(m.group(1))


@pytest.mark.parametrize("kind", ["StatefulSet", "Deployment"])
def test_pods_run_unprivileged_on_a_read_only_root(base: list[dict[str, Any]], kind: str) -> None:
    spec = pod_spec(one(base, kind))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == _dockerfile_uid()
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert container["image"].startswith("streamwatch:")  # the Dockerfile's image, as in compose
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        # A read-only root needs somewhere for temporary files (Prophet's cmdstan writes there).
        assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize("kind", ["StatefulSet", "Deployment"])
def test_probes_and_scrape_annotations_point_at_the_service_port(
    base: list[dict[str, Any]], kind: str
) -> None:
    workload = one(base, kind)
    container = pod_spec(workload)["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] == "/metrics"


def test_services_select_their_pods_and_the_monitors_one_is_headless(base: list[dict[str, Any]]) -> None:
    for workload_kind, service_name in (
        ("StatefulSet", "streamwatch-monitor"),
        ("Deployment", "streamwatch-incident-detector"),
    ):
        workload = one(base, workload_kind)
        service = one(base, "Service", service_name)
        pod_labels = workload["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        ports = {p["name"] for p in pod_spec(workload)["containers"][0]["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert one(base, "Service", "streamwatch-monitor")["spec"]["clusterIP"] == "None"


def test_disruption_budget_covers_the_monitors(base: list[dict[str, Any]]) -> None:
    pdb = one(base, "PodDisruptionBudget")
    pod_labels = one(base, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_incident_detector_logs_to_its_volume(base: list[dict[str, Any]]) -> None:
    deployment = one(base, "Deployment", "streamwatch-incident-detector")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    spec = pod_spec(deployment)
    command = spec["containers"][0]["command"]
    assert command[:2] == ["python", "incident_detector.py"] and (ROOT / "incident_detector.py").exists()
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    args = incident_parser().parse_args(command[2:])  # argparse exits on a flag it does not know
    assert args.host == "0.0.0.0" and args.port == spec["containers"][0]["ports"][0]["containerPort"]
    log_path = Path(args.log)
    owner = next(name for name, path in mounts.items() if log_path.is_relative_to(path))
    one(base, "PersistentVolumeClaim", claims[owner])


# --- the monitor ConfigMap -------------------------------------------------------------------------


def test_config_map_is_monitor_toml_mounted_by_the_statefulset(base: list[dict[str, Any]]) -> None:
    config_map = one(base, "ConfigMap", "streamwatch-monitor-config")
    assert config_map["data"] == {"monitor.toml": (BASE / "monitor.toml").read_text()}
    volumes = {v["name"]: v for v in pod_spec(one(base, "StatefulSet"))["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]


def test_config_map_toml_loads_with_the_monitors_config_loader(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(one(render(BASE), "ConfigMap", "streamwatch-monitor-config")["data"]["monitor.toml"])
    cfg = load_file(path)  # the monitor's own loader: unknown keys, types, detectors and params checked
    assert cfg.prometheus_url.startswith("http://") and ".svc" in cfg.prometheus_url
    assert cfg.queries and cfg.shard is None  # each replica's shard comes from its flag, not the shared file
    # The incident detector finds the metrics the monitors export by itself (no fixed list), so nothing
    # has to repeat the query names.
    assert IncidentConfig().metrics == []


# --- the Prometheus Operator component -------------------------------------------------------------


def test_service_monitors_find_the_services(base: list[dict[str, Any]]) -> None:
    component = render(K8S / "overlays" / "prometheus-operator")
    monitors = [d for d in component if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    for sm in monitors:
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        matching = [
            s
            for s in base
            if s["kind"] == "Service"
            and sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert len(matching) == 1, sm["metadata"]["name"]
        port_names = {p["name"] for p in matching[0]["spec"]["ports"]}
        for endpoint in sm["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
            assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"


def test_prometheus_rule_holds_the_same_rules_as_prometheus_rules() -> None:
    doc = yaml.safe_load((OPERATOR / "prometheusrule.yaml").read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"} and set(doc["spec"]) == {"groups"}
    expected = []
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        expected.extend(yaml.safe_load(path.read_text())["groups"])
    assert doc["spec"]["groups"] == expected, "run scripts/render_prometheusrule.py"
    alerts = {r["alert"] for g in expected for r in g["rules"] if "alert" in r}
    assert "StreamwatchMonitorDown" in alerts
    proc = subprocess.run(
        [sys.executable, "scripts/render_prometheusrule.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout


def test_render_check_notices_a_stale_rule(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yml").write_text("groups:\n  - name: g\n    rules:\n      - record: r\n        expr: up\n")
    assert "record: r" in render_prometheusrule.render(rules)
    assert render_prometheusrule.render(rules) != render_prometheusrule.render()


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is not installed: run `make setup` (installs Debian's prometheus)")
    doc = yaml.safe_load((OPERATOR / "prometheusrule.yaml").read_text())
    extracted = tmp_path / "rules.yml"
    extracted.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}, sort_keys=False))
    proc = subprocess.run(["promtool", "check", "rules", str(extracted)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.parametrize("folder", [BASE, *OVERLAYS], ids=lambda p: str(p.relative_to(K8S)))
def test_the_plain_yaml_fallback_finds_what_kustomize_renders(folder: Path) -> None:
    # Where kubectl is missing the tests load the plain YAML: it must hold the same objects.
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: the plain loading is all there is to compare")

    def names(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
        # kustomize suffixes generated ConfigMaps with a content hash
        return {(d["kind"], re.sub(r"-[a-z0-9]{10}$", "", d["metadata"]["name"])) for d in docs}

    assert names(_plain_render(folder)) == names(render(folder))
