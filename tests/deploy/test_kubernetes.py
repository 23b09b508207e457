"""The kustomize manifests render with a real kustomize and validate offline against the schemas."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from streaming.cli import build_parser
from streaming.server.serve_cli import serve_config
from streaming.server.server_metrics import ServerMetrics

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
GPU = KUBERNETES / "overlays" / "gpu"
# Native gRPC probes are GA since 1.27: the oldest release the manifests support, and the newest
# whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.27.0", "latest")
PRE_STOP_S = 5
SERVICE_MONITOR_SCHEMA = Path(__file__).with_name("schemas") / "servicemonitor-monitoring-v1.json"
POD_LABELS = {"app.kubernetes.io/name": "stream-classify"}
MIB = 2**20
# What the budget cannot count: SECURITY.md, Memory ("a fixed margin of 256 MiB"), the bound
# tests/streaming/server/adversarial/ checks.
MEMORY_MARGIN = 256 * MIB
QUANTITY = re.compile(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?")
QUANTITY_UNITS = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def kustomize_command() -> list[str]:
    """``kubectl kustomize`` (kustomize is built into kubectl), else a standalone ``kustomize build``."""
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.skip("neither kubectl nor kustomize is on PATH")


def render(folder: Path) -> list[dict[str, Any]]:
    result = subprocess.run(
        [*kustomize_command(), str(folder)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=[BASE, GPU], ids=["base", "gpu"])
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(request.param)


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment")
    (server,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(server)


def serve_args(objects: list[dict[str, Any]]) -> argparse.Namespace:
    return build_parser().parse_args(container(objects)["args"])


def closed_schema(schema: Any) -> Any:
    """The same JSON schema with unknown properties forbidden at every level (a typo must fail)."""
    if isinstance(schema, dict):
        closed = {key: closed_schema(value) for key, value in schema.items()}
        if "properties" in closed:
            closed.setdefault("additionalProperties", False)
        return closed
    if isinstance(schema, list):
        return [closed_schema(value) for value in schema]
    return schema


def validate_service_monitor(document: dict[str, Any]) -> None:
    """Against the ServiceMonitor CRD's schema, vendored (see its ``$comment`` for the source)."""
    import jsonschema

    schema = json.loads(SERVICE_MONITOR_SCHEMA.read_text())
    jsonschema.validate(document, closed_schema(schema))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_validates_against_the_schemas(
    rendered: list[dict[str, Any]], version: str
) -> None:
    import kubernetes_validate

    target = kubernetes_validate.latest_version() if version == "latest" else version
    kinds = set()
    for document in rendered:
        kinds.add(document["kind"])
        if document["apiVersion"] == "monitoring.coreos.com/v1":
            validate_service_monitor(document)
        else:
            kubernetes_validate.validate(document, target, strict=True)
    assert kinds == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    }


def test_a_typo_fails_validation(rendered: list[dict[str, Any]]) -> None:
    import jsonschema
    import kubernetes_validate

    deployment = one(rendered, "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)
    monitor = one(rendered, "ServiceMonitor")
    endpoint = {**monitor["spec"]["endpoints"][0], "intervall": "15s"}
    with pytest.raises(jsonschema.ValidationError):
        validate_service_monitor({**monitor, "spec": {**monitor["spec"], "endpoints": [endpoint]}})


def test_container_args_are_valid_serve_flags(rendered: list[dict[str, Any]]) -> None:
    args = serve_args(rendered)
    assert args.command == "serve"
    config = serve_config(args)  # raises ConfigError on a bad value
    ports = {p["name"]: p["containerPort"] for p in container(rendered)["ports"]}
    assert config.address.rsplit(":", 1)[1] == str(ports["grpc"])
    assert config.metrics_host_port is not None
    assert config.metrics_host_port[1] == ports["metrics"]


def test_the_model_directory_is_a_mounted_volume(rendered: list[dict[str, Any]]) -> None:
    model_dir = serve_config(serve_args(rendered)).model.model_dir
    assert model_dir is not None
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m for m in container(rendered)["volumeMounts"]}
    mount = mounts[str(model_dir)]
    assert mount.get("readOnly") is True  # the server only reads it
    assert mount["name"] in {volume["name"] for volume in pod["volumes"]}
    (seed,) = pod["initContainers"]
    assert {m["name"]: m["mountPath"] for m in seed["volumeMounts"]} == {
        mount["name"]: str(model_dir)
    }
    assert seed["image"] == container(rendered)["image"]


def test_grpc_probes_and_graceful_drain(rendered: list[dict[str, Any]]) -> None:
    server = container(rendered)
    grpc_port = {p["name"]: p["containerPort"] for p in server["ports"]}["grpc"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"]["port"] == grpc_port, probe
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    grace = serve_config(serve_args(rendered)).grace_s
    # SIGTERM comes after preStop; the drain must end before the kubelet's SIGKILL.
    assert pod["terminationGracePeriodSeconds"] > PRE_STOP_S + grace
    assert server["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(PRE_STOP_S)]


def test_runs_as_the_images_non_root_user(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    dockerfile = (REPO / "Dockerfile").read_text()
    assert f"USER {pod['securityContext']['runAsUser']}:" in dockerfile
    resources = container(rendered)["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"memory"} <= set(
        resources["limits"]
    )


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (``2560Mi``, ``2G``, ``1073741824``) in bytes."""
    match = QUANTITY.fullmatch(quantity)
    assert match, f"not a memory quantity this test reads: {quantity!r}"
    return int(match.group(1)) * QUANTITY_UNITS[match.group(2)]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [("2560Mi", 2560 * MIB), ("2Gi", 2 * 2**30), ("2G", 2 * 10**9), ("1048576", MIB)],
)
def test_memory_quantities_are_read_in_bytes(quantity: str, expected: int) -> None:
    assert quantity_bytes(quantity) == expected


def model_footprint() -> int:
    """The embedded model's server after warm-up, before any stream, as BENCHMARKS.md measured it.

    Row 9's notes start from it ("server RSS 847 → peak 1,154 MiB"): the largest of those. A GPU
    image's is larger, so on the GPU overlay this is a lower bound.
    """
    text = (REPO / "BENCHMARKS.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 9. Beside attack")]
    baselines = [
        int(m.replace(",", "")) for r in rows for m in re.findall(r"server RSS ([\d,]+) →", r)
    ]
    assert baselines, "BENCHMARKS.md row 9 no longer reports the server's RSS before the attack"
    return max(baselines) * MIB


def test_memory_limit_holds_footprint_budget_and_margin(rendered: list[dict[str, Any]]) -> None:
    # The budget is passed explicitly, so a change of the flag's default cannot undersize the pod.
    assert "--memory-budget" in container(rendered)["args"]
    budget = serve_config(serve_args(rendered)).memory_budget_bytes
    resources = container(rendered)["resources"]
    limit = quantity_bytes(resources["limits"]["memory"])
    # Peak RSS stays under footprint + budget + margin: a smaller limit is an OOM kill at a load
    # the budget admits.
    needed = model_footprint() + budget + MEMORY_MARGIN
    assert limit >= needed, f"limit {limit / MIB:.0f} MiB < {needed / MIB:.0f} MiB"
    assert quantity_bytes(resources["requests"]["memory"]) <= limit


def test_docs_state_the_base_memory_limit_and_budget() -> None:
    resources = container(render(BASE))["resources"]
    operations = (REPO / "docs" / "operations.md").read_text()
    limit = quantity_bytes(resources["limits"]["memory"]) / 2**30
    assert f"{limit:g} GiB memory limit" in operations
    budget = serve_config(serve_args(render(BASE))).memory_budget_bytes
    assert f"--memory-budget {budget // 2**30}G" in operations
    assert f"a fixed margin of {MEMORY_MARGIN // MIB} MiB" in (REPO / "SECURITY.md").read_text()


def test_services_pdb_and_monitor_select_the_pods(rendered: list[dict[str, Any]]) -> None:
    def selects(selector: dict[str, str]) -> bool:
        return all(POD_LABELS.get(k) == v for k, v in selector.items()) and bool(selector)

    pod_labels = one(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert POD_LABELS.items() <= pod_labels.items()
    headless = one(rendered, "Service", "stream-classify-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert selects(headless["spec"]["selector"])
    service = one(rendered, "Service", "stream-classify")
    assert selects(service["spec"]["selector"])
    assert selects(one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])
    # The ServiceMonitor selects exactly the Service that has the metrics port.
    monitor = one(rendered, "ServiceMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    services = [o for o in rendered if o["kind"] == "Service"]
    matching = [s for s in services if wanted.items() <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in matching] == ["stream-classify"]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names


def test_autoscaler_metrics_come_from_adapter_rules_over_exported_metrics(
    rendered: list[dict[str, Any]],
) -> None:
    hpa = one(rendered, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == one(rendered, "Deployment")["metadata"]["name"]
    exported = {s.name for f in ServerMetrics().registry.collect() for s in f.samples}
    rules = yaml.safe_load((KUBERNETES / "prometheus-adapter-rules.yaml").read_text())["rules"]
    served = {rule["name"]["as"] for rule in rules}
    wanted = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"]}
    assert wanted and wanted <= served
    for rule in rules:
        assert rule["seriesQuery"].split("{")[0] in exported
        assert re.fullmatch(rule["name"]["matches"].strip("^$"), rule["seriesQuery"].split("{")[0])


def test_gpu_overlay_asks_for_a_gpu_and_the_gpu_image() -> None:
    objects = render(GPU)
    server = container(objects)
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert server["image"].endswith(":gpu")
    assert serve_args(objects).device == "gpu"
    base_server = container(render(BASE))
    assert "nvidia.com/gpu" not in base_server["resources"]["limits"]
    assert base_server["image"].endswith(":cpu")


def test_adapter_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    rules = yaml.safe_load((KUBERNETES / "prometheus-adapter-rules.yaml").read_text())["rules"]
    recording = []
    for i, rule in enumerate(rules):
        # What the adapter substitutes for one pod of one namespace.
        expr = (
            rule["metricsQuery"]
            .replace("<<.Series>>", rule["seriesQuery"].split("{")[0])
            .replace("<<.LabelMatchers>>", 'namespace="ns",pod="pod-1"')
            .replace("<<.GroupBy>>", "pod")
        )
        recording.append({"record": f"adapter:rule_{i}", "expr": expr})
    path = tmp_path / "adapter-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "adapter", "rules": recording}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
