"""A loopback TCP proxy that lets a test cut the database off and bring it back.

Point a client's settings at ``127.0.0.1:<proxy.port>``; the proxy forwards every connection
to the real server. :meth:`TcpProxy.outage` drops the open connections and refuses new ones,
as a crashed or restarting server would; :meth:`TcpProxy.restore` accepts them again.

The forwarding threads run in a child process: the connector's C extension holds the GIL
in some blocking calls (``autocommit``, ``commit``), which would starve proxy threads living
in the test's own process and deadlock both. The child listens on and connects to loopback
addresses only, ends when told to, when the test process goes away (its stdin closes) or
after ``max_seconds``, whichever comes first.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from contextlib import suppress
from types import TracebackType

_POLL_SECONDS = 0.05
_CHUNK_BYTES = 64 * 1024
_REBIND_SECONDS = 2.0
_REPLY_SECONDS = 10.0


class TcpProxy:
    """Forwards ``127.0.0.1:port`` (an ephemeral port) to ``target_host:target_port``.

    Args:
        target_host: The server's host; must resolve to a loopback address.
        target_port: The server's port.
        max_seconds: The proxy process ends after this long whatever happens.

    Raises:
        ValueError: ``target_host`` is not a loopback address.
    """

    def __init__(self, target_host: str, target_port: int, *, max_seconds: float = 600) -> None:
        target = _loopback(target_host)
        self._process = subprocess.Popen(
            [sys.executable, __file__, target, str(target_port), "--max-seconds", str(max_seconds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            self.port = int(self._reply())
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def outage(self) -> None:
        """Drop every open connection and refuse new ones until :meth:`restore`."""
        self._command("outage")

    def restore(self) -> None:
        """Accept connections again on the same port."""
        self._command("restore")

    def connections_accepted(self) -> int:
        """Connections forwarded so far."""
        return int(self._command("accepted"))

    def close(self) -> None:
        """Stop the proxy process, dropping every connection."""
        if self._process.poll() is None:
            with suppress(OSError):
                assert self._process.stdin is not None
                self._process.stdin.close()
            try:
                self._process.wait(timeout=_REPLY_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=_REPLY_SECONDS)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def _command(self, name: str) -> str:
        assert self._process.stdin is not None
        self._process.stdin.write(f"{name}\n".encode())
        self._process.stdin.flush()
        return self._reply()

    def _reply(self) -> str:
        stdout = self._process.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], _REPLY_SECONDS)
        line = stdout.readline().decode().strip() if ready else ""
        if not line or line.startswith("error"):
            raise RuntimeError(f"the proxy process did not answer ({line or 'no reply'})")
        return line


class _Forwarder:
    """The threaded proxy itself: an accept loop and one thread per connection."""

    def __init__(self, target: tuple[str, int], max_connections: int = 32) -> None:
        self._target = target
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._pipes: set[_Pipe] = set()
        self._threads: list[threading.Thread] = []
        self.accepted = 0
        listener = _listen(0)
        self.port: int = listener.getsockname()[1]
        self._listener: socket.socket | None = listener
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    def outage(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            pipes = list(self._pipes)
        if listener is not None:
            # shutdown() takes the socket out of LISTEN at once (new connects are refused)
            # and wakes the accept loop, which close() alone does not.
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for pipe in pipes:
            pipe.cut()

    def restore(self) -> None:
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
            except (OSError, ValueError):  # outage() shut the listener under us
                continue
            self._serve(listener, client)

    def _serve(self, listener: socket.socket, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self._target, timeout=5)
        except OSError:
            _reset(client)
            return
        pipe = _Pipe(client, upstream)
        thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        with self._lock:
            # An outage() that began while we connected upstream wins.
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

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        for sock in (client, upstream):
            sock.settimeout(5)
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
        """End both directions now; both peers see the connection close."""
        self._cut.set()
        for sock in self._peer:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for sock in self._peer:
            sock.close()


def _loopback(host: str) -> str:
    address = ipaddress.ip_address(socket.gethostbyname(host))
    if not address.is_loopback:
        raise ValueError(f"the proxy forwards to loopback addresses only, not to {host}")
    return str(address)


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


def _reset(sock: socket.socket) -> None:
    with suppress(OSError):
        # linger on, 0 s: close() sends a reset, so the client fails at once
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    forwarder = _Forwarder((_loopback(args.host), args.port))
    deadline = time.monotonic() + args.max_seconds
    commands = {"outage": forwarder.outage, "restore": forwarder.restore}
    _answer(str(forwarder.port))
    try:
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([sys.stdin], [], [], min(left, 1.0))
            if not ready:
                continue
            command = sys.stdin.readline().strip()
            if not command or command == "close":
                break
            if command == "accepted":
                _answer(str(forwarder.accepted))
            elif command in commands:
                try:
                    commands[command]()
                except OSError as exc:
                    _answer(f"error {exc}")
                else:
                    _answer("ok")
            else:
                _answer(f"error unknown command {command!r}")
    finally:
        forwarder.close()


def _answer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
