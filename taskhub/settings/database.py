"""Where data lives: the database (DATABASE_URL) and the cache (CACHE_URL)."""

from django.core.exceptions import ImproperlyConfigured

from taskhub.settings.environment import VAR_DIR, env

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'taskhub.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to the same file at once: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no lock upgrade deadlocks) and the busy
    # timeout makes writers queue instead of failing.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#setting-pragma-options
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A test run on SQLite uses a file under var/ (Django's default is a shared in-memory database,
    # which a test's worker or server process cannot open: given its name, it created the file
    # memorydb_default, and its -shm and -wal, in the working directory).
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_taskhub.sqlite3")}
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DATABASE_NAME", default=None)
    _pool_max_size = env.int("DATABASE_POOL_MAX_SIZE", default=8)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _pool_max_size > 0:
        # A psycopg connection pool per process. Under ASGI every request runs in a thread of its own,
        # so persistent per-thread connections piled up (16 API clients exhausted PostgreSQL's 100).
        # A request or task borrows a connection and gives it back; when all are busy it waits (up to
        # DATABASE_POOL_TIMEOUT seconds) instead of failing. Pooling needs CONN_MAX_AGE = 0.
        # https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
        # https://www.psycopg.org/psycopg3/docs/api/pool.html#psycopg_pool.ConnectionPool
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
            "max_size": _pool_max_size,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    else:  # DATABASE_POOL_MAX_SIZE=0 (e.g. behind PgBouncer): persistent connections
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Prepared statements: psycopg prepares a statement that a server-side binding cursor runs for
    # the 5th time on a connection (its prepare_threshold), and PostgreSQL then stops planning it at
    # every call. The job path's statements (jobs/services/_sql.py: a create, a start, a success) bind
    # on the server; planning them against the job table's 21 indexes (partial ones: a predicate proof
    # each) cost more than running them: in-process, 3 x 2,000 jobs started and finished, PostgreSQL's
    # CPU per job went from 1.69-1.77 ms to 0.72-0.77 ms (bench/README.md, "Prepared statements").
    # Django's own queries bind on the client and are never prepared. Named statements need the server
    # connection to stay the client's: behind PgBouncer in transaction mode use 1.21 or later with
    # max_prepared_statements > 0, or set DATABASE_PREPARED_STATEMENTS=false (docs/DEPLOYMENT.md).
    _given = env.str("DATABASE_PREPARED_STATEMENTS", default="true")
    _prepared = _given.strip().lower() or "true"
    if _prepared not in {"true", "false", "on", "off", "1", "0", "yes", "no"}:
        raise ImproperlyConfigured(f"DATABASE_PREPARED_STATEMENTS must be true or false, got {_given!r}.")
    if _prepared in {"true", "on", "1", "yes"}:
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
    # A database host cut off by the network (packets dropped: no reset, no refusal) must not hang a
    # request, a heartbeat or a readiness probe for the kernel's ~15 minutes of retransmissions: a
    # connect gives up after DATABASE_CONNECT_TIMEOUT seconds, a write left unacknowledged after
    # DATABASE_TCP_USER_TIMEOUT, and keepalives find a silent peer while a query waits (30 s idle, then
    # 3 probes 10 s apart). The many-hosts bed (docs/RELIABILITY.md) measures the answers this gives.
    # https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-PARAMKEYWORDS
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        connect_timeout=env.int("DATABASE_CONNECT_TIMEOUT", default=5),
        tcp_user_timeout=int(env.float("DATABASE_TCP_USER_TIMEOUT", default=10.0) * 1000),
        keepalives=1,
        keepalives_idle=30,
        keepalives_interval=10,
        keepalives_count=3,
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False

# Throttle counters live in the cache; with several web processes it must be shared (Redis).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://taskhub")}
