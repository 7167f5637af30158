"""The example systemd units of deploy/systemd/ (docs/DEPLOYMENT.md, "Example manifests"): systemd's own
``systemd-analyze verify`` accepts them, each runs a Procfile line word for word (a worker instance: its
own queues and node name), the stop timeouts match the warm-shutdown guidance, the hardening options
are there, and every environment name they set is one the settings read and .env.example documents."""

import shutil
import subprocess

import pytest
from django.conf import settings
from django.core.management import get_commands

from taskhub.testing.manifests import (
    SYSTEMD_DIR,
    documented_names,
    duration_seconds,
    env_file,
    exec_argv,
    manage_py_command,
    names_in,
    option,
    procfile_process,
    read_names,
    read_unit,
    start_checks,
    unit_value,
    unit_values,
)

UNITS = sorted(SYSTEMD_DIR.glob("*.service"))
# The processes that run until stopped, by the Procfile process each runs.
LONG_RUNNING = {
    "taskhub-web.service": "web",
    "taskhub-worker@.service": "worker",
    "taskhub-maintenance.service": "maintenance",
    "taskhub-beat.service": "beat",
}
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
}
INSTANCE = "jobs"  # the example instance: deploy/systemd/worker-jobs.env


def script_of(unit: dict, key: str = "ExecStart", instance: str = INSTANCE) -> str:
    argv = exec_argv(unit_value(unit, "Service", key), instance)
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3, argv
    return argv[2]


def test_the_set_is_complete():
    assert {path.name for path in UNITS} == {*LONG_RUNNING, "taskhub-migrate.service"}
    assert {path.name for path in SYSTEMD_DIR.glob("*.env")} == {"taskhub.env", "worker-jobs.env"}


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed (apt: systemd)")
def test_systemd_analyze_verify_accepts_every_unit(tmp_path):
    """systemd's own parser: unknown keys, bad values and missing executables are reported (the
    template is verified as the instance taskhub-worker@jobs.service)."""
    names = []
    for path in UNITS:
        name = path.name.replace("@.service", f"@{INSTANCE}.service")
        shutil.copy(path, tmp_path / name)
        names.append(f"./{name}")
    run = subprocess.run(
        ["systemd-analyze", "verify", *names], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_systemd_analyze_verify_reports_a_broken_unit(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed (apt: systemd)")
    text = (SYSTEMD_DIR / "taskhub-beat.service").read_text().replace("KillMode=mixed", "KillMode=sometimes")
    (tmp_path / "taskhub-beat.service").write_text(text)
    run = subprocess.run(
        ["systemd-analyze", "verify", "./taskhub-beat.service"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Failed to parse kill mode" in run.stderr


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_every_unit_has_the_required_sections_and_keys(path):
    unit = read_unit(path)
    assert unit_value(unit, "Unit", "Description")
    for key in ("User", "Group", "WorkingDirectory", "ExecStart"):
        assert unit_value(unit, "Service", key), key
    assert unit_values(unit, "Service", "EnvironmentFile")[0] == "/etc/taskhub/taskhub.env"
    assert unit_values(unit, "Service", "Environment")[0].startswith("PATH=/srv/taskhub/.venv/bin:")
    for key, value in HARDENING.items():
        assert unit_value(unit, "Service", key) == value, key
    assert unit_value(unit, "Service", "ReadWritePaths") == "/srv/taskhub/var"
    if path.name in LONG_RUNNING:
        assert unit_value(unit, "Service", "KillMode") == "mixed"  # SIGTERM to the main process only
        assert unit_value(unit, "Service", "Restart") in ("always", "on-failure")
        assert unit_value(unit, "Service", "TimeoutStopSec")
        assert unit_value(unit, "Install", "WantedBy") == "multi-user.target"
    else:
        assert unit_value(unit, "Service", "Type") == "oneshot"


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_each_long_running_unit_runs_its_procfile_line(name):
    script = script_of(read_unit(SYSTEMD_DIR / name))
    assert procfile_process(script) == LONG_RUNNING[name], script
    assert script.startswith("exec ") or " && exec " in script  # the process systemd signals is the server


def test_a_worker_instance_consumes_its_own_queues_under_its_own_node_name():
    unit = read_unit(SYSTEMD_DIR / "taskhub-worker@.service")
    words = script_of(unit).split()
    assert option(words, "-n") == f"{INSTANCE}@%h"  # celery puts the host name in
    assert option(words, "-Q") == '"${WORKER_QUEUES}"'
    assert "WORKER_QUEUES=%i" in unit_values(unit, "Service", "Environment")  # the default: the instance's name
    assert unit_values(unit, "Service", "EnvironmentFile")[-1] == "-/etc/taskhub/worker-%i.env"
    queues = env_file(SYSTEMD_DIR / "worker-jobs.env")["WORKER_QUEUES"].split(",")
    assert tuple(queues) == settings.JOB_QUEUES  # the Procfile's worker, in its order


def test_other_commands_are_management_commands_that_exist():
    commands = get_commands()
    web = read_unit(SYSTEMD_DIR / "taskhub-web.service")
    migrate = read_unit(SYSTEMD_DIR / "taskhub-migrate.service")
    ran = [manage_py_command(script_of(web, "ExecStartPre")), manage_py_command(script_of(migrate))]
    assert ran == ["collectstatic", "migrate"]
    assert all(command in commands for command in ran)


def test_stop_timeouts_follow_the_warm_shutdown_guidance():
    """docs/DEPLOYMENT.md, "Upgrades and restarts": a worker gets its longest job's run time (at most
    JOB_MAX_TIME_LIMIT, and Celery's hard limit 60 s later) before SIGKILL; web its 10 s graceful
    shutdown plus the proxy's drain."""
    timeout = {
        name: duration_seconds(unit_value(read_unit(SYSTEMD_DIR / name), "Service", "TimeoutStopSec"))
        for name in LONG_RUNNING
    }
    assert timeout["taskhub-worker@.service"] >= settings.JOB_MAX_TIME_LIMIT + 60
    web_script = script_of(read_unit(SYSTEMD_DIR / "taskhub-web.service")).split()
    assert timeout["taskhub-web.service"] > float(option(web_script, "--timeout-graceful-shutdown"))
    assert timeout["taskhub-maintenance.service"] >= 30 and timeout["taskhub-beat.service"] >= 10


def test_every_environment_name_is_read_by_the_settings_and_documented():
    """Names set by the units (Environment=) and the example files: read by the settings or the
    Procfile and documented in .env.example; or read by that unit's own command (WORKER_QUEUES)."""
    known = documented_names() & read_names()
    set_names = {name: set(env_file(SYSTEMD_DIR / name)) for name in ("taskhub.env", "worker-jobs.env")}
    assert set_names["taskhub.env"] <= known, set_names["taskhub.env"] - known
    assert set_names["worker-jobs.env"] <= known | {"WORKER_QUEUES"}
    for path in UNITS:
        unit = read_unit(path)
        own = names_in(script_of(unit)) | {"PATH"}
        for assignment in unit_values(unit, "Service", "Environment"):
            name = assignment.partition("=")[0]
            assert name in known | own, f"{path.name}: {name}"


def test_the_example_environment_passes_the_web_process_start_checks():
    """taskhub.env as it stands passes ``manage.py check --fail-level ERROR`` (the web line's first
    step), e.g. WEB_CONCURRENCY=2 with a shared CACHE_URL (accounts.E001 otherwise)."""
    run = start_checks(env_file(SYSTEMD_DIR / "taskhub.env"))
    assert run.returncode == 0, run.stdout + run.stderr
    broken = {**env_file(SYSTEMD_DIR / "taskhub.env"), "CACHE_URL": "locmemcache://taskhub"}
    assert "accounts.E001" in start_checks(broken).stderr
