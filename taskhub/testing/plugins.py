"""Task packages for tests: files written into a folder put on PYTHONPATH, a distribution's metadata
written by hand (fast, for the settings' tests), a real ``pip install --target``, and taskhub's
commands run in a child process that sees them.

Used by the task package tests (taskhub/tests/test_plugins.py, jobs/tests/tasks/test_example_plugin.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from taskhub.testing.processes import BASE_DIR

EXAMPLE_PACKAGE = BASE_DIR / "examples" / "taskhub-example-tasks"
PLUGIN_SETTINGS = ("TASKHUB_APPS", "TASKHUB_TASK_MODULES", "TASKHUB_PLUGIN_DISCOVERY")


def write_files(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def fake_distribution(
    site: Path, *, name: str, version: str, files: dict[str, str], entry_points: dict[str, str] | None = None
) -> Path:
    """An installed distribution as pip leaves it (its files and a ``.dist-info`` folder with
    METADATA, top_level.txt and the ``taskhub.plugins`` entry points), without building anything."""
    write_files(site, files)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    top_level = sorted({relative.split("/")[0].removesuffix(".py") for relative in files})
    points = "".join(f"{key} = {value}\n" for key, value in (entry_points or {}).items())
    write_files(
        info,
        {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            "top_level.txt": "\n".join(top_level) + "\n",
            "entry_points.txt": f"[taskhub.plugins]\n{points}" if points else "",
        },
    )
    return site


def pip_install(*sources: Path, target: Path) -> float:
    """``pip install --no-deps --target`` the packages (built from source by their pyproject.toml, as
    a user's pip would); returns the seconds it took."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), *map(str, sources)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, f"pip install failed:\n{result.stdout}\n{result.stderr}"
    return time.monotonic() - started


def plugin_env(site: Path | None, **settings: str) -> dict[str, str]:
    """The environment of a taskhub process that sees the packages in ``site`` (PYTHONPATH) and the
    given settings (e.g. TASKHUB_APPS); none of the caller's task package settings leak in."""
    env = {key: value for key, value in os.environ.items() if key not in PLUGIN_SETTINGS}
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


def manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """``python manage.py ARGS`` in a child process with ``env``."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def readme_package_files(readme: str, section: str) -> dict[str, str]:
    """The files a README section shows: each fenced code block whose first line is a comment naming
    a path (``# my_tasks/tasks.py``), keyed by that path, with the block's text as the file."""
    start = readme.index(section)
    end = readme.find("\n## ", start + len(section))
    text = readme[start : end if end != -1 else None]
    files = {}
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL):
        first = block.splitlines()[0] if block.strip() else ""
        named = re.match(r"^# (\S+\.(?:py|toml|txt|cfg))$", first)
        if named:
            files[named.group(1)] = block
    return files
