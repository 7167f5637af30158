"""The REST API: Django REST framework, simplejwt tokens, sign-up, the OpenAPI schema
(drf-spectacular) and the /metrics endpoint."""

import ipaddress
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from taskhub.settings.environment import env


def _trusted_proxies(value: str) -> list[str]:
    """FORWARDED_ALLOW_IPS as uvicorn reads it, but strict: uvicorn takes a malformed entry as a
    literal host name that never matches, so a typo would silently trust nobody."""
    if value.strip() == "":
        return []
    if value.strip() == "*":
        return ["*"]
    entries = [entry.strip() for entry in value.split(",")]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False) if "/" in entry else ipaddress.ip_address(entry)
        except ValueError:
            raise ImproperlyConfigured(
                f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network (e.g. 127.0.0.1, 10.0.0.0/8); "
                "give a comma-separated list, * for any, or nothing for no proxy."
            ) from None
    return entries


# The proxies whose X-Forwarded-For (and X-Forwarded-Proto) the web process believes: IP addresses
# or networks, comma-separated; empty (the default): none, the connecting address is the client.
# The Procfile passes it to uvicorn (--forwarded-allow-ips), which puts the client address it
# finds into the request (REMOTE_ADDR): the throttles and uvicorn's access log read that one
# address, so this one setting decides both. README "Behind a proxy" has the three deployments.
# https://www.uvicorn.org/settings/#http (--forwarded-allow-ips)
FORWARDED_ALLOW_IPS = _trusted_proxies(env.str("FORWARDED_ALLOW_IPS", default=""))
if "NUM_PROXIES" in env.ENVIRON:
    raise ImproperlyConfigured(
        "NUM_PROXIES is no longer read: set FORWARDED_ALLOW_IPS to the proxies' addresses instead "
        "(README, Behind a proxy); the web process then finds the client address for the throttles."
    )

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.StrictJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["taskhub.parsers.SafeJSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "taskhub.filters.FilterBackend",  # django-filter's, skipped when no parameter but paging's
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "taskhub.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "taskhub.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    # Which address a throttle counts: REMOTE_ADDR, never X-Forwarded-For itself. uvicorn has already
    # put the client address there, from X-Forwarded-For only when the connection came from a
    # proxy of FORWARDED_ALLOW_IPS (above); a header a client sets itself is never read here.
    # https://www.django-rest-framework.org/api-guide/throttling/#how-clients-are-identified
    "NUM_PROXIES": 0,
    # https://www.django-rest-framework.org/api-guide/throttling/#setting-the-throttling-policy
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="60/min"),
        "user": env.str("THROTTLE_USER", default="1200/min"),
        "login": env.str("THROTTLE_LOGIN", default="10/min"),
        "register": env.str("THROTTLE_REGISTER", default="10/hour"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    # https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html#rotate-refresh-tokens
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    # Tokens carry a hash of the password: changing it invalidates access tokens at once too.
    # https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html#check-revoke-token
    "CHECK_REVOKE_TOKEN": True,
    # Login and refresh refuse inactive users and the service account (which owns django.tasks jobs).
    # https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html#user-authentication-rule
    "USER_AUTHENTICATION_RULE": "accounts.authentication.user_may_authenticate",
}

# Sessions (admin, DRF's SessionAuthentication) and password logins refuse the service account too.
# https://docs.djangoproject.com/en/5.2/ref/settings/#authentication-backends
AUTHENTICATION_BACKENDS = ["accounts.authentication.PersonModelBackend"]

REGISTRATION_OPEN = env.bool("REGISTRATION_OPEN", default=True)
# How long (seconds) the token of an e-mail verification mail is good for (TimestampSigner max_age).
EMAIL_VERIFICATION_MAX_AGE = env.int("EMAIL_VERIFICATION_MAX_AGE", default=24 * 3600)

SPECTACULAR_SETTINGS = {
    "TITLE": "taskhub API",
    "DESCRIPTION": "Background jobs you can see and steer: submit, follow, cancel and retry jobs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Workflows' statuses beside the jobs' (jobs/workflows/serializers.py).
    "ENUM_NAME_OVERRIDES": {
        # A job's status is in Job and JobCreated (a create's answer, with dedupe_outcome): named once.
        "JobStatusEnum": "jobs.models.jobs.JobStatus",
        "WorkflowStatusEnum": "jobs.models.workflows.WorkflowStatus",
        "WorkflowStepStatusEnum": "jobs.workflows.serializers.STEP_STATUSES",
    },
    # Swagger UI and ReDoc assets are served from this server, not a CDN.
    # https://drf-spectacular.readthedocs.io/en/latest/settings.html#self-contained-ui-installation
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The live progress streams are plain async views: a hook documents them (jobs/streams/openapi.py).
    # https://drf-spectacular.readthedocs.io/en/latest/customization.html#step-7-preprocessing-hooks
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobs.streams.openapi.add_stream_paths",
        # /api/v1/tasks/... (the spec's paths) as deprecated aliases, tagged apart (taskhub/openapi.py).
        "taskhub.openapi.mark_spec_aliases",
        # What the server refuses in query values (NUL characters) said in the document (taskhub/openapi.py).
        "taskhub.openapi.declare_nul_refusal",
    ],
}

# Prometheus scrapes /metrics with `Authorization: Bearer <METRICS_TOKEN>`; staff members may also
# read it in a logged-in browser session. Empty (the default): staff sessions only.
# https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
