"""`make run` as a newcomer meets it: the embedded default, a banner that says how to log in, and a
Ctrl-C that stops web, worker and beat with a warm shutdown and exit status 0."""

import io
import os
import pathlib
import signal
import socket
import subprocess
import urllib.request

import pytest
from django.conf import settings

from taskhub.testing import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.timeout(240)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_run(tmp_path, port: int, log_name: str) -> tuple[subprocess.Popen, pathlib.Path]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY", "DEBUG")
    }
    env.update(TASKHUB_VAR_DIR=str(tmp_path / "var"), TASKHUB_ADMIN_PASSWORD="", MAKEFLAGS="")
    log = tmp_path / log_name
    with log.open("w") as handle:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, like a terminal's foreground job
        )
    return process, log


def output(log: pathlib.Path) -> str:
    return log.read_text()


def ctrl_c(process: subprocess.Popen) -> None:
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.

    make itself then ends by that SIGINT, as every make target does on Ctrl-C; what counts is that
    the recipe (web, worker and beat) stopped cleanly, so make reports no error.
    """
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=90) in (0, -signal.SIGINT)


def test_make_run_banner_and_ctrl_c_stop_cleanly(tmp_path):
    port = free_port()
    process, log = make_run(tmp_path, port, "first.log")
    try:
        wait_for(lambda: "Ctrl-C stops them all." in output(log), timeout=120, message="the banner")
        wait_for(lambda: "celery@" in output(log) and " ready." in output(log), timeout=60, message="worker ready")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=5) as response:
            assert response.status == 200
    finally:
        ctrl_c(process)
    first = output(log)
    banner = first[first.index("taskhub is up.") :]
    assert f"http://127.0.0.1:{port}/admin/" in banner and f"http://127.0.0.1:{port}/api/docs/" in banner
    password = (tmp_path / "var" / "admin_password").read_text().strip()
    assert f"Admin 'admin' created with password {password}" in banner
    assert oct((tmp_path / "var" / "admin_password").stat().st_mode & 0o777) == "0o600"
    assert "Operations to perform" not in first  # no migration chatter
    assert "taskhub stopped: web.1, worker.1, beat.1, maintenance.1 shut down cleanly." in first, first[-3000:]
    assert "make: ***" not in first  # no "Error 130"
    assert "Warm shutdown" in first and "SIGKILL" not in first
    assert "exited with 'signal" not in first  # no pool process was killed under a job
    assert "Error" not in first.split("SIGINT received")[-1]

    # The next run says where the password is; once it was changed, how to reset it.
    process, log = make_run(tmp_path, port, "second.log")
    try:
        wait_for(lambda: "Ctrl-C stops them all." in output(log), timeout=120, message="the banner")
    finally:
        ctrl_c(process)
    assert f"Admin 'admin': password in {tmp_path / 'var' / 'admin_password'}." in output(log)


def test_ensure_admin_says_how_to_reset_a_changed_password(tmp_path, db):
    from django.core.management import call_command

    from accounts.models import User

    password_file = tmp_path / "admin_password"
    call_command("ensure_admin", password_file=password_file, stdout=(out := io.StringIO()))
    assert "created with password" in out.getvalue() and password_file.is_file()
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-the-operator")
    admin.save()
    call_command("ensure_admin", password_file=password_file, stdout=(out := io.StringIO()))
    assert "python manage.py changepassword admin" in out.getvalue()


def dry_run(tmp_path, target: str, makefile: str = "Makefile") -> str:
    """The commands `make TARGET` would run in a fresh clone (no virtualenv yet), without running them."""
    done = subprocess.run(
        ["make", "-n", "-f", makefile, target, f"VENV={tmp_path / 'venv'}", f"TASKHUB_VAR_DIR={tmp_path / 'var'}"],
        cwd=settings.BASE_DIR,
        env={**os.environ, "MAKEFLAGS": ""},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_the_runtime_only_and_test_and_lint_the_tools(tmp_path):
    run = dry_run(tmp_path, "run")
    assert "-m venv" in run and "pip install --quiet -r requirements/base.txt" in run
    assert "requirements/dev.txt" not in run  # no playwright, schemathesis, ruff... to try the app
    for target in ("test", "lint"):
        assert "pip install --quiet -r requirements/dev.txt" in dry_run(tmp_path, target), target
