"""The control pipe between the benchmark's orchestrator and each of its child processes.

Messages are `(command, payload)` tuples. The orchestrator side is synchronous and every wait is
bounded; the child side is an asyncio reader on the pipe. A child whose pipe closes (orchestrator
gone) sees a `quit` command, so no child outlives the benchmark by more than its own shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

Message = tuple[str, dict[str, Any]]


class ChildLink:
    """The child's end: `await recv()` for commands, `send()` for replies."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        try:
            while self._conn.poll():
                cmd, payload = self._conn.recv()
                self._queue.put_nowait((str(cmd), dict(payload)))
        except (EOFError, OSError, ValueError):
            self._loop.remove_reader(self._conn.fileno())
            self._queue.put_nowait(("quit", {}))

    async def recv(self) -> Message:
        return await self._queue.get()

    def send(self, cmd: str, **payload: Any) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._conn.send((cmd, payload))

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(self._conn.fileno())


def run_child(conn: Connection, body: Callable[[ChildLink], Awaitable[None]]) -> None:
    """A child process's life: `body` on its end of the pipe; an exception goes back as `error`."""

    async def run() -> None:
        link = ChildLink(conn)
        try:
            await body(link)
        except Exception:
            link.send("error", message=traceback.format_exc(limit=8))
        finally:
            link.close()

    asyncio.run(run())


class ChildHandle:
    """The orchestrator's end of one child process."""

    def __init__(self, name: str, process: BaseProcess, conn: Connection) -> None:
        self.name = name
        self.process = process
        self.conn = conn
        self.known_descendants: dict[int, int] = {}  # pid -> start time, seen while running

    def remember_descendants(self) -> list[int]:
        """Note the processes below this child now, so they can be stopped even if it dies first."""
        pids = descendants(self.pid)
        for pid in pids:
            start = start_time(pid)
            if start is not None:
                self.known_descendants[pid] = start
        return pids

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def send(self, cmd: str, **payload: Any) -> None:
        self.conn.send((cmd, payload))

    def expect(self, want: str, timeout: float) -> dict[str, Any]:
        """Wait (bounded) for the reply `want`; a child's `error` reply or death raises."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no {want!r} within {timeout:.0f} s")
            if self.conn.poll(min(left, 0.5)):
                try:
                    cmd, payload = self.conn.recv()
                except EOFError as exc:
                    raise RuntimeError(f"{self.name} exited (code {self.process.exitcode})") from exc
                if cmd == want:
                    return dict(payload)
                if cmd == "error":
                    raise RuntimeError(f"{self.name}: {payload.get('message')}")
            elif not self.process.is_alive():
                raise RuntimeError(f"{self.name} exited (code {self.process.exitcode})")

    def request(self, cmd: str, want: str, timeout: float, **payload: Any) -> dict[str, Any]:
        self.send(cmd, **payload)
        return self.expect(want, timeout)


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children...), read from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_children(children: list[ChildHandle], grace: float = 5.0) -> None:
    """Ask every child to quit, then terminate and kill what is left (with their own descendants)."""
    for child in children:
        with contextlib.suppress(BrokenPipeError, OSError):
            child.send("quit")
    deadline = time.monotonic() + grace
    for child in children:
        child.process.join(max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.process.is_alive():
            below = descendants(child.pid)
            child.process.terminate()
            child.process.join(2.0)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(2.0)
            for pid in below:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for pid, started in child.known_descendants.items():
            if start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            child.conn.close()
