"""The many-hosts bed's network (taskhub/testing/hosts/): a namespace per host plugged into a bridge
in a namespace of its own, and the faults done to it — a host's link down, two hosts cut from each
other, a host cut from one of the db host's services, a rate limit, a host's processes stopped.
Also what checks the machine can build it and removes a killed run's leftovers."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "thbed-"
SUBNET = "198.18.0"
HOSTS = {"db": 2, "api": 3, "worker1": 4, "worker2": 5, "client": 6}
# The db host's services, each at an address of its own.
SERVICES = {"database": f"{SUBNET}.2", "broker": f"{SUBNET}.7"}
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21


def missing_privileges() -> str:
    """Why the bed cannot be built here ("" when it can)."""
    if not sys.platform.startswith("linux"):
        return "the many-hosts bed needs Linux network namespaces"
    for tool in ("ip", "unshare", "tc"):
        if not shutil.which(tool):
            return f"the many-hosts bed needs {tool} (iproute2, util-linux)"
    status = Path("/proc/self/status").read_text()
    effective = int(re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.MULTILINE).group(1), 16)
    for cap, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN")):
        if not effective & (1 << cap):
            return f"the many-hosts bed needs {name} (run as root): network namespaces, veth pairs, a bridge"
    return ""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace(name: str) -> None:
    """SIGKILL every process in namespace ``name`` (a stopped one too), then delete it."""
    for _ in range(50):
        pids = [int(pid) for pid in ip("netns", "pids", name, check=False).stdout.split()]
        if not pids:
            break
        for pid in pids:
            for sig in (signal.SIGKILL, signal.SIGCONT):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        time.sleep(0.1)
    ip("netns", "del", name, check=False)


def bed_namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.startswith(PREFIX)]


def cleanup_leftovers() -> list[str]:
    """Remove the namespaces (with their processes, links and bridge) of beds whose test process is gone."""
    removed = []
    for name in bed_namespaces():
        owner = name.removeprefix(PREFIX).split("-", 1)[0]
        if owner.isdigit() and _alive(int(owner)) and int(owner) != os.getpid():
            continue  # another bed's, still running
        _kill_namespace(name)
        removed.append(name)
    return removed


class Network:
    """The bed's namespaces, bridge and links (named after the test process), and its faults."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid()}"
        self.switch = f"{self.tag}-switch"
        self._cuts: set[tuple[str, str]] = set()

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    @staticmethod
    def address(host: str) -> str:
        return f"{SUBNET}.{HOSTS[host]}"

    def on_host(self, host: str, args: list[str]) -> list[str]:
        """``args`` as a command run on ``host``: its network namespace and a host name of its own."""
        script = f'hostname {shlex.quote(host)} && exec "$@"'
        return ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "sh", "-c", script, "sh", *args]

    def build_network(self) -> Network:
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = self.ns(host)
            ip("netns", "add", ns)
            # The host's eth0 and its port on the switch (named after the host), one veth pair.
            ip("-n", self.switch, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
            ip("-n", self.switch, "link", "set", host, "master", "br0", "up")
            ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", self.ns("db"), "addr", "add", f"{SERVICES['broker']}/24", "dev", "eth0")
        return self

    def link_down(self, host: str) -> None:
        """Pull the host's cable at the switch: its packets go nowhere, nothing tells its connections."""
        ip("-n", self.switch, "link", "set", host, "down")

    def link_up(self, host: str) -> None:
        ip("-n", self.switch, "link", "set", host, "up")

    def cut(self, a: str, b: str) -> None:
        """``a`` and ``b`` no longer reach each other (each still reaches every other host)."""
        ip("-n", self.ns(a), "route", "add", "blackhole", f"{self.address(b)}/32")
        ip("-n", self.ns(b), "route", "add", "blackhole", f"{self.address(a)}/32")

    def heal(self, a: str, b: str) -> None:
        ip("-n", self.ns(a), "route", "del", "blackhole", f"{self.address(b)}/32", check=False)
        ip("-n", self.ns(b), "route", "del", "blackhole", f"{self.address(a)}/32", check=False)

    def _discard(self, host: str, *, src: str, dst: str, add: bool = True) -> None:
        """A policy rule on ``host`` that discards its packets from ``src`` to ``dst``."""
        rule = ["from", f"{src}/32", "to", f"{dst}/32", "blackhole"]
        ip("-n", self.ns(host), "rule", "add" if add else "del", *rule, check=add)

    def cut_from(self, host: str, service: str) -> None:
        """``host`` and the db host's ``service`` (database, broker) no longer reach each other; the
        db host's other service still does. Open connections hang as in a partition (their packets
        are discarded, nothing resets them); a new connection fails at once (the route is refused).
        (Discarding a new connection's packets too needs tc's drop action, which this kernel lacks.)"""
        self._discard(host, src=self.address(host), dst=SERVICES[service])
        self._discard("db", src=SERVICES[service], dst=self.address(host))
        self._cuts.add((host, service))

    def reconnect(self) -> None:
        """Every ``cut_from`` undone."""
        for host, service in self._cuts:
            self._discard(host, src=self.address(host), dst=SERVICES[service], add=False)
            self._discard("db", src=SERVICES[service], dst=self.address(host), add=False)
        self._cuts.clear()

    def tc(self, host: str, *args: str, check: bool = True, device: str = "eth0") -> None:
        """``tc qdisc args`` on ``host``'s ``device`` (the switch's port of a host: ``host="switch"``)."""
        ns = self.switch if host == "switch" else self.ns(host)
        command = ["ip", "netns", "exec", ns, "tc", "qdisc", *args[:1], "dev", device, *args[1:]]
        subprocess.run(command, check=check, capture_output=True, timeout=30)

    def rate_limit(self, host: str, rate: str = "1mbit") -> None:
        """The host's link limited to ``rate`` both ways (a token bucket, ``tc tbf``): what it sends
        (its eth0) and what it receives (its port on the switch)."""
        shape = ("root", "tbf", "rate", rate, "burst", "32kbit", "latency", "400ms")
        self.tc(host, "replace", *shape)
        self.tc("switch", "replace", *shape, device=host)

    def unlimit(self, host: str) -> None:
        self.tc(host, "del", "root", check=False)
        self.tc("switch", "del", "root", check=False, device=host)

    def pids(self, host: str) -> list[int]:
        return [int(pid) for pid in ip("netns", "pids", self.ns(host), check=False).stdout.split()]

    def _signal(self, host: str, sig: signal.Signals) -> list[int]:
        """``sig`` to every process of the host; the pids signalled. A process may end between the
        listing and the signal (the db host's PostgreSQL backends come and go with each connection)."""
        signalled = []
        for pid in self.pids(host):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
            signalled.append(pid)
        return signalled

    def pause(self, host: str) -> list[int]:
        """SIGSTOP every process of the host (a paused VM); the pids stopped."""
        return self._signal(host, signal.SIGSTOP)

    def resume(self, host: str) -> None:
        self._signal(host, signal.SIGCONT)
