"""System checks: throttle counters (login and sign-up limits, API rates) must be shared by every
web process, or each process keeps its own count and the limits multiply."""

import os

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

PER_PROCESS = ("django.core.cache.backends.locmem.LocMemCache", "django.core.cache.backends.dummy.DummyCache")
HINT = "Set CACHE_URL to a cache every web process shares, e.g. redis://127.0.0.1:6379/1."


def _per_process_cache() -> bool:
    return settings.CACHES["default"]["BACKEND"] in PER_PROCESS


@register(Tags.security)
def throttle_cache_shared_by_web_processes(app_configs, **kwargs):
    processes = os.environ.get("WEB_CONCURRENCY", "1")
    if _per_process_cache() and processes.isdigit() and int(processes) > 1:
        return [
            Error(
                f"WEB_CONCURRENCY={processes} web processes would each count throttled requests in a "
                "per-process cache: every limit would be multiplied by that number.",
                hint=HINT,
                id="accounts.E001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def throttle_cache_for_production(app_configs, **kwargs):
    if _per_process_cache():
        return [
            Warning(
                "Throttle counters live in a per-process cache: with more than one web process or "
                "host, each keeps its own count.",
                hint=HINT,
                id="accounts.W001",
            )
        ]
    return []
