"""The many-hosts bed's fixture (taskhub/testing/hosts.py): one bed per test module, built and torn
down by the suite itself; skipped where network namespaces cannot be made (no root)."""

import pytest

from taskhub.testing.hosts import HOSTS, build_bed, missing_privileges


@pytest.fixture(scope="module")
def bed(request):
    """The bed; a module whose scenarios talk to the API sets ``BED_WEB = True`` (web on the api host)."""
    if reason := missing_privileges():
        pytest.skip(reason)
    built = build_bed()
    try:
        built.start_taskhub(web=getattr(request.module, "BED_WEB", False))
        yield built
    finally:
        built.close()


@pytest.fixture
def healthy_bed(bed):
    """The module's bed with every link up, every process running and no cut: what a scenario
    starts from, and leaves behind even when it fails."""
    for process in bed.processes:
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
