"""The Kubernetes manifests (deploy/k8s): every overlay renders with `kubectl kustomize`, every object
validates against the Kubernetes schemas (core kinds) or its operator's CRD schema (custom resources),
and the rendered objects keep the platform's invariants: probes, limits, hardening, replicas, pinned
images, one database role per service, migrations before the app (init containers running the real
CLI), the registry's signing key, the connection budget (through PgBouncer in production), network
isolation, /metrics refused at the Ingress, no committed secrets in production."""

from __future__ import annotations

import base64
import copy
import functools
import importlib
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml
from kkmp_cli.main import app as kkmp_cli
from kkmp_cli.migrate import migrated_services
from kkmp_shared.settings import DEMO_SECRETS, ServiceSettings
from registry.adapters.keys import SigningKey, starting_key
from registry.settings import RegistrySettings

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
    "Database": 5,
    "ConfigMap": 1,
    "Ingress": 2,
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
        "Secret": 8,
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
        service = where.split("/")[1]
        for container in pod["containers"] + pod.get("initContainers", []):
            secrets = {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
            database_secrets = {s for s in secrets if s.startswith("kkmp-db-")}
            assert database_secrets == ({f"kkmp-db-{service}"} if service in DB_SERVICES else set()), where
            if service in DB_SERVICES:
                url = {e["name"]: e.get("value", "") for e in container["env"]}[
                    f"{service.upper()}_DATABASE_URL"
                ]
                # The app goes where PG_HOST says (the pooler in production); its migrations to the primary.
                host = "kkmp-pg-rw" if container["name"] == "migrate" else "$(PG_HOST)"
                assert url == f"postgresql://$(PG_USER):$(PG_PASSWORD)@{host}:5432/{service}", where


def resolved_env(objects: tuple[dict[str, Any], ...], container: dict[str, Any]) -> dict[str, str]:
    """The environment a container would get, with the rendered Secrets (the dev overlay's) and a
    connection string like the RabbitMQ operator's. A Secret that is not rendered (production: the
    operator makes them, README) gives `operator-<secret>-<key>` for each key asked for."""
    configs = {c["metadata"]["name"]: c["data"] for c in of_kind(objects, "ConfigMap").values()}
    secrets = {s["metadata"]["name"]: s.get("data", {}) for s in of_kind(objects, "Secret").values()}
    secrets["kkmp-rabbitmq-default-user"] = {
        "connection_string": "amqp://u:p@kkmp-rabbitmq.kkmp-dev.svc:5672/"
    }
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configs[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), var["value"])
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        if ref["name"] not in secrets:
            if not ref.get("optional"):
                env[var["name"]] = f"operator-{ref['name']}-{ref['key']}"
            continue
        value = secrets[ref["name"]].get(ref["key"])
        if value is None:
            assert ref.get("optional"), f"{var['name']}: Secret {ref['name']} key {ref['key']} is missing"
            continue
        env[var["name"]] = value if ref["name"] == "kkmp-rabbitmq-default-user" else _b64(value)
    return env


def mounted_secret(deployment: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """(Secret, key) whose file a container sees at `path`: a secret volume mounted at its directory."""
    directory, _, filename = path.rpartition("/")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    for mount in container.get("volumeMounts", []):
        if mount["mountPath"].rstrip("/") == directory and "secret" in volumes[mount["name"]]:
            secret = volumes[mount["name"]]["secret"]
            items = {item["path"]: item["key"] for item in secret.get("items", [])} or {filename: filename}
            assert filename in items, f"{path}: the volume {mount['name']} has no such file"
            return secret["secretName"], items[filename]
    raise AssertionError(f"no secret volume is mounted at {directory} in {container['name']}")


def use_environment(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The process environment becomes exactly `env`, as in the container."""
    for var in list(os.environ):
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)


def _b64(value: str) -> str:
    return base64.b64decode(value).decode()


DEV_SIGNING_KEY = K8S / "overlays" / "dev" / "dev-only-signing-key.pem"
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
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The variables the manifests set are the ones the settings read: every service starts (outside
    demo mode, so with no demo secret) and sees the broker, database and registry it is given."""
    objects = render("dev")
    deployment = of_kind(objects, "Deployment")[name]
    use_environment(monkeypatch, resolved_env(objects, app_container(deployment)))
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
        # The init container has migrated: the app only checks the schema is at head.
        assert settings.migrate_on_start is False
        assert (settings.database_pooler, settings.database_pool_size, settings.database_max_overflow) == (
            "none",
            5,
            5,
        )
    if name == "registry":
        assert settings.effective_admin_password() == "dev-only-admin-password"
        # The key it starts with: the file of the Secret mounted where SIGNING_KEY_FILE points.
        secret, key = mounted_secret(deployment, app_container(deployment), str(settings.key_path))
        pem = _b64(of_kind(objects, "Secret")[secret]["data"][key])
        (tmp_path / "signing-key.pem").write_text(pem)
        started = starting_key(
            pem=settings.signing_key,
            path=None if settings.signing_key_path is None else tmp_path / "signing-key.pem",
            demo=settings.demo,
            data_dir=tmp_path / "data",
        )
        assert started.kid == SigningKey.from_pem(DEV_SIGNING_KEY.read_bytes()).kid
    if name == "notifications":
        assert settings.portal_url == "https://kkmp.127.0.0.1.nip.io"


def test_production_commits_no_secret_and_dev_secrets_are_throwaway() -> None:
    production = render("production")
    assert not of_kind(production, "Secret"), "production Secrets are created by the operator, not committed"
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|CLIENTS|_URL$")
    for where, pod in pod_specs(production).items():
        for c in pod["containers"] + pod.get("initContainers", []):
            for var in c.get("env", []):
                if secret_like.search(var["name"]) and "value" in var:
                    # A URL may be set literally only when its credentials come from references.
                    assert "$(PG_PASSWORD)" in var["value"] or "@" not in var["value"], (where, var)
    for name, secret in of_kind(render("dev"), "Secret").items():
        for key, value in secret["data"].items():
            plain = _b64(value)
            if name == "kkmp-registry-signing-key":
                # The dev-only key committed beside the overlay, named so wherever it is seen.
                assert (key, plain) == ("signing-key.pem", DEV_SIGNING_KEY.read_text())
                continue
            assert key == "username" or plain.startswith("dev"), (name, key)
            assert plain not in DEMO_SECRETS, "a demo default: the services refuse it outside demo mode"


# --- the registry's signing key -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_registry_replica_starts_with_the_key_of_the_secret_kkmp_registry_signing_key(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside demo mode (every overlay) the registry refuses to start without a signing key: its
    settings, read from the rendered environment, name a file that the Secret provides."""
    objects = render(overlay)
    registry = of_kind(objects, "Deployment")["registry"]
    app = app_container(registry)
    use_environment(monkeypatch, resolved_env(objects, app))
    settings = RegistrySettings()
    assert settings.demo is False and settings.signing_key is None
    assert settings.signing_key_path is not None, "SIGNING_KEY_FILE is not set: the registry would not start"
    assert mounted_secret(registry, app, str(settings.signing_key_path)) == (
        "kkmp-registry-signing-key",
        "signing-key.pem",
    )
    # Only the registry holds it.
    for name, deployment in of_kind(objects, "Deployment").items():
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        holds = any(v.get("secret", {}).get("secretName") == "kkmp-registry-signing-key" for v in volumes)
        assert holds == (name == "registry"), name
    # Made by the operator in production, generated from the committed dev-only key in dev.
    assert ("kkmp-registry-signing-key" in of_kind(objects, "Secret")) == (overlay == "dev")


def test_without_signing_key_file_the_rendered_registry_would_refuse_to_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The checks above can fail: the dev registry's environment without SIGNING_KEY_FILE is refused."""
    objects = render("dev")
    env = resolved_env(objects, app_container(of_kind(objects, "Deployment")["registry"]))
    del env["SIGNING_KEY_FILE"]
    use_environment(monkeypatch, env)
    settings = RegistrySettings()
    with pytest.raises(ValueError, match="signing key must be given outside demo mode"):
        starting_key(
            pem=settings.signing_key, path=settings.signing_key_path, demo=settings.demo, data_dir=tmp_path
        )


# --- migrations -----------------------------------------------------------------------------------------


def cli_arguments(argv: list[str]) -> dict[str, Any]:
    """The parameters the real `kkmp` CLI parses from `kkmp <command> [options]` (without running it)."""
    assert argv[0] == "kkmp", argv
    group = typer.main.get_command(kkmp_cli)
    ctx = group.context_class(group, info_name="kkmp")
    command = group.get_command(ctx, argv[1])  # type: ignore[attr-defined]
    assert command is not None, f"kkmp has no command {argv[1]}"
    with command.make_context(argv[1], list(argv[2:]), parent=ctx) as sub:
        return {"command": argv[1], **sub.params}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_pod_migrates_its_database_with_the_real_cli_before_the_app_starts_without_migrating(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pod of a service with a database first runs `kkmp migrate --service <name>` (an init
    container: the app cannot start before it succeeded) straight against the primary, then the app
    with MIGRATE_ON_START=false, which refuses to start unless the schema is at head."""
    objects = render(overlay)
    assert not of_kind(objects, "Job"), "migrations run in the pods' init containers, not in Jobs"
    assert sorted(DB_SERVICES) == sorted(migrated_services())
    for name, deployment in of_kind(objects, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        inits = pod.get("initContainers", [])
        if name not in DB_SERVICES:
            assert not inits, name
            continue
        (init,) = inits
        assert init["name"] == "migrate" and init["image"] == app_container(deployment)["image"]
        assert cli_arguments(init["command"]) == {"command": "migrate", "service": name}
        assert init["securityContext"]["readOnlyRootFilesystem"] is True
        assert init["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(init["resources"]["limits"])
        # What `kkmp migrate` reads (kkmp_cli.migrate): the primary's service, no pooler.
        use_environment(monkeypatch, resolved_env(objects, init))
        migrating = ServiceSettings(service_name=name, broker_enabled=False)
        assert re.fullmatch(
            rf"postgresql\+asyncpg://{name}:\w+@kkmp-pg-rw:5432/{name}", migrating.database_url
        ) or (
            migrating.database_url
            == f"postgresql+asyncpg://operator-kkmp-db-{name}-username:operator-kkmp-db-{name}-password"
            f"@kkmp-pg-rw:5432/{name}"
        ), migrating.database_url
        assert migrating.database_pooler == "none"
        use_environment(monkeypatch, resolved_env(objects, app_container(deployment)))
        assert ServiceSettings(service_name=name, broker_enabled=False).migrate_on_start is False, name


def test_the_cli_check_refuses_a_command_line_the_cli_does_not_have() -> None:
    with pytest.raises(Exception, match="No such option: --services"):
        cli_arguments(["kkmp", "migrate", "--services", "inventory"])
    with pytest.raises(AssertionError, match="no command migrat"):
        cli_arguments(["kkmp", "migrat", "--service", "inventory"])
    assert cli_arguments(["kkmp", "migrate"]) == {"command": "migrate", "service": "all"}


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


# --- the connection budget ------------------------------------------------------------------------------

# Connections PostgreSQL must keep for others than the services: CloudNativePG's instance manager and
# exporter, an operator's psql (superuser_reserved_connections is counted apart).
ADMIN_CONNECTIONS = 10


def max_replicas(objects: tuple[dict[str, Any], ...], name: str) -> int:
    for o in objects:
        if o["kind"] == "HorizontalPodAutoscaler" and o["spec"]["scaleTargetRef"]["name"] == name:
            return int(o["spec"]["maxReplicas"])
        if o["kind"] == "ScaledObject" and o["spec"]["scaleTargetRef"]["name"] == name:
            return int(o["spec"]["maxReplicaCount"])
    return int(of_kind(objects, "Deployment")[name]["spec"]["replicas"])


def connection_budget(objects: tuple[dict[str, Any], ...], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What goes over the connection budget (README), every service at its autoscaler's maximum, each
    replica holding its pool and overflow (read by the services' own settings from the rendered
    environment), each pod's migrating init container one more connection, straight to the primary.
    Through the Pooler: clients against max_client_conn (of one pod: a lost pod's clients go to the
    others), the Pooler's server connections against PostgreSQL."""
    problems: list[str] = []
    cluster = of_kind(objects, "Cluster")["kkmp-pg"]["spec"]
    parameters = cluster["postgresql"]["parameters"]
    available = (
        int(parameters["max_connections"])
        - int(parameters.get("superuser_reserved_connections", 3))
        - int(parameters.get("reserved_connections", 0))
        - ADMIN_CONNECTIONS
    )
    role_limit = {r["name"]: int(r.get("connectionLimit", -1)) for r in cluster["managed"]["roles"]}
    poolers = {p["metadata"]["name"]: p["spec"] for p in of_kind(objects, "Pooler").values()}
    direct: dict[str, int] = {}  # per role, to PostgreSQL itself
    clients: dict[str, int] = {}  # per pooler
    for name in DB_SERVICES:
        deployment = of_kind(objects, "Deployment")[name]
        use_environment(monkeypatch, resolved_env(objects, app_container(deployment)))
        settings = ServiceSettings(service_name=name, broker_enabled=False)
        replicas = max_replicas(objects, name)
        per_replica = settings.database_pool_size + (
            settings.database_pool_size
            if settings.database_max_overflow is None
            else settings.database_max_overflow
        )
        host = settings.database_url.split("@", 1)[1].split(":", 1)[0]
        migrating = replicas * len(deployment["spec"]["template"]["spec"].get("initContainers", []))
        if host in poolers:
            if settings.database_pooler != "pgbouncer":
                problems.append(f"{name} goes through {host} without DATABASE_POOLER=pgbouncer")
            clients[host] = clients.get(host, 0) + replicas * per_replica
            direct[name] = migrating
        else:
            assert host == "kkmp-pg-rw", (name, host)
            direct[name] = replicas * per_replica + migrating
    server: dict[str, int] = dict.fromkeys(DB_SERVICES, 0)  # per role, from the poolers
    for pooler_name, pooler in poolers.items():
        bouncer = pooler["pgbouncer"]["parameters"]
        max_client_conn = int(bouncer["max_client_conn"])
        if clients.get(pooler_name, 0) > max_client_conn:
            problems.append(
                f"{pooler_name}: {clients[pooler_name]} clients > max_client_conn {max_client_conn}"
            )
        per_pool = int(bouncer["default_pool_size"]) + int(bouncer.get("reserve_pool_size", 0))
        for name in DB_SERVICES:  # one (database, role) pool each, in every pooler pod
            server[name] += int(pooler["instances"]) * per_pool
    for name in DB_SERVICES:
        limit = role_limit[name]
        if limit >= 0 and direct[name] + server[name] > limit:
            problems.append(
                f"role {name}: {direct[name] + server[name]} connections > connectionLimit {limit}"
            )
    total = sum(direct.values()) + sum(server.values())
    if total > available:
        problems.append(
            f"PostgreSQL: {total} connections > {available} available (max_connections less reserved)"
        )
    return problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_at_its_autoscalers_maximum_fits_the_connection_budget(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert connection_budget(render(overlay), monkeypatch) == []


def test_production_services_reach_postgresql_through_the_pooler_and_dev_directly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for overlay, host, pooler in (
        ("production", "kkmp-pg-pooler-rw", "pgbouncer"),
        ("dev", "kkmp-pg-rw", "none"),
    ):
        objects = render(overlay)
        for name in DB_SERVICES:
            app = app_container(of_kind(objects, "Deployment")[name])
            use_environment(monkeypatch, resolved_env(objects, app))
            settings = ServiceSettings(service_name=name, broker_enabled=False)
            assert f"@{host}:5432/{name}" in settings.database_url, (overlay, name)
            assert settings.database_pooler == pooler, (overlay, name)
    (pooler_spec,) = [p["spec"] for p in of_kind(render("production"), "Pooler").values()]
    assert pooler_spec["type"] == "rw" and pooler_spec["cluster"]["name"] == "kkmp-pg"


def _with(objects: tuple[dict[str, Any], ...], change: Any) -> tuple[dict[str, Any], ...]:
    changed = copy.deepcopy(list(objects))
    for obj in changed:
        change(obj)
    return tuple(changed)


def _set_config(key: str, value: str) -> Any:
    def change(obj: dict[str, Any]) -> None:
        if obj["kind"] == "ConfigMap":
            obj["data"][key] = value

    return change


def _hpa_max(name: str, value: int) -> Any:
    def change(obj: dict[str, Any]) -> None:
        if obj["kind"] == "HorizontalPodAutoscaler" and obj["metadata"]["name"] == name:
            obj["spec"]["maxReplicas"] = value

    return change


def _pooler(parameter: str, value: str) -> Any:
    def change(obj: dict[str, Any]) -> None:
        if obj["kind"] == "Pooler":
            obj["spec"]["pgbouncer"]["parameters"][parameter] = value

    return change


@pytest.mark.parametrize(
    ("overlay", "change", "reported"),
    [
        ("dev", _set_config("DATABASE_POOL_SIZE", "10"), "PostgreSQL:"),
        ("dev", _hpa_max("inventory", 6), "role inventory:"),
        ("production", _pooler("default_pool_size", "40"), "PostgreSQL:"),
        ("production", _pooler("max_client_conn", "500"), "max_client_conn"),
        ("production", _set_config("DATABASE_MAX_OVERFLOW", "400"), "max_client_conn"),
        ("production", _hpa_max("reporting", 30), "role reporting:"),
        ("production", _set_config("DATABASE_POOLER", "none"), "without DATABASE_POOLER=pgbouncer"),
    ],
)
def test_the_budget_check_reports_what_goes_over(
    overlay: str, change: Any, reported: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    problems = connection_budget(_with(render(overlay), change), monkeypatch)
    assert any(p.startswith(reported) or reported in p for p in problems), problems


# --- /metrics from outside ------------------------------------------------------------------------------


def ingress_route(objects: tuple[dict[str, Any], ...], host: str, path: str) -> tuple[str, str] | None:
    """(Ingress, path) that serves `path` on `host`, by the Ingress specification's matching: Exact
    matches the whole path, Prefix whole path elements; the longest match wins, Exact before Prefix."""
    elements = [e for e in path.split("/") if e]
    best: tuple[int, int, str, str] | None = None
    for ingress in of_kind(objects, "Ingress").values():
        for rule in ingress["spec"]["rules"]:
            if rule.get("host") != host:
                continue
            for p in rule["http"]["paths"]:
                assert p["pathType"] in ("Exact", "Prefix"), "ImplementationSpecific: no defined matching"
                if p["pathType"] == "Exact":
                    matches = p["path"] == path
                else:
                    prefix = [e for e in p["path"].split("/") if e]
                    matches = elements[: len(prefix)] == prefix
                if matches:
                    rank = (
                        len(p["path"].rstrip("/")),
                        p["pathType"] == "Exact",
                        ingress["metadata"]["name"],
                        p["path"],
                    )
                    best = max(best, rank) if best else rank
    return None if best is None else (best[2], best[3])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_metrics_are_refused_at_the_ingress_and_everything_else_reaches_the_portal(overlay: str) -> None:
    objects = render(overlay)
    (config,) = of_kind(objects, "ConfigMap").values()
    host = config["data"]["PORTAL_HOST"]
    ingresses = of_kind(objects, "Ingress")
    for ingress in ingresses.values():
        # Snippets are off by default in ingress-nginx (and a risk when on): the block needs none.
        assert not any("snippet" in key for key in ingress["metadata"].get("annotations", {})), ingress
        assert ingress["spec"]["tls"][0]["hosts"] == [host] and ingress["spec"]["ingressClassName"] == "nginx"
    denied = {
        name
        for name, ingress in ingresses.items()
        if set(
            ingress["metadata"]
            .get("annotations", {})
            .get("nginx.ingress.kubernetes.io/denylist-source-range", "")
            .split(",")
        )
        >= {"0.0.0.0/0", "::/0"}
    }
    assert denied == {"portal-metrics"}
    for path in ("/metrics", "/metrics/", "/metrics/anything"):
        assert ingress_route(objects, host, path) == ("portal-metrics", "/metrics"), path
    for path in ("/", "/login", "/dasbor", "/metricsx", "/static/app.css", "/api/metrics"):
        assert ingress_route(objects, host, path) == ("portal", "/"), path
    # Prometheus still scrapes every service's /metrics inside the cluster (the Service, not the Ingress).
    (monitor,) = of_kind(objects, "ServiceMonitor").values()
    assert [e["path"] for e in monitor["spec"]["endpoints"]] == ["/metrics"]


def test_the_route_check_sees_a_metrics_path_that_is_not_blocked() -> None:
    """Without the blocking Ingress, /metrics is the portal's again: the check above would fail."""
    objects = tuple(
        o for o in render("production") if o["metadata"]["name"] != "portal-metrics" or o["kind"] != "Ingress"
    )
    (config,) = of_kind(objects, "ConfigMap").values()
    assert ingress_route(objects, config["data"]["PORTAL_HOST"], "/metrics") == ("portal", "/")
