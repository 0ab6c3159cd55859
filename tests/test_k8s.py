"""The Kubernetes manifests (deploy/k8s): every overlay renders with `kubectl kustomize`, every object
validates against the Kubernetes schemas (core kinds) or its operator's CRD schema (custom resources),
and the rendered objects keep the platform's invariants: probes, limits, hardening, replicas, pinned
images, one database role per service, network isolation, no committed secrets in production."""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kkmp_shared.settings import DEMO_SECRETS

pytestmark = pytest.mark.unit

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
# The Kubernetes version the core objects are validated against (kubernetes-validate ships its schemas).
KUBERNETES_VERSION = "1.34"
SERVICES = {
    "registry": 8001,
    "inventory": 8002,
    "sourcing": 8003,
    "reporting": 8004,
    "notifications": 8005,
    "portal": 8000,
}
DB_SERVICES = [name for name in SERVICES if name != "portal"]
CONSUMERS = ["inventory", "sourcing", "reporting", "notifications"]
OVERLAYS = ["dev", "production", "production-keda"]
# A version tag: x.y.z, or x.y where the project versions so (PostgreSQL 17.6), never a moving tag.
PINNED_IMAGE = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+(\.\d+)?(-[a-z0-9.-]+)?$")

# Objects per kind in each overlay: a manifest lost or added by mistake shows here.
COMMON = {
    "Deployment": 6,
    "Service": 6,
    "PodDisruptionBudget": 6,
    "Job": 5,
    "Database": 5,
    "ConfigMap": 1,
    "Ingress": 1,
    "Certificate": 1,
    "ServiceMonitor": 1,
    "RabbitmqCluster": 1,
    "Cluster": 1,
}
EXPECTED_KINDS = {
    "dev": {
        **COMMON,
        "HorizontalPodAutoscaler": 6,
        "NetworkPolicy": 10,
        "Namespace": 1,
        "Issuer": 1,
        "Secret": 7,
    },
    "production": {**COMMON, "HorizontalPodAutoscaler": 6, "NetworkPolicy": 11, "Pooler": 1},
    "production-keda": {
        **COMMON,
        "HorizontalPodAutoscaler": 2,
        "NetworkPolicy": 12,
        "Pooler": 1,
        "ScaledObject": 4,
        "TriggerAuthentication": 1,
    },
}
# Custom resources and the vendored schema of each (deploy/k8s/schemas, with their sources).
CRD_SCHEMAS = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmq-rabbitmqcluster.json",
    ("postgresql.cnpg.io/v1", "Cluster"): "cnpg-cluster.json",
    ("postgresql.cnpg.io/v1", "Database"): "cnpg-database.json",
    ("postgresql.cnpg.io/v1", "Pooler"): "cnpg-pooler.json",
    ("cert-manager.io/v1", "Certificate"): "certmanager-certificate.json",
    ("cert-manager.io/v1", "Issuer"): "certmanager-issuer.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "prometheus-servicemonitor.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.json",
}


@functools.cache
def render(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is not on PATH: these tests render deploy/k8s with `kubectl kustomize` "
            "(install kubectl: https://kubernetes.io/docs/tasks/tools/)"
        )
    done = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def app_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "app"]
    return container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_expected_objects(overlay: str) -> None:
    counts = Counter(o["kind"] for o in render(overlay))
    assert dict(counts) == EXPECTED_KINDS[overlay]
    namespaces = {o["metadata"].get("namespace") for o in render(overlay) if o["kind"] != "Namespace"}
    assert namespaces == {"kkmp-dev" if overlay == "dev" else "kkmp"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_core_objects_validate_against_the_kubernetes_schemas(overlay: str) -> None:
    crd_kinds = {kind for _, kind in CRD_SCHEMAS}
    for obj in render(overlay):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in crd_kinds:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{overlay}: {name} is not a valid Kubernetes {KUBERNETES_VERSION} object: {exc.message}"
            )


def structural(schema: Any) -> Any:
    """The CRD schema as the API server applies it with strict field validation: an object with
    declared properties accepts no others (unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: structural(v) if k != "properties" else {p: structural(s) for p, s in v.items()}
        for k, v in schema.items()
    }
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft4Validator:
    path = K8S / "schemas" / CRD_SCHEMAS[(api_version, kind)]
    schema = json.loads(path.read_text())
    assert schema["x-kkmp-group-version"] == api_version and schema["x-kkmp-kind"] == kind, path
    # OpenAPI v3.0 schemas are closest to JSON Schema draft 4 (boolean exclusiveMinimum and the like).
    return jsonschema.Draft4Validator(structural(schema))


def crd_errors(obj: dict[str, Any]) -> list[str]:
    validator = crd_validator(obj["apiVersion"], obj["kind"])
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_custom_resources_validate_against_their_crd_schemas(overlay: str) -> None:
    checked = Counter()
    for obj in render(overlay):
        key = (obj["apiVersion"], obj["kind"])
        if obj["kind"] in {kind for _, kind in CRD_SCHEMAS}:
            assert key in CRD_SCHEMAS, f"{obj['kind']} has apiVersion {obj['apiVersion']}, no schema for it"
            errors = crd_errors(obj)
            assert not errors, f"{overlay}: {obj['kind']}/{obj['metadata']['name']}: {errors}"
            checked[obj["kind"]] += 1
    assert checked["RabbitmqCluster"] == 1 and checked["Cluster"] == 1 and checked["Database"] == 5


def test_crd_validation_rejects_unknown_and_mistyped_fields() -> None:
    """The CRD check can fail: a misspelt field and a wrong type are both reported."""
    cluster = copy.deepcopy(of_kind(render("production"), "Cluster")["kkmp-pg"])
    cluster["spec"]["instancez"] = 3
    cluster["spec"]["managed"]["roles"][0]["login"] = "yes"
    errors = crd_errors(cluster)
    assert any("instancez" in e for e in errors), errors
    assert any(e.startswith("spec.managed.roles.0.login") for e in errors), errors


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_has_probes_limits_hardening_disruption_budget_and_autoscaling(overlay: str) -> None:
    objects = render(overlay)
    deployments = of_kind(objects, "Deployment")
    assert set(deployments) == set(SERVICES)
    services, pdbs = of_kind(objects, "Service"), of_kind(objects, "PodDisruptionBudget")
    scalers = {
        o["spec"]["scaleTargetRef"]["name"]
        for o in objects
        if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
    }
    assert scalers == set(SERVICES)
    for name, port in SERVICES.items():
        pod = deployments[name]["spec"]["template"]["spec"]
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        app = app_container(deployments[name])
        env = {e["name"]: e.get("value") for e in app["env"]}
        assert env["SERVICE"] == name and env["PORT"] == str(port)
        assert app["ports"] == [{"name": "http", "containerPort": port}]
        assert app["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
        assert app["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(app["resources"][kind]), (name, kind)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert app["securityContext"]["readOnlyRootFilesystem"] is True
        assert app["securityContext"]["allowPrivilegeEscalation"] is False
        assert app["securityContext"]["capabilities"]["drop"] == ["ALL"]
        writable = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        mounts = {m["mountPath"]: m["name"] for m in app["volumeMounts"]}
        assert mounts["/tmp"] in writable and mounts["/var/lib/kkmp"] in writable, name
        assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }
        assert services[name]["spec"]["selector"] == {"app.kubernetes.io/name": name}
        assert services[name]["spec"]["ports"][0]["port"] == port
        assert pdbs[name]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_production_runs_at_least_two_of_everything_and_the_engines_highly_available() -> None:
    objects = render("production")
    for name, deployment in of_kind(objects, "Deployment").items():
        assert deployment["spec"]["replicas"] >= 2, name
    for name, hpa in of_kind(objects, "HorizontalPodAutoscaler").items():
        assert hpa["spec"]["minReplicas"] >= 2, name
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    for name, scaled in of_kind(render("production-keda"), "ScaledObject").items():
        assert scaled["spec"]["minReplicaCount"] >= 2, name
        queues = {t["metadata"]["queueName"] for t in scaled["spec"]["triggers"] if t["type"] == "rabbitmq"}
        assert queues and all(q.startswith(f"{name}.") for q in queues), (name, queues)
    assert set(of_kind(render("production-keda"), "ScaledObject")) == set(CONSUMERS)
    assert of_kind(objects, "RabbitmqCluster")["kkmp-rabbitmq"]["spec"]["replicas"] == 3
    cluster = of_kind(objects, "Cluster")["kkmp-pg"]["spec"]
    assert cluster["instances"] == 3 and cluster["postgresql"]["synchronous"]["number"] >= 1
    pooler = of_kind(objects, "Pooler")["kkmp-pg-pooler-rw"]["spec"]
    assert pooler["pgbouncer"]["poolMode"] == "transaction" and pooler["instances"] >= 2
    (config,) = of_kind(objects, "ConfigMap").values()
    assert config["data"]["PG_HOST"] == "kkmp-pg-pooler-rw"
    assert config["data"]["KKMP_DEMO"] == "0"
    dev = of_kind(render("dev"), "Deployment")
    assert all(d["spec"]["replicas"] == 1 for d in dev.values())
    assert of_kind(render("dev"), "RabbitmqCluster")["kkmp-rabbitmq"]["spec"]["replicas"] == 1


def pod_specs(objects: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_are_pinned_by_version(overlay: str) -> None:
    objects = render(overlay)
    images = {
        where: c["image"]
        for where, pod in pod_specs(objects).items()
        for c in pod["containers"] + pod.get("initContainers", [])
    }
    assert set(images.values()) == {"ghcr.io/kkmp/kkmp:0.1.0"}, images
    engines = [of_kind(objects, "RabbitmqCluster")["kkmp-rabbitmq"]["spec"]["image"]]
    engines.append(of_kind(objects, "Cluster")["kkmp-pg"]["spec"]["imageName"])
    for image in engines:
        assert PINNED_IMAGE.match(image) and "latest" not in image, image


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_each_service_has_its_own_database_role_and_only_its_own_credentials(overlay: str) -> None:
    objects = render(overlay)
    roles = of_kind(objects, "Cluster")["kkmp-pg"]["spec"]["managed"]["roles"]
    assert {r["name"]: r["passwordSecret"]["name"] for r in roles} == {s: f"kkmp-db-{s}" for s in DB_SERVICES}
    assert {(d["spec"]["name"], d["spec"]["owner"]) for d in of_kind(objects, "Database").values()} == {
        (s, s) for s in DB_SERVICES
    }
    for where, pod in pod_specs(objects).items():
        service = where.split("/")[1].removeprefix("migrate-")
        secrets = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for c in pod["containers"]
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        database_secrets = {s for s in secrets if s.startswith("kkmp-db-")}
        assert database_secrets == ({f"kkmp-db-{service}"} if service in DB_SERVICES else set()), where
        urls = {e["name"]: e.get("value", "") for c in pod["containers"] for e in c.get("env", [])}
        if service in DB_SERVICES:
            url = urls[f"{service.upper()}_DATABASE_URL"]
            host = "kkmp-pg-rw" if where.startswith("Job/") else "$(PG_HOST)"
            # Migrations hold a session-level advisory lock: straight to the primary, not through PgBouncer.
            assert url == f"postgresql://$(PG_USER):$(PG_PASSWORD)@{host}:5432/{service}", where


def resolved_env(objects: tuple[dict[str, Any], ...], deployment: dict[str, Any]) -> dict[str, str]:
    """The environment a service's container would get, with the dev overlay's generated Secrets and
    a connection string like the RabbitMQ operator's."""
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap").values()}
    secrets = {s["metadata"]["name"]: s.get("data", {}) for s in of_kind(objects, "Secret").values()}
    secrets["kkmp-rabbitmq-default-user"] = {
        "connection_string": "amqp://u:p@kkmp-rabbitmq.kkmp-dev.svc:5672/"
    }
    app = app_container(deployment)
    env: dict[str, str] = {}
    for source in app["envFrom"]:
        env.update(configs[source["configMapRef"]["name"]])
    for var in app["env"]:
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], var["value"])
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        value = secrets.get(ref["name"], {}).get(ref["key"])
        if value is None:
            assert ref.get("optional"), f"{var['name']}: Secret {ref['name']} key {ref['key']} is missing"
            continue
        env[var["name"]] = value if ref["name"] == "kkmp-rabbitmq-default-user" else _b64(value)
    return env


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


SETTINGS = {
    "registry": "registry.settings:RegistrySettings",
    "inventory": "inventory.settings:InventorySettings",
    "sourcing": "sourcing.settings:SourcingSettings",
    "reporting": "reporting.settings:ReportingSettings",
    "notifications": "notifications.settings:NotificationsSettings",
    "portal": "portal.settings:PortalSettings",
}


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_loads_its_settings_from_the_dev_overlays_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables the manifests set are the ones the settings read: every service starts (outside
    demo mode, so with no demo secret) and sees the broker, database and registry it is given."""
    objects = render("dev")
    env = resolved_env(objects, of_kind(objects, "Deployment")[name])
    for var in [*env, "DATABASE_URL", "KKMP_DEMO"]:
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    module, cls = SETTINGS[name].split(":")
    settings = getattr(importlib.import_module(module), cls)()
    assert settings.demo is False
    assert settings.port == SERVICES[name]
    assert str(settings.data_dir) == "/var/lib/kkmp"
    assert settings.registry_url == "http://registry:8001"
    if name == "portal":
        assert settings.inventory_url == "http://inventory:8002" and settings.cookie_secure is True
        assert len(settings.session_secret) >= 32
    else:
        assert settings.amqp_url == "amqp://u:p@kkmp-rabbitmq.kkmp-dev.svc:5672/"
        assert settings.database_url == f"postgresql+asyncpg://{name}:dev{name}@kkmp-pg-rw:5432/{name}"
    if name == "registry":
        assert settings.effective_admin_password() == "dev-only-admin-password"
    if name == "notifications":
        assert settings.portal_url == "https://kkmp.127.0.0.1.nip.io"


def test_production_commits_no_secret_and_dev_secrets_are_throwaway() -> None:
    production = render("production")
    assert not of_kind(production, "Secret"), "production Secrets are created by the operator, not committed"
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|CLIENTS|_URL$")
    for where, pod in pod_specs(production).items():
        for c in pod["containers"]:
            for var in c.get("env", []):
                if secret_like.search(var["name"]) and "value" in var:
                    # A URL may be set literally only when its credentials come from references.
                    assert "$(PG_PASSWORD)" in var["value"] or "@" not in var["value"], (where, var)
    for name, secret in of_kind(render("dev"), "Secret").items():
        for key, value in secret["data"].items():
            plain = _b64(value)
            assert key == "username" or plain.startswith("dev"), (name, key)
            assert plain not in DEMO_SECRETS, "a demo default: the services refuse it outside demo mode"


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_deny_by_default_and_open_only_the_portal_and_metrics(overlay: str) -> None:
    objects = render(overlay)
    policies = of_kind(objects, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    pods = {
        name: d["spec"]["template"]["metadata"]["labels"]
        for name, d in of_kind(objects, "Deployment").items()
    }
    # Who outside the namespace may open a connection to which KKMP service, on which port.
    from_outside: set[tuple[str, str, str]] = set()
    from_inside: set[tuple[str, str]] = set()
    for policy in policies.values():
        spec = policy["spec"]
        targets = [name for name, labels in pods.items() if selects(spec["podSelector"], labels)]
        for rule in spec.get("ingress", []):
            assert rule.get("from"), f"{policy['metadata']['name']}: an ingress rule open to everyone"
            ports = [str(p["port"]) for p in rule.get("ports", [])]
            for peer in rule["from"]:
                assert "ipBlock" not in peer, policy["metadata"]["name"]
                for target in targets:
                    assert ports, f"{policy['metadata']['name']}: every port of {target}"
                    if "namespaceSelector" in peer:
                        namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                        from_outside |= {(namespace, target, port) for port in ports}
                    else:
                        sources = [n for n, labels in pods.items() if selects(peer["podSelector"], labels)]
                        from_inside |= {(source, target) for source in sources}
    assert from_outside == {("ingress-nginx", "portal", "http")} | {
        ("monitoring", s, "http") for s in SERVICES
    }
    api_callers = {(s, t) for s, t in from_inside if t != "registry"}
    assert api_callers == {("portal", t) for t in SERVICES if t not in ("portal", "registry")}
    assert {s for s, t in from_inside if t == "registry"} == set(SERVICES)
    # Egress: the KKMP pods reach each other, the broker and PostgreSQL; only notifications the outside.
    external = [
        p
        for p in policies.values()
        for r in p["spec"].get("egress", [])
        for peer in r.get("to", [])
        if "ipBlock" in peer
    ]
    assert [p["metadata"]["name"] for p in external] == ["notifications-egress-external"]
    assert external[0]["spec"]["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "notifications"}}


@pytest.mark.parametrize("overlay", ["dev", "production"])
def test_portal_is_served_over_tls_with_a_cert_manager_certificate_and_scraped_by_prometheus(
    overlay: str,
) -> None:
    objects = render(overlay)
    ingress = of_kind(objects, "Ingress")["portal"]["spec"]
    certificate = of_kind(objects, "Certificate")["portal"]["spec"]
    (config,) = of_kind(objects, "ConfigMap").values()
    host = config["data"]["PORTAL_HOST"]
    assert [r["host"] for r in ingress["rules"]] == [host] and ingress["tls"][0]["hosts"] == [host]
    assert certificate["dnsNames"] == [host] and certificate["secretName"] == ingress["tls"][0]["secretName"]
    assert config["data"]["PORTAL_URL"] == f"https://{host}"
    backends = {p["backend"]["service"]["name"] for r in ingress["rules"] for p in r["http"]["paths"]}
    assert backends == {"portal"}
    issuer = certificate["issuerRef"]
    if overlay == "dev":
        assert issuer["kind"] == "Issuer" and issuer["name"] in of_kind(objects, "Issuer")
    else:
        assert issuer["kind"] == "ClusterIssuer"
    (monitor,) = of_kind(objects, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    scraped = [
        n
        for n, s in of_kind(objects, "Service").items()
        if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
    ]
    assert sorted(scraped) == sorted(SERVICES)
