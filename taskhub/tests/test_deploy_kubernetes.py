"""The example Kubernetes set of deploy/kubernetes/ (docs/DEPLOYMENT.md, "Example manifests"): every object
passes Kubernetes' own OpenAPI schemas (kubernetes-validate, strict: unknown fields refused), the KEDA
ScaledObjects KEDA's schema (the npm package @kubernetes-models/keda), each container runs a Procfile line
or a management command that exists, the environment names are ones the settings read, the probes reach
the real health views with a Host the settings allow, the grace periods follow the warm-shutdown
guidance, and the autoscaling queries name metrics and labels that GET /metrics exports."""

import fcntl
import json
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands
from django.test import Client
from django.urls import resolve
from prometheus_client.parser import text_string_to_metric_families

from taskhub import health
from taskhub.testing.manifests import (
    KUBERNETES_DIR,
    containers,
    documented_names,
    kubernetes_documents,
    kubernetes_files,
    manage_py_command,
    names_in,
    of_kind,
    option,
    pod_specs,
    procfile,
    procfile_process,
    read_names,
    shell_script,
    start_checks,
)

# The oldest Kubernetes the set is checked against (preStop's `sleep` action is on by default from 1.30)
# and the newest the schema package knows.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
# What each Deployment or Job runs: a Procfile process, or manage.py commands (init containers first).
RUNS = {
    "taskhub-web": ["collectstatic", "web"],
    "taskhub-worker": ["worker"],
    "taskhub-worker-urgent": ["worker"],
    "taskhub-maintenance": ["maintenance"],
    "taskhub-beat": ["beat"],
    "taskhub-migrate": ["migrate"],
}
# KEDA's ScaledObjectSpec, Trigger and AdvancedConfig fields (keda.sh/v1alpha1): the npm validator
# does not refuse unknown ones, so the keys are checked here.
KEDA_SPEC = {
    "scaleTargetRef", "pollingInterval", "initialCooldownPeriod", "cooldownPeriod", "idleReplicaCount",
    "minReplicaCount", "maxReplicaCount", "advanced", "triggers", "fallback",
}  # fmt: skip
KEDA_TRIGGER = {"type", "name", "useCachedMetrics", "metadata", "authenticationRef", "metricType"}
KEDA_PROMETHEUS = {"serverAddress", "query", "threshold", "activationThreshold", "namespace", "customHeaders"}
POOL_DEFAULT = 8  # DATABASE_POOL_MAX_SIZE's default (taskhub/settings/database.py)
SECRETS = {"SECRET_KEY", "METRICS_TOKEN", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"}


def deployment(name: str) -> dict:
    return next(doc for doc in of_kind("Deployment") if doc["metadata"]["name"] == name)


def container_env() -> dict[str, str]:
    """The environment every container gets from the ConfigMap and the Secret."""
    (config,), (secret,) = of_kind("ConfigMap"), of_kind("Secret")
    return {**config["data"], **secret["stringData"]}


def worker_queues(name: str) -> list[str]:
    (container,) = deployment(name)["spec"]["template"]["spec"]["containers"]
    return option(shell_script(container).split(), "-Q").split(",")


def test_the_kustomization_lists_every_file_and_sets_the_image():
    kustomization = yaml.safe_load((KUBERNETES_DIR / "kustomization.yaml").read_text())
    files = {path.name for path in kubernetes_files()} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert [image["name"] for image in kustomization["images"]] == ["taskhub"]
    assert {c["image"] for _, spec in pod_specs() for c in containers(spec)} == {"taskhub"}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_the_kubernetes_schema(version):
    without_schema = set()
    for path, document in kubernetes_documents():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            without_schema.add(document["kind"])
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {document['kind']} {document['metadata']['name']}: {error.message}")
    assert without_schema == {"ScaledObject"}  # KEDA's custom resource: the next tests


def test_a_wrong_field_is_refused_by_the_schema():
    web = deployment("taskhub-web")
    web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError, match="pathh"):
        kubernetes_validate.validate(web, KUBERNETES_VERSIONS[-1], strict=True)


def keda_validate(objects: list[dict]) -> subprocess.CompletedProcess:
    """deploy/kubernetes/keda-check/validate.mjs, its package installed once per var folder (npm ci)."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for KEDA's schema (apt: nodejs npm)")
    place = settings.VAR_DIR / "keda-check"
    place.mkdir(parents=True, exist_ok=True)
    with open(place / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the suites of both legs may run it at once
        for name in ("package.json", "package-lock.json", "validate.mjs"):
            shutil.copy(KUBERNETES_DIR / "keda-check" / name, place / name)
        if not (place / "node_modules" / "@kubernetes-models" / "keda").is_dir():
            npm = ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"]
            install = subprocess.run(npm, cwd=place, capture_output=True, text=True, timeout=300)
            assert install.returncode == 0, install.stdout + install.stderr
    return subprocess.run(
        ["node", "validate.mjs"], cwd=place, input=json.dumps(objects), capture_output=True, text=True, timeout=60
    )


def test_the_scaled_objects_pass_kedas_schema():
    objects = of_kind("ScaledObject")
    run = keda_validate(objects)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [f"valid: ScaledObject {o['metadata']['name']}" for o in objects]
    broken = json.loads(json.dumps(objects[0]))
    broken["spec"]["triggers"][0]["metadata"]["threshold"] = 30  # KEDA wants strings there
    del broken["spec"]["scaleTargetRef"]
    run = keda_validate([broken])
    assert run.returncode == 1
    assert "threshold must be string" in run.stdout and "required property scaleTargetRef" in run.stdout


def test_the_scaled_objects_use_only_kedas_fields_and_target_the_workers():
    for scaled in of_kind("ScaledObject"):
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        assert set(scaled["spec"]) <= KEDA_SPEC
        assert set(scaled["spec"]["advanced"]) <= {"horizontalPodAutoscalerConfig", "restoreToOriginalReplicaCount"}
        for trigger in scaled["spec"]["triggers"]:
            assert set(trigger) <= KEDA_TRIGGER and trigger["type"] == "prometheus"
            assert set(trigger["metadata"]) <= KEDA_PROMETHEUS
            assert trigger["metricType"] in ("AverageValue", "Value")
        target = deployment(scaled["spec"]["scaleTargetRef"]["name"])
        assert "replicas" not in target["spec"]  # the ScaledObject's HPA owns the count
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    scaled_names = {scaled["spec"]["scaleTargetRef"]["name"] for scaled in of_kind("ScaledObject")}
    assert scaled_names == {name for name, runs in RUNS.items() if runs == ["worker"]}


def test_each_container_runs_a_procfile_line_or_a_management_command():
    commands = get_commands()
    assert {name for name, _ in pod_specs()} == set(RUNS)
    for name, spec in pod_specs():
        ran = []
        for container in containers(spec):
            script = shell_script(container)
            assert container["workingDir"] == "/srv/taskhub"
            command = procfile_process(script) or manage_py_command(script)
            assert command in procfile() or command in commands, script
            assert script.startswith("exec ") or " && exec " in script  # the signalled process is the server
            ran.append(command)
        assert ran == RUNS[name]


def test_every_job_queue_has_a_worker_and_each_worker_its_node_name():
    workers = [name for name, runs in RUNS.items() if runs == ["worker"]]
    queues = [queue for name in workers for queue in worker_queues(name)]
    assert sorted(queues) == sorted(settings.JOB_QUEUES)  # each queue consumed, by one Deployment
    names = [
        option(shell_script(deployment(n)["spec"]["template"]["spec"]["containers"][0]).split(), "-n") for n in workers
    ]
    assert len(set(names)) == len(names) and all(name.endswith("@%h") for name in names)


def test_every_environment_name_is_read_by_the_settings_and_documented():
    known = documented_names() & read_names()
    assert set(container_env()) <= known, set(container_env()) - known
    for _, spec in pod_specs():
        for container in containers(spec):
            set_here = {variable["name"] for variable in container.get("env", [])}
            assert set_here <= known | names_in(shell_script(container)), set_here - known
            refs = [(ref.get("configMapRef") or ref.get("secretRef"))["name"] for ref in container["envFrom"]]
            assert refs == ["taskhub-config", "taskhub-secrets"]
    (config,), (secret,) = of_kind("ConfigMap"), of_kind("Secret")
    assert SECRETS <= set(secret["stringData"]) and not SECRETS & set(config["data"])


def test_the_configured_environment_passes_the_web_process_start_checks():
    """The ConfigMap and the Secret pass ``manage.py check --fail-level ERROR`` (the web line's first step)."""
    run = start_checks(container_env())
    assert run.returncode == 0, run.stdout + run.stderr
    assert "accounts.E001" in start_checks({**container_env(), "CACHE_URL": "locmemcache://taskhub"}).stderr


def web_container() -> dict:
    (container,) = deployment("taskhub-web")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_web_container_listens_where_the_service_and_the_probes_look():
    env, container = container_env(), web_container()
    assert env["TASKHUB_HOST"] == "0.0.0.0"  # the Procfile's default 127.0.0.1 is unreachable in a pod
    (port,) = container["ports"]
    assert port["containerPort"] == int(env["TASKHUB_PORT"])
    (service,) = of_kind("Service")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == port["name"]


@pytest.mark.django_db
def test_the_probes_reach_the_health_views_with_a_host_the_settings_allow(settings):
    container = web_container()
    paths = {
        probe: container[probe]["httpGet"]["path"] for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {probe: resolve(path).func for probe, path in paths.items()} == {
        "startupProbe": health.healthz,
        "livenessProbe": health.healthz,
        "readinessProbe": health.readyz,
    }
    env = container_env()
    assert env.get("SECURE_SSL_REDIRECT", "false") == "false"  # else a plain-HTTP probe gets a 301 it counts as up
    settings.ALLOWED_HOSTS = env["ALLOWED_HOSTS"].split(",")
    for probe, path in paths.items():
        headers = {h["name"]: h["value"] for h in container[probe]["httpGet"]["httpHeaders"]}
        assert set(headers) == {"Host"}
        response = Client().get(path, headers={"host": headers["Host"]})
        assert response.status_code == 200, (probe, response.content)
    assert Client().get(paths["livenessProbe"], headers={"host": "10.0.0.7"}).status_code == 400  # a pod IP


def test_selectors_match_the_pods_they_mean():
    templates = {
        doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"] for doc in of_kind("Deployment")
    }

    def matched(selector: dict) -> list[str]:
        return [name for name, labels in templates.items() if selector.items() <= labels.items()]

    for doc in of_kind("Deployment"):
        assert matched(doc["spec"]["selector"]["matchLabels"]) == [doc["metadata"]["name"]]
    (service,) = of_kind("Service")
    assert matched(service["spec"]["selector"]) == ["taskhub-web"]
    budgets = {
        doc["metadata"]["name"]: matched(doc["spec"]["selector"]["matchLabels"])
        for doc in of_kind("PodDisruptionBudget")
    }
    assert budgets == {name: [name] for name in ("taskhub-web", "taskhub-worker", "taskhub-worker-urgent")}


def test_grace_periods_follow_the_warm_shutdown_guidance():
    """docs/DEPLOYMENT.md, "Upgrades and restarts": a worker gets its longest job (at most
    JOB_MAX_TIME_LIMIT, Celery's hard limit 60 s later) before SIGKILL; web preStop + its 10 s."""
    grace = {
        name: deployment(name)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for name in RUNS
        if name != "taskhub-migrate"
    }
    for name in ("taskhub-worker", "taskhub-worker-urgent"):
        assert grace[name] >= settings.JOB_MAX_TIME_LIMIT + 60
    container = web_container()
    graceful = float(option(shell_script(container).split(), "--timeout-graceful-shutdown"))
    assert grace["taskhub-web"] > container["lifecycle"]["preStop"]["sleep"]["seconds"] + graceful
    assert deployment("taskhub-beat")["spec"]["replicas"] == 2  # safe: docs/DEPLOYMENT.md, "How many beats"


def test_the_postgresql_connection_ceiling_at_the_largest_scale_fits_max_connections():
    """docs/DEPLOYMENT.md, "PostgreSQL connections": every process at its pool's maximum, every
    ScaledObject at its maxReplicaCount, within PostgreSQL's default max_connections (100) less the 3
    reserved for superusers."""
    env, scaled = (
        container_env(),
        {o["spec"]["scaleTargetRef"]["name"]: o["spec"]["maxReplicaCount"] for o in of_kind("ScaledObject")},
    )
    ceiling = {}
    for doc in of_kind("Deployment"):
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        own = {**env, **{variable["name"]: variable["value"] for variable in container.get("env", [])}}
        pool = int(own.get("DATABASE_POOL_MAX_SIZE", POOL_DEFAULT))
        runs = procfile_process(shell_script(container))
        processes = {
            "web": int(own.get("WEB_CONCURRENCY", 1)),
            "worker": 1 + int(own.get("WORKER_CONCURRENCY", 2)),
        }.get(runs, 1)
        replicas = scaled.get(doc["metadata"]["name"], doc["spec"].get("replicas", 1))
        ceiling[doc["metadata"]["name"]] = replicas * processes * pool
    assert ceiling == {
        "taskhub-web": 2 * 2 * 8,
        "taskhub-worker": 3 * (1 + 4) * 2,
        "taskhub-worker-urgent": 2 * (1 + 4) * 2,
        "taskhub-maintenance": 1 * 1 * 2,
        "taskhub-beat": 2 * 1 * 2,
    }
    assert sum(ceiling.values()) == 88 <= 100 - 3


@pytest.mark.django_db
def test_the_autoscaling_queries_name_metrics_and_labels_that_metrics_exports(settings):
    """Scraped as Prometheus would through the Service (its cluster name is in ALLOWED_HOSTS)."""
    settings.METRICS_TOKEN = "a-token-for-this-test-only"
    settings.ALLOWED_HOSTS = container_env()["ALLOWED_HOSTS"].split(",")
    (service,) = of_kind("Service")
    host = f"{service['metadata']['name']}.taskhub.svc"
    response = Client().get("/metrics", headers={"authorization": "Bearer a-token-for-this-test-only", "host": host})
    assert response.status_code == 200
    samples = {family.name: family.samples for family in text_string_to_metric_families(response.content.decode())}
    checked = 0
    for scaled in of_kind("ScaledObject"):
        queues = set(worker_queues(scaled["spec"]["scaleTargetRef"]["name"]))
        for trigger in scaled["spec"]["triggers"]:
            query = trigger["metadata"]["query"]
            for metric, matchers in re.findall(r"(taskhub_\w+)\{([^}]*)\}", query):
                assert samples.get(metric), f"{metric} is not in GET /metrics"
                labels = {name for sample in samples[metric] for name in sample.labels}
                for name, op, value in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', matchers):
                    assert name in labels, (metric, name)
                    seen = {sample.labels[name] for sample in samples[metric]}
                    assert (set(value.split("|")) if op == "=~" else {value}) <= seen, (metric, name, value)
                    if name == "queue":
                        assert set(value.split("|")) == queues  # the queues its target consumes
                for by in re.findall(r"by \(([^)]*)\)", query):
                    assert {label.strip() for label in by.split(",")} <= labels
                checked += 1
    assert checked == 4
