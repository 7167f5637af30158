"""The benchmarks refuse a Redis db someone else is connected to (issue 20): a test suite's workers
there took a benchmark's messages and skipped them, and the benchmark's flush emptied their queues."""

import os
import subprocess
import sys

import pytest
import redis

from bench import _common as common


def db_url(server, db: int) -> str:
    return server.url.rsplit("/", 1)[0] + f"/{db}"


def test_a_db_nobody_else_uses_is_accepted(private_redis):
    common.check_redis_db_free(db_url(private_redis, 1))


def test_a_db_with_another_client_is_refused_naming_it(private_redis):
    other = redis.Redis.from_url(db_url(private_redis, 1))
    try:
        address = other.client_info()["addr"]
        with pytest.raises(SystemExit) as refused:
            common.check_redis_db_free(db_url(private_redis, 1))
        assert address in str(refused.value) and "BENCH_REDIS_URL" in str(refused.value)
        # Another db of the same server is free.
        common.check_redis_db_free(db_url(private_redis, 2))
    finally:
        other.close()


def test_the_benchmarks_own_processes_are_not_others(private_redis):
    """A phase's diagnosis leaves out the benchmark's own worker (found by its sockets in /proc)."""
    url = db_url(private_redis, 1)
    child = subprocess.Popen(
        [sys.executable, "-c", f"import redis, sys; c = redis.Redis.from_url({url!r}); c.ping(); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        seen = common.redis_db_clients(url)
        for _ in range(100):
            if seen:
                break
            seen = common.redis_db_clients(url)
        assert len(seen) == 1
        assert common.redis_db_clients(url, own_pids=[os.getpid(), child.pid]) == []
    finally:
        child.communicate(b"", timeout=10)
