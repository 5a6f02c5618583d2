"""A network link for benchmarks: a TCP relay that holds every chunk of bytes for a fixed time
in each direction before passing it on, so a client on this host sees the round-trip time of
a database on another host.

Why a relay: the kernel's netem qdisc, the usual way to add latency, is not available on every
machine (it is not on the one this project is developed on), while a relay works wherever
TCP does. It runs in a process of its own so its work never holds the client's interpreter;
its cost per round trip is part of what the bench measures and reports as the link's round
trip (a real network has such costs too). Both clients of a comparison use the same link, and
DelayedLink.calibrate() trims the added delay until the measured round trip is the one asked.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import psycopg


@dataclass(frozen=True)
class Upstream:
    """Where the relay connects: a TCP host and port, or a Unix socket path."""
    host: str | None = None
    port: int | None = None
    unix_path: str | None = None

    @classmethod
    def of(cls, url: str) -> Upstream:
        """Where the server of a libpq URL listens (its first host)."""
        info = psycopg.conninfo.conninfo_to_dict(url)
        host = (info.get("hostaddr") or info.get("host") or "/var/run/postgresql").split(",")[0]
        port = int(str(info.get("port") or 5432).split(",")[0])
        if host.startswith("/"):
            return cls(unix_path=f"{host}/.s.PGSQL.{port}")
        return cls(host=host, port=port)

    def connect(self) -> socket.socket:
        if self.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.unix_path)
            return sock
        sock = socket.create_connection((self.host, self.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _precise_timers() -> None:
    """Asks Linux for exact wake-ups (timer slack 1 ns instead of 50 µs), where it can."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


def _serve(upstream: Upstream, one_way: float) -> None:
    """One thread, one select() loop: bytes read from either side wait in a heap until they are
    due. select() takes a timeout in microseconds (epoll only in milliseconds)."""
    _precise_timers()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    peer: dict[socket.socket, socket.socket] = {}
    due: list[tuple[float, int, socket.socket, bytes]] = []  # (when, order, to, data)
    order = itertools.count()
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select([listener, *peer], [], [], timeout)
        for sock in readable:
            if sock is listener:
                client, _ = listener.accept()
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    server = upstream.connect()
                except OSError:
                    client.close()
                    continue
                peer[client], peer[server] = server, client
                continue
            try:
                data = sock.recv(262144)
            except OSError:
                data = b""
            if data:
                heapq.heappush(due, (time.monotonic() + one_way, next(order), peer[sock], data))
            else:  # one side closed: close both, dropping what was still on its way
                other = peer.pop(sock)
                peer.pop(other, None)
                due = [item for item in due if item[2] is not sock and item[2] is not other]
                heapq.heapify(due)
                sock.close()
                other.close()
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, target, data = heapq.heappop(due)
            try:
                target.sendall(data)
            except OSError:
                pass


def url_through(url: str, port: int) -> str:
    """The same database as url, reached through a DelayedLink listening on port."""
    return psycopg.conninfo.make_conninfo(url, host="127.0.0.1", hostaddr="", port=str(port))


class DelayedLink:
    """A relay from 127.0.0.1:port to the upstream server, adding half the round trip in each
    direction: `with DelayedLink(upstream, 0.0005) as port:`, or start() and stop(). The relay
    is a child process that prints its port and serves until killed."""

    def __init__(self, upstream: Upstream, round_trip: float):
        self.upstream = upstream
        self.round_trip = round_trip
        self.port: int | None = None
        self._process: subprocess.Popen | None = None

    def start(self) -> int:
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from strata.bench.link import serve; serve(sys.argv[1:])",
             json.dumps(asdict(self.upstream)), repr(self.round_trip / 2)],
            stdout=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the bench's network link did not start.")
        self.port = int(line)
        return self.port

    def stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(5)
            self._process.stdout.close()
            self._process = None

    def __enter__(self) -> int:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @classmethod
    def calibrated(cls, upstream: Upstream, round_trip: float, measure: Callable[[int | None], float]) -> DelayedLink:
        """A started link whose round trip is `round_trip` longer than a direct one (within 3%),
        so the relay's own cost counts as part of the delay asked for. measure(port) times one
        round trip through the link on that port, measure(None) one without it; both are taken
        at each attempt, so the machine's load at that moment is in both. Stop it when done."""
        delay = round_trip
        for attempt in range(5):
            link = cls(upstream, delay)
            port = link.start()
            try:
                error = measure(port) - measure(None) - round_trip
            except BaseException:
                link.stop()
                raise
            if abs(error) <= 0.03 * round_trip or attempt == 4 or delay == 0:
                return link
            link.stop()
            delay = max(0.0, delay - error)
        raise AssertionError("unreachable")


def serve(argv: list[str]) -> None:
    """The relay process: argv is the upstream as JSON and the one-way delay in seconds."""
    _serve(Upstream(**json.loads(argv[0])), float(argv[1]))
