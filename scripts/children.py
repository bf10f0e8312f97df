"""The demo's child processes: started in their own process groups, stopped in reverse order.

Each child runs in a session of its own, so a Ctrl-C at the terminal reaches the demo only,
and the demo stops its children in its own order: SIGTERM to the child, a wait while it
finishes its step (the poller's run, the streaming query's micro-batch and the JVM's
shutdown), then SIGTERM and at last SIGKILL to whatever is left of its process group, so no
JVM or Python worker outlives the demo.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

# How long a child may take to stop after SIGTERM before its whole group is signalled.
STOP_SECONDS = 60.0
# After SIGTERM to the group, before SIGKILL.
KILL_SECONDS = 10.0


class ChildFailed(RuntimeError):
    """A child process exited while the demo still needed it."""


@dataclass
class Child:
    """One started child: its process, its name and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check_success(self) -> None:
        """Raise :class:`ChildFailed` if the child ended with an error."""
        if self.process.poll() not in (None, 0):
            self.check()

    def check(self) -> None:
        """Raise :class:`ChildFailed` if the child has exited."""
        code = self.process.poll()
        if code is not None:
            raise ChildFailed(
                f"{self.name} exited with status {code}; the end of {self.log}:\n" + self.log_tail()
            )


def group_alive(pgid: int) -> bool:
    """Whether any process of process group ``pgid`` is left."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _wait_group(pgid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop_child(child: Child, seconds: float = STOP_SECONDS) -> int | None:
    """Stop ``child`` and everything in its process group; return its exit status.

    SIGTERM to the child first, so it stops its own children in order (the streaming job
    stops its query and then the JVM); what is left of the group after ``seconds`` gets
    SIGTERM, and SIGKILL after :data:`KILL_SECONDS`.
    """
    if child.alive():
        child.process.send_signal(signal.SIGTERM)
    return reap(child, time.monotonic() + seconds)


def reap(child: Child, deadline: float) -> int | None:
    """Wait until ``deadline`` for a child sent SIGTERM, then clear its process group."""
    pgid = child.pid  # each child leads its own session and process group
    with suppress(subprocess.TimeoutExpired):
        child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    # The child's own children (a JVM) get a moment to follow it out.
    if not _wait_group(pgid, 5.0 if child.process.poll() is not None else 0.0):
        _signal_group(pgid, signal.SIGTERM)
        if not _wait_group(pgid, KILL_SECONDS):
            _signal_group(pgid, signal.SIGKILL)
            _wait_group(pgid, KILL_SECONDS)
    try:
        return child.process.wait(timeout=KILL_SECONDS)
    except subprocess.TimeoutExpired:
        return None


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


@dataclass
class Children:
    """The children started so far."""

    cwd: Path
    log_dir: Path
    started: list[Child] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> Child:
        """Start ``python <args>`` in a session of its own, its output in ``<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, *args],
                cwd=self.cwd,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log)
        self.started.append(child)
        return child

    def finish(self, child: Child) -> None:
        """Wait for a one-shot ``child`` to end; raise :class:`ChildFailed` unless it ends
        well. Meanwhile, the other children must keep running."""
        while child.process.poll() is None:
            for other in self.started:
                if other is not child:
                    other.check()
            time.sleep(0.5)
        child.check_success()
        self.started.remove(child)

    def check(self) -> None:
        """Raise :class:`ChildFailed` for the first child that has exited."""
        for child in self.started:
            child.check()

    def stop_all(self, seconds: float = STOP_SECONDS) -> dict[str, int | None]:
        """Stop every child; their exit statuses by name.

        All get SIGTERM at once, the last started first (the ingest service before the
        query that scores its rows), so their shutdowns overlap; each then has until the
        same deadline before its process group is cleared.
        """
        stopping = list(reversed(self.started))
        for child in stopping:
            if child.alive():
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + seconds
        statuses = {child.name: reap(child, deadline) for child in stopping}
        self.started.clear()
        return statuses


class Interrupted(KeyboardInterrupt):
    """SIGTERM reached the demo: it stops like on Ctrl-C."""


@contextmanager
def supervised(cwd: Path, log_dir: Path) -> Iterator[Children]:
    """Children that are stopped however the block ends: normally, on an error, on Ctrl-C
    or on SIGTERM. While they stop, further Ctrl-Cs are ignored so the stop completes."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    children = Children(cwd, log_dir)
    try:
        yield children
    finally:
        interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            if children.started:
                names = ", ".join(c.name for c in reversed(children.started))
                print(f"\n==> Stopping {names}", flush=True)
            for name, status in children.stop_all().items():
                if status not in (0, -signal.SIGTERM, None):
                    print(f"  {name} exited with status {status}", flush=True)
                elif status is None:
                    print(f"  {name} did not exit; killed", flush=True)
        finally:
            signal.signal(signal.SIGINT, interrupt)
            signal.signal(signal.SIGTERM, previous)
