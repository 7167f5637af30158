"""The many-hosts bed's fixture (taskhub/testing/hosts/): one bed per test module, built and torn
down by the suite itself; skipped where network namespaces cannot be made (no root)."""

import pytest

from taskhub.testing import PRODUCTION_RECOVERY
from taskhub.testing.hosts import HOSTS, build_bed, missing_privileges

# A run cut off by the previous scenario stops at its first write refused after its host is back: a
# heartbeat interval after its database connections work again (psycopg_pool reconnects with a
# backoff that grows while the cut lasts, up to a minute), plus the worker's reconnect to the broker.
SETTLED = float(PRODUCTION_RECOVERY["JOB_HEARTBEAT_INTERVAL"]) + 60 + 35 + 20


def pytest_generate_tests(metafunc):
    """A module's scenarios run on each broker it names in ``BED_BROKERS`` (default: Redis), one bed each."""
    if "bed" in metafunc.fixturenames or "healthy_bed" in metafunc.fixturenames:
        brokers = getattr(metafunc.module, "BED_BROKERS", ("redis",))
        metafunc.parametrize("broker", brokers, scope="module")


@pytest.fixture(scope="module")
def bed(request, broker):
    """The bed; a module whose scenarios talk to the API sets ``BED_WEB = True`` (web on the api host),
    one whose hosts' clocks are off ``BED_CLOCKS`` (host: libfaketime offset)."""
    if reason := missing_privileges():
        pytest.skip(reason)
    built = build_bed(broker)
    try:
        built.start_taskhub(
            web=getattr(request.module, "BED_WEB", False), clocks=getattr(request.module, "BED_CLOCKS", {})
        )
        yield built
    finally:
        built.close()


@pytest.fixture
def healthy_bed(bed):
    """The module's bed with every link up, every process running and no cut: what a scenario
    starts from, and leaves behind even when it fails."""
    for process in bed.processes:
        if process.kind != "client":  # a scenario's API client ends when its scenario does
            assert process.process.poll() is None, f"{process.name} exited:\n{process.output()[-3000:]}"
    # Both job workers consume and run nothing left from the module's previous scenario (a cut-off
    # run stops at its first write refused once its host is back): a scenario that needs jobs running
    # on each worker host starts only then (scenario 2 on RabbitMQ once began while worker1 was not
    # consuming yet, right after scenario 1, and timed out before its fault; docs/RELIABILITY.md).
    bed.wait_serving("worker1", "worker2", idle=True, timeout=SETTLED)
    yield bed
    bed.reconnect()
    for host in HOSTS:
        bed.resume(host)
        bed.link_up(host)
        bed.unlimit(host)
    for a in HOSTS:
        for b in HOSTS:
            if a < b:
                bed.heal(a, b)
