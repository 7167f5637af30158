"""A TCP relay a test can cut and restore: "the server is down" for the processes behind it only."""

from __future__ import annotations

import ctypes
import socket
import threading
from collections.abc import Callable

from taskhub.testing.processes import free_port

CLONE_NEWNET = 0x40000000


def in_netns(name: str, call: Callable[[], object]) -> object:
    """``call()`` run in network namespace ``name`` (``ip netns``): a socket it makes lives there.

    A thread of its own enters the namespace (``setns`` moves only the calling thread) and ends."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            with open(f"/var/run/netns/{name}") as namespace:
                if libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {name}")
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class TcpProxy:
    """A TCP relay to ``target`` on a free port, which a test can cut (every connection closed, new
    ones refused, as when the server behind it goes down) and restore on the same port, or silence
    (connections stay open but nothing crosses either way, as when a partition drops the packets).

    It takes a shared server (RabbitMQ) away from one test's processes without touching anyone else's.
    ``netns``: it listens on ``host``:``port`` in that network namespace (the many-hosts bed's db
    host) and reaches ``target`` from this one.
    """

    def __init__(
        self, target: tuple[str, int], *, host: str = "127.0.0.1", port: int | None = None, netns: str = ""
    ) -> None:
        self.target = target
        self.host, self.netns = host, netns
        self.port = port or free_port()
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.silent = False  # silence(): what is read is dropped, nothing is answered
        self.accepted = 0  # connections relayed so far

    def _listen(self) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        return listener

    def start(self) -> TcpProxy:
        listener = in_netns(self.netns, self._listen) if self.netns else self._listen()
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True, name=f"proxy-{self.port}").start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._connections |= {client, upstream}
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.silent:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._connections.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = list(self._connections), set()
        if listener:
            listener.close()
        for sock in connections:
            self._close(sock)

    def silence(self) -> None:
        """Drop everything either side sends from now on, the connections left open: a writer's
        kernel takes its bytes and nothing answers (a partition), until ``speak``."""
        self.silent = True

    def speak(self) -> None:
        self.silent = False

    def close(self) -> None:
        self.cut()
