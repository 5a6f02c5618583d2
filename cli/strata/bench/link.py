"""A network link for benchmarks: a TCP relay that holds every chunk of bytes for a set time
in each direction before passing it on, so a client on this host sees the round-trip time of
a database on another host.

Why a relay: the kernel's netem qdisc, the usual way to add latency, is not available on every
machine (it is not on the one this project is developed on), while a relay works wherever
TCP does. It runs in a process of its own so its work never holds the client's interpreter;
its cost per round trip is part of what the bench measures and reports as the link's round
trip (a real network has such costs too). Both clients of a comparison use the same link.

That cost is not constant: on a small VM it moved the added round trip between about 450 and
560 µs from one run to the next, and by ±7% within a run, for a delay set once. So the delay
can be changed while the link carries connections (a line on the relay's stdin), and
DelayedLink.calibrate() trims it until the measured round trip is the one asked, and hold()
trims it again, by half the error, whenever the caller measures (the bench does before each
round of its clients).
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import itertools
import json
import os
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
    due. select() takes a timeout in microseconds (epoll only in milliseconds). A line on stdin
    sets a new one-way delay for the bytes read from then on, but never sends bytes before those
    read earlier for the same socket (a shorter delay would otherwise reorder the stream); the
    end of stdin (the parent is gone) ends the relay."""
    _precise_timers()
    control = sys.stdin.fileno()
    pending = b""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    peer: dict[socket.socket, socket.socket] = {}
    due: list[tuple[float, int, socket.socket, bytes]] = []  # (when, order, to, data)
    last_due: dict[socket.socket, float] = {}  # per target: when its latest bytes are sent
    order = itertools.count()
    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        readable, _, _ = select.select([control, listener, *peer], [], [], timeout)
        for sock in readable:
            if sock is control:
                chunk = os.read(control, 4096)
                if not chunk:
                    return
                *lines, pending = (pending + chunk).split(b"\n")
                if lines:
                    one_way = float(lines[-1])
                continue
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
                target = peer[sock]
                when = max(time.monotonic() + one_way, last_due.get(target, 0.0))
                last_due[target] = when
                heapq.heappush(due, (when, next(order), target, data))
            else:  # one side closed: close both, dropping what was still on its way
                other = peer.pop(sock)
                peer.pop(other, None)
                last_due.pop(sock, None)
                last_due.pop(other, None)
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
    is a child process that prints its port and serves until killed or its stdin closes.
    `delay` is the round trip the relay is told to add; `held` lists the added round trips
    hold() measured."""

    def __init__(self, upstream: Upstream, round_trip: float):
        self.upstream = upstream
        self.round_trip = round_trip
        self.delay = round_trip
        self.held: list[float] = []
        self.port: int | None = None
        self._process: subprocess.Popen | None = None

    def start(self) -> int:
        self._process = subprocess.Popen(
            [sys.executable, "-c", "import sys; from strata.bench.link import serve; serve(sys.argv[1:])",
             json.dumps(asdict(self.upstream)), repr(self.delay / 2)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("the bench's network link did not start.")
        self.port = int(line)
        return self.port

    def set_delay(self, delay: float) -> None:
        """Makes the relay add `delay` to each round trip from now on, on every connection."""
        self.delay = max(0.0, delay)
        self._process.stdin.write(f"{self.delay / 2!r}\n")
        self._process.stdin.flush()

    def hold(self, measure_added: Callable[[], float], gain: float = 0.5) -> float:
        """Measures the round trip the link adds now (measure_added(), in seconds), records it
        and moves the delay by `gain` times its error, so the link stays near its round trip
        as the machine's speed, and with it the relay's own cost, changes. Returns what it
        measured. Half the error, not all of it: a single measurement is off by a few percent."""
        added = measure_added()
        self.held.append(added)
        self.set_delay(self.delay - gain * (added - self.round_trip))
        return added

    def stop(self) -> None:
        if self._process is not None:
            process, self._process = self._process, None
            process.kill()
            process.wait(5)
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(OSError):  # a relay that died leaves a broken pipe
                    stream.close()

    def __enter__(self) -> int:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def calibrate(self, measure_added: Callable[[], float], attempts: int = 5) -> None:
        """Trims the delay of this started link until the round trip it adds is its round trip
        within 3% (or for `attempts` tries), so the relay's own cost counts as part of the
        delay asked for. measure_added() times a round trip through the link minus one without
        it, both at the same moment, so the machine's load is in both."""
        for _ in range(attempts):
            error = measure_added() - self.round_trip
            if abs(error) <= 0.03 * self.round_trip or self.delay == 0:
                return
            self.set_delay(self.delay - error)


def serve(argv: list[str]) -> None:
    """The relay process: argv is the upstream as JSON and the one-way delay in seconds."""
    _serve(Upstream(**json.loads(argv[0])), float(argv[1]))
