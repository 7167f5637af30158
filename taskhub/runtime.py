"""What a long-running process does once its code is loaded: a web process (``taskhub.asgi``,
``taskhub.wsgi``) and a Celery pool process (``taskhub.celery``).

``freeze_loaded_objects``: a loaded process holds ~125,000 objects the garbage collector tracks
(modules, classes, URL patterns, serializer fields, settings) that live as long as the process.
CPython's oldest-generation collection walks all of them: 67 ms on this project's 2-core machine,
a pause for every request or job in flight in that process, every few thousand requests
(``bench/README.md``, "Garbage collection"). ``gc.freeze()`` moves them to a permanent generation
that collections skip, as Instagram does and the ``gc`` module documents for forking servers.
https://docs.python.org/3/library/gc.html#gc.freeze
"""

import gc
import sys


def freeze_loaded_objects() -> int:
    """Collect what is garbage now, then keep every surviving object out of later collections.
    Returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def run_system_checks() -> None:
    """The system checks (with the deployment checks when DEBUG is off) once, as the web process
    starts: an error (e.g. accounts.E001, throttle counters per process with WEB_CONCURRENCY > 1)
    stops the process before it serves anything. Warnings are left to ``manage.py check --deploy``,
    which an operator runs: printed at every start they would be noise in ``make run``'s output
    (plain HTTP on 127.0.0.1, where Secure cookies and HSTS do not apply)."""
    from django.conf import settings
    from django.core import checks

    errors = [m for m in checks.run_checks(include_deployment_checks=not settings.DEBUG) if m.is_serious()]
    if errors:
        listed = "\n".join(str(message) for message in errors)
        print(f"taskhub: the web process refuses to start.\n{listed}", file=sys.stderr, flush=True)
        raise SystemExit(1)


def prepare_web_process() -> None:
    """Run the system checks; import what the first request would import lazily (the URLconf and,
    through it, every view, serializer and filter), then freeze what is loaded."""
    from django.urls import get_resolver

    run_system_checks()
    get_resolver().url_patterns  # noqa: B018 (imports the URLconf)
    freeze_loaded_objects()
