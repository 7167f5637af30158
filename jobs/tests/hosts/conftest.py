"""The many-hosts bed's fixture (taskhub/testing/hosts/): one bed per test module, built and torn
down by the suite itself; skipped where network namespaces cannot be made (no root)."""

import pytest

from taskhub.testing.hosts import HOSTS, build_bed, missing_privileges


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
