"""The deployment files keep every MQTT consumer's persistent session, and so the readings queued in it.

A consumer's broker session belongs to its client id, which defaults to the service's name and the host name.
Pods of a Deployment get a new random name on every rollout, and containers compose recreates a new host name,
so with the default every rollout would abandon the sessions and the readings queued in them. In the Kubernetes
base each MQTT consumer therefore runs its ingest in one StatefulSet (stable pod names) and nowhere else; with a
plain subscription (no share group) every subscriber receives every message, so that StatefulSet has one replica
and no autoscaler. Compose pins the client id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mirante.service import ServiceSpec, discover_services

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
MQTT_CONSUMERS = [spec for spec in discover_services() if spec.uses_mqtt]
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


@dataclass(frozen=True)
class Workload:
    kind: str
    name: str
    file: Path
    manifest: dict[str, Any]
    comment: str
    """The comment lines just above the document in its file: where the manifest says why it is shaped so."""

    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.manifest["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1, self.name
        return containers[0]

    def serves(self, spec: ServiceSpec) -> bool:
        return self.container().get("command", [])[:3] == ["mirante", "serve", spec.name]

    def env(self) -> dict[str, Any]:
        return {item["name"]: item.get("value", item.get("valueFrom")) for item in self.container().get("env", [])}


def _documents(path: Path) -> list[tuple[dict[str, Any], str]]:
    """Each YAML document of `path` with the comment lines that open it."""
    found = []
    for chunk in path.read_text().split("\n---\n"):
        manifest = yaml.safe_load(chunk)
        if manifest:
            comment = "\n".join(line for line in chunk.splitlines() if line.startswith("#"))
            found.append((manifest, comment))
    return found


def _base() -> list[tuple[dict[str, Any], str, Path]]:
    resources = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [(manifest, comment, K8S / name) for name in resources for manifest, comment in _documents(K8S / name)]


def _workloads() -> list[Workload]:
    return [
        Workload(manifest["kind"], manifest["metadata"]["name"], path, manifest, comment)
        for manifest, comment, path in _base()
        if manifest["kind"] in WORKLOAD_KINDS
    ]


def _config() -> dict[str, str]:
    maps = [manifest["data"] for manifest, _, _ in _base() if manifest["kind"] == "ConfigMap"]
    return {name: value for data in maps for name, value in data.items()}


def _ingest_on(workload: Workload, spec: ServiceSpec) -> bool:
    setting = f"{spec.env_prefix}MQTT_INGEST_ENABLED"
    value = workload.env().get(setting, _config().get(setting, "true"))
    return str(value).lower() not in ("false", "0", "no", "off")


def test_every_mqtt_consumer_can_switch_its_ingest_off() -> None:
    assert {spec.name for spec in MQTT_CONSUMERS} == {"telemetry-ingest", "rtls-cambus"}
    for spec in MQTT_CONSUMERS:
        fields = type(spec.settings_factory()).model_fields
        assert {"mqtt_ingest_enabled", "mqtt_client_id", "mqtt_share_group"} <= set(fields), spec.name


@pytest.mark.parametrize("spec", MQTT_CONSUMERS, ids=[spec.name for spec in MQTT_CONSUMERS])
def test_the_mqtt_ingest_runs_in_one_statefulset_of_one_replica_and_says_why(spec: ServiceSpec) -> None:
    serving = [workload for workload in _workloads() if workload.serves(spec)]
    ingesting = [workload for workload in serving if _ingest_on(workload, spec)]

    assert serving, f"no workload of the base runs {spec.name}"
    assert [workload.kind for workload in ingesting] == ["StatefulSet"], (
        f"{spec.name}: the MQTT ingest must run in exactly one StatefulSet, and be off "
        f"({spec.env_prefix}MQTT_INGEST_ENABLED=false) in every Deployment: {[w.name for w in ingesting]}"
    )
    statefulset = ingesting[0]
    # A plain subscription hands every message to every subscriber: a second replica would store it twice.
    assert f"{spec.env_prefix}MQTT_SHARE_GROUP" not in statefulset.env() | _config()
    assert statefulset.manifest["spec"]["replicas"] == 1
    comment = statefulset.comment.lower()
    assert "statefulset" in comment and "session" in comment and "client id" in comment, statefulset.comment


def test_no_autoscaler_resizes_an_mqtt_ingest_and_every_target_exists() -> None:
    workloads = {(workload.kind, workload.name): workload for workload in _workloads()}
    for manifest, _, path in _base():
        if manifest["kind"] != "HorizontalPodAutoscaler":
            continue
        target = manifest["spec"]["scaleTargetRef"]
        workload = workloads.get((target["kind"], target["name"]))
        assert workload is not None, f"{path.name}: the autoscaler {manifest['metadata']['name']} targets nothing"
        for spec in MQTT_CONSUMERS:
            assert not (workload.serves(spec) and _ingest_on(workload, spec)), (
                f"{path.name}: {manifest['metadata']['name']} resizes a workload running the MQTT ingest"
            )


@pytest.mark.parametrize("spec", MQTT_CONSUMERS, ids=[spec.name for spec in MQTT_CONSUMERS])
def test_compose_pins_the_client_id_and_subscribes_plainly(spec: ServiceSpec) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["services"][spec.name]["environment"]

    assert environment.get(f"{spec.env_prefix}MQTT_CLIENT_ID"), f"{spec.name}: pin its MQTT client id"
    assert f"{spec.env_prefix}MQTT_SHARE_GROUP" not in environment
    assert compose["services"][spec.name].get("deploy", {}).get("replicas", 1) == 1
