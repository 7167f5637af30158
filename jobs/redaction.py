"""What users who are not staff may not see of the server: its file system paths.

A traceback names every file it passed through (``/srv/app/jobs/tasks/...``,
``/usr/lib/python3.11/site-packages/celery/...``); users see paths relative to the project or to
the Python installation, and staff the full text.
"""

import re
import site
import sys
import sysconfig
from functools import cache

from django.conf import settings

_ABSOLUTE_FILE = re.compile(r'(File ")(/[^"]*/)([^"/]+")')


@cache
def _prefixes() -> list[tuple[str, str]]:
    """Known absolute roots, longest first, and what each becomes."""
    project = str(settings.BASE_DIR).rstrip("/") + "/"
    python = {
        path.rstrip("/") + "/"
        for path in (*site.getsitepackages(), *sysconfig.get_paths().values(), sys.prefix, sys.base_prefix)
        if path and path.startswith("/")
    }
    roots = [(project, ""), *((path, "<python>/") for path in python)]
    return sorted(roots, key=lambda root: len(root[0]), reverse=True)


def strip_server_paths(text: str) -> str:
    """``text`` with absolute server paths made relative (unknown ones reduced to the file name)."""
    if not text or "/" not in text:
        return text
    for prefix, replacement in _prefixes():
        text = text.replace(prefix, replacement)
    return _ABSOLUTE_FILE.sub(r"\1\3", text)
