"""The many-hosts test bed (jobs/tests/hosts/, ``make test-hosts``): taskhub's processes on separate
hosts of one Linux machine, each host a network namespace, all plugged into a bridge that lives in a
namespace of its own (the "switch"). Addresses from 198.18.0.0/24 (RFC 2544's benchmarking range)
and no default route: nothing in the bed can reach anything outside it.

    db       198.18.0.2   a private PostgreSQL cluster (taskhub/testing/servers.py)
             198.18.0.7   a private Redis, the broker (a second address: a host can lose one, not the other)
    api      198.18.0.3   web + beat
    worker1  198.18.0.4   a job worker
    worker2  198.18.0.5   a job worker, the maintenance worker and a second beat
    client   198.18.0.6   the API's clients (scenarios 3 and 4)

Every taskhub process runs its Procfile command (``bash -c``) with the production settings
(``PRODUCTION_RECOVERY``, DEBUG off), started with ``ip netns exec`` and ``unshare --uts`` (each host
has its own host name: ``worker1``, ...). The test process itself stays outside the bed and reads the
database through the cluster's Unix socket; it creates jobs and schedules with ``manage.py shell`` run
on the api host.

Faults, per host: its link down and up (the switch's port), its processes stopped and resumed
(SIGSTOP/SIGCONT), a cut between two hosts (blackhole routes both ways), a host cut from the database
or from the broker alone (blackhole policy rules both ways), a ``tc tbf`` rate limit.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN): ``missing_privileges`` says why not, and the suite skips.
Namespaces are named ``thbed-<pid>-<host>``; ``cleanup_leftovers`` removes those of a run that was
killed (its pid gone).

Split by concern: ``network`` (namespaces, links, faults), ``bed`` (the db host's servers and
taskhub's processes), ``records`` (what scenarios create, read and record), ``client`` (the API
client of scenarios 3 and 4).
"""

from taskhub.testing.hosts.bed import REPORT_DIR, Bed, HostProcess, build_bed, procfile
from taskhub.testing.hosts.client import Client
from taskhub.testing.hosts.network import HOSTS, PREFIX, SERVICES, SUBNET, cleanup_leftovers, missing_privileges
from taskhub.testing.hosts.records import (
    FENCED,
    Record,
    create_jobs,
    create_payload_jobs,
    create_schedule,
    disable_schedule,
    fenced_writes,
    late_changes,
    query,
)

__all__ = [
    "FENCED",
    "HOSTS",
    "PREFIX",
    "REPORT_DIR",
    "SERVICES",
    "SUBNET",
    "Bed",
    "Client",
    "HostProcess",
    "Record",
    "build_bed",
    "cleanup_leftovers",
    "create_jobs",
    "create_payload_jobs",
    "create_schedule",
    "disable_schedule",
    "fenced_writes",
    "late_changes",
    "missing_privileges",
    "procfile",
    "query",
]
