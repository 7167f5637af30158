"""Readers for the example deployment manifests under ``deploy/`` (systemd units, Kubernetes YAML) and
for what they must agree with: the Procfile's lines, the environment names the settings read and
``.env.example`` documents. Used by ``taskhub/tests/test_deploy_systemd.py`` and
``taskhub/tests/test_deploy_kubernetes.py``; needs no settings.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

BASE_DIR = Path(__file__).resolve().parent.parent.parent
DEPLOY_DIR = BASE_DIR / "deploy"
SYSTEMD_DIR = DEPLOY_DIR / "systemd"
KUBERNETES_DIR = DEPLOY_DIR / "kubernetes"

# A worker's command may differ from the Procfile's worker line in these options only: the queues it
# consumes and its node name (docs/DEPLOYMENT.md, "Queues" and "Several workers on one host").
WORKER_OPTIONS = ("-Q", "-n")
NAME = r"[A-Z][A-Z0-9_]*"


def procfile() -> dict[str, str]:
    """The Procfile's processes: name -> command line."""
    processes = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def _without_options(words: list[str], options: tuple[str, ...]) -> list[str]:
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in options:
            skip = True
        else:
            kept.append(word)
    return kept


def option(words: list[str], name: str) -> str | None:
    """The value that follows ``name`` in ``words`` (None without it)."""
    return words[words.index(name) + 1] if name in words and words.index(name) + 1 < len(words) else None


def procfile_process(script: str) -> str | None:
    """Which Procfile process ``script`` (an ``sh -c`` script) runs: the name of the line it repeats word
    for word, or ``worker`` for the worker line with its own ``-Q`` and ``-n`` (both present); else None."""
    words = shlex.split(script)
    lines = procfile()
    for name, line in lines.items():
        if shlex.split(line) == words:
            return name
    worker = shlex.split(lines["worker"])
    relaxed = _without_options(words, WORKER_OPTIONS)
    if relaxed == _without_options(worker, WORKER_OPTIONS) and all(opt in words for opt in WORKER_OPTIONS):
        return "worker"
    return None


def manage_py_command(script: str) -> str | None:
    """The management command of an ``exec python manage.py <command> …`` script (None for another)."""
    words = shlex.split(script)
    if words[:3] == ["exec", "python", "manage.py"] and len(words) > 3:
        return words[3]
    return None


# --- environment names --------------------------------------------------------------------------


def documented_names() -> set[str]:
    """Names ``.env.example`` sets or shows commented out (``NAME=`` or ``# NAME=``)."""
    text = (BASE_DIR / ".env.example").read_text()
    return set(re.findall(rf"^#?\s*({NAME})=", text, flags=re.MULTILINE))


def read_names() -> set[str]:
    """Names the settings read from the environment (``env.<cast>("NAME"`` in taskhub/settings/) or the
    Procfile's lines expand (``${NAME…}``)."""
    names = set()
    for module in (BASE_DIR / "taskhub" / "settings").glob("*.py"):
        names |= set(re.findall(rf"""[eE]nv(?:\(\))?\.\w+\(\s*"({NAME})\"""", module.read_text()))
    names |= set(re.findall(rf"\$\{{?({NAME})", (BASE_DIR / "Procfile").read_text()))
    return names


def names_in(script: str) -> set[str]:
    """Variables a shell script expands."""
    return set(re.findall(rf"\$\{{?({NAME})", script))


def start_checks(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """``manage.py check --fail-level ERROR`` (the Procfile's web line starts with it) in a process whose
    environment is ``environment`` alone (with this interpreter's PATH): what a unit or a pod would run."""
    path = f"{Path(sys.executable).parent}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "ERROR"],
        check=False,
        cwd=BASE_DIR,
        env={"PATH": path, "HOME": str(BASE_DIR / "var"), **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- systemd ------------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as systemd.syntax(7) reads it: section -> [(key, value), …] in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], [])
            continue
        key, sep, value = stripped.partition("=")
        assert sep and current is not None and not value.endswith("\\"), f"{path.name}:{number}: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit: dict, section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def unit_value(unit: dict, section: str, key: str) -> str | None:
    values = unit_values(unit, section, key)
    return values[-1] if values else None


def exec_argv(value: str, instance: str = "") -> list[str]:
    """The argv systemd runs for an ``Exec*=`` value: specifiers (``%%``, ``%i``) resolved, the words
    split, ``$$`` made ``$``. A single ``$`` (a variable systemd would expand itself) is refused."""
    assert value[:1] not in "-@:+!", f"an Exec prefix is not expected here: {value!r}"
    resolved = value.replace("%%", "\0").replace("%i", instance).replace("%I", instance).replace("\0", "%")
    argv = shlex.split(resolved)
    for word in argv:
        assert "$" not in word.replace("$$", ""), f"systemd would expand a variable itself: {word!r}"
    return [word.replace("$$", "$") for word in argv]


def env_file(path: Path) -> dict[str, str]:
    """An ``EnvironmentFile=`` (KEY=value lines, # comments)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def duration_seconds(value: str) -> float:
    """A systemd time span (``21720``, ``6h 2min``, ``30s``) in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600, "d": 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts and "".join(n + u for n, u in parts) == value.replace(" ", ""), value
    return sum(float(number) * units[unit] for number, unit in parts)


# --- Kubernetes ---------------------------------------------------------------------------------


def kubernetes_files() -> list[Path]:
    return sorted(KUBERNETES_DIR.glob("*.yaml"))


def kubernetes_documents() -> list[tuple[Path, dict]]:
    """Every object of the set (the kustomization file aside), with its file."""
    documents = []
    for path in kubernetes_files():
        if path.name == "kustomization.yaml":
            continue
        documents += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in kubernetes_documents() if doc["kind"] == kind]


def pod_specs() -> list[tuple[str, dict]]:
    """(owner name, pod spec) of every Deployment and Job."""
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for _, doc in kubernetes_documents()
        if doc["kind"] in ("Deployment", "Job")
    ]


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def shell_script(container: dict) -> str:
    """The script of a ``command: [/bin/sh, -c, script]`` container."""
    command = container["command"]
    assert command[:2] == ["/bin/sh", "-c"] and len(command) == 3 and "args" not in container, command
    assert "$(" not in command[2], f"Kubernetes would expand $(…) itself: {command[2]!r}"
    return command[2]
