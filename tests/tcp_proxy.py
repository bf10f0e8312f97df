"""A loopback TCP proxy that lets a test cut the database off and bring it back.

Point a client's settings at ``127.0.0.1:<proxy.port>``; the proxy forwards every connection
to the real server. :meth:`TcpProxy.outage` drops the open connections and refuses new ones,
as a crashed or restarting server would; :meth:`TcpProxy.restore` accepts them again.
The proxy only listens on and connects to loopback addresses, and every thread polls with a
short timeout, so :meth:`TcpProxy.close` ends them all within a bounded time.
"""

from __future__ import annotations

import errno
import ipaddress
import select
import socket
import struct
import threading
import time
from contextlib import suppress
from types import TracebackType

_POLL_SECONDS = 0.05
_CHUNK_BYTES = 64 * 1024
_REBIND_SECONDS = 2.0


class TcpProxy:
    """Forwards ``127.0.0.1:port`` (an ephemeral port) to ``target_host:target_port``.

    Args:
        target_host: The server's host; must resolve to a loopback address.
        target_port: The server's port.
        max_connections: Connections served at once; more are closed on arrival.
        io_timeout: Seconds a send to either side may block before the connection is dropped.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        max_connections: int = 32,
        io_timeout: float = 5.0,
    ) -> None:
        address = ipaddress.ip_address(socket.gethostbyname(target_host))
        if not address.is_loopback:
            raise ValueError(f"the proxy forwards to loopback only, not to {target_host}")
        self._target = (str(address), target_port)
        self._max_connections = max_connections
        self._io_timeout = io_timeout
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pipes: set[_Pipe] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        listener = _listen(0)
        self.port: int = listener.getsockname()[1]
        self._listener: socket.socket | None = listener
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True
        )
        self._acceptor.start()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._pipes)

    def outage(self) -> None:
        """Drop every open connection and refuse new ones until :meth:`restore`."""
        with self._lock:
            listener, self._listener = self._listener, None
            pipes = list(self._pipes)
        if listener is not None:
            _stop_listening(listener)
        for pipe in pipes:
            pipe.cut()

    def restore(self) -> None:
        """Accept connections again on the same port."""
        if self._closed.is_set():
            raise RuntimeError("the proxy is closed")
        deadline = time.monotonic() + _REBIND_SECONDS
        while True:
            try:
                listener = _listen(self.port)
                break
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(_POLL_SECONDS)
        with self._lock:
            if self._listener is None:
                self._listener = listener
                return
        listener.close()

    def close(self) -> None:
        """Stop listening, drop every connection and wait for the proxy's threads."""
        self._closed.set()
        self.outage()
        self._acceptor.join(timeout=5)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self._closed.wait(_POLL_SECONDS)
                continue
            try:
                readable, _, _ = select.select([listener], [], [], _POLL_SECONDS)
                if not readable:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):  # the listener was shut by outage() or close()
                continue
            self._serve(listener, client)

    def _serve(self, listener: socket.socket, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=self._io_timeout)
        except OSError:
            _reset(client)
            return
        pipe = _Pipe(client, upstream, self._io_timeout)
        thread = threading.Thread(
            target=self._pump, args=(pipe,), name=f"tcp-proxy-{self.port}-pipe", daemon=True
        )
        with self._lock:
            # An outage() or close() that began while we connected upstream wins.
            admitted = (
                self._listener is listener
                and not self._closed.is_set()
                and len(self._pipes) < self._max_connections
            )
            if admitted:
                self.accepted += 1
                self._pipes.add(pipe)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
        if admitted:
            thread.start()
        else:
            pipe.cut()
            pipe.close()

    def _pump(self, pipe: _Pipe) -> None:
        try:
            pipe.run(self._closed)
        finally:
            pipe.close()
            with self._lock:
                self._pipes.discard(pipe)


class _Pipe:
    """One client connection and its upstream twin."""

    def __init__(self, client: socket.socket, upstream: socket.socket, io_timeout: float) -> None:
        for sock in (client, upstream):
            sock.settimeout(io_timeout)
        self._peer = {client: upstream, upstream: client}
        self._cut = threading.Event()

    def run(self, closed: threading.Event) -> None:
        sockets = list(self._peer)
        while not (self._cut.is_set() or closed.is_set()):
            try:
                readable, _, _ = select.select(sockets, [], [], _POLL_SECONDS)
                for sock in readable:
                    data = sock.recv(_CHUNK_BYTES)
                    if not data:
                        return
                    self._peer[sock].sendall(data)
            except (OSError, ValueError):
                return

    def cut(self) -> None:
        """End both directions now; the peers see the connection close."""
        self._cut.set()
        for sock in self._peer:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self._peer:
            sock.close()


def _listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(16)
    except OSError:
        listener.close()
        raise
    return listener


def _stop_listening(listener: socket.socket) -> None:
    # shutdown() takes the socket out of LISTEN at once (new connects are refused) and
    # wakes an accept loop blocked on it, which close() alone does not.
    with suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    listener.close()


def _reset(sock: socket.socket) -> None:
    with suppress(OSError):
        # linger on, 0 s: close() sends a reset, so the client fails at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
