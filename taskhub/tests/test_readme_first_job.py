"""README's first screen reaches a first job: the "First job in 60 seconds" block, run verbatim by
scripts/readme_first_job.py against the processes `make run` starts, and the README's other
examples speaking the same variables ($BASE, $TOKEN, $JOB_ID)."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from taskhub.testing import wait_for
from taskhub.tests.test_make_run import free_port
from taskhub.tests.test_make_run_smoke import count, ctrl_c_and_wait, start

README = Path(settings.BASE_DIR) / "README.md"
SCRIPT = Path(settings.BASE_DIR) / "scripts" / "readme_first_job.py"
SERVICES = re.compile(r"PostgreSQL|Redis|RabbitMQ")
BASE_LINE = "BASE=${BASE:-http://127.0.0.1:8000}"


def code_blocks(text: str) -> list[tuple[int, str]]:
    """Every fenced code block of README (line number of its fence, its text)."""
    blocks, lines = [], text.splitlines()
    fence = None
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if fence is None:
                fence, body = number, []
            else:
                blocks.append((fence, "\n".join(body)))
                fence = None
        elif fence is not None:
            body.append(line)
    return blocks


def first_job_block(text: str) -> str:
    start, end = text.index("<!-- first-job -->"), text.index("<!-- /first-job -->")
    return text[start:end]


def test_the_first_job_block_is_on_the_first_screen_right_after_two_commands():
    text = README.read_text()
    lines = text.splitlines()
    two_commands = lines.index("## Two commands")
    marker = lines.index("<!-- first-job -->")
    assert two_commands < marker < 40, (two_commands, marker)
    headings = [line for line in lines[two_commands + 1 : marker] if line.startswith("#")]
    assert headings == ["### First job in 60 seconds"], headings
    block = first_job_block(text)
    assert BASE_LINE in block
    for needed in ("/api/v1/auth/token/", "var/admin_password", "TASKHUB_ADMIN_PASSWORD", "long_running_task"):
        assert needed in block, needed
    for needed in ("/api/v1/jobs/$JOB_ID/", "/api/v1/jobs/$JOB_ID/stream/", "/api/v1/jobs/$JOB_ID/cancel/"):
        assert needed in block, needed
    assert "curl -" in block and "-N" in block and "jq" not in block


def test_no_services_before_running_the_tests():
    """PostgreSQL, Redis and RabbitMQ are for the tests and production, not for trying it."""
    text = README.read_text()
    screen = text[: text.index("<!-- /first-job -->")]
    assert not SERVICES.findall(screen), SERVICES.findall(screen)
    running_the_tests = text[text.index("### Running the tests") :][:1500]
    assert {"PostgreSQL", "Redis", "RabbitMQ"} <= set(SERVICES.findall(running_the_tests))


def test_every_example_uses_the_same_variables_and_the_port_once():
    text = README.read_text()
    for fence, block in code_blocks(text):
        for offset, line in enumerate(block.splitlines(), 1):
            where = f"README.md:{fence + offset}: {line}"
            assert "$ACCESS" not in line and "{task_id}" not in line, where
            if line.strip() != BASE_LINE:
                assert not re.search(r"(localhost|127\.0\.0\.1):\d+", line), where
            if line.lstrip().startswith("curl "):
                assert "$BASE/" in line, where
            for user in re.findall(r"--user (\S+)", line):
                assert user == "admin", where
    assert text.count(BASE_LINE) == 1


def run_script(readme: Path, cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--readme", str(readme), "--cwd", str(cwd)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | env,
    )


def write_readme(tmp_path: Path, block: str) -> Path:
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n<!-- first-job -->\n```bash\n{block}\n```\n<!-- /first-job -->\n")
    return readme


@pytest.mark.parametrize(
    "block, message",
    [
        ("echo revoked\nfalse\necho revoked   # revoked", "exit status 1"),  # a command in the middle fails
        ("X=$(false)\necho revoked   # revoked", "exit status 1"),  # in a command substitution
        ("false | cat\necho revoked   # revoked", "exit status 1"),  # in a pipeline
        ("echo succeeded   # revoked", "the job ended 'succeeded', the block says 'revoked'"),
        ("echo done", "the block's last command must end with the status it prints"),
    ],
)
def test_the_script_fails_when_the_block_does(tmp_path, block, message):
    result = run_script(write_readme(tmp_path, block), tmp_path)
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr


def test_the_script_names_a_readme_without_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# t\n")
    result = run_script(readme, tmp_path)
    assert result.returncode == 2 and "<!-- first-job -->" in result.stderr, result.stderr


def test_the_script_runs_the_block_verbatim_in_cwd(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "status").write_text("revoked\n")
    result = run_script(write_readme(tmp_path, "echo $BASE\ncat var/status   # revoked"), tmp_path, BASE="http://x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-2:] == ["http://x", "revoked"]


@pytest.mark.worker
@pytest.mark.timeout(240)
def test_readme_first_job_runs_against_make_run(tmp_path):
    """The block, copied as it is, against `make run` (embedded default) on a free port; Ctrl-C after."""
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("w") as handle:
        process = start(tmp_path, port, handle)
    try:
        wait_for(lambda: "Ctrl-C stops them all." in log.read_text(), timeout=120, message="the banner")
        env = {k: v for k, v in os.environ.items() if k != "TASKHUB_ADMIN_PASSWORD"}
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--cwd", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env | {"BASE": f"http://127.0.0.1:{port}"},
        )
    finally:
        _tree, code, left = ctrl_c_and_wait(process)
    output = log.read_text()
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "revoked", result.stdout
    assert "event: end" in result.stdout, result.stdout
    assert not left, f"still running after Ctrl-C: {left}"
    assert code in (0, -signal.SIGINT), output[-3000:]
    assert count(output)[0] == 0, output  # no tracebacks (check --deploy's warnings are printed by design)
