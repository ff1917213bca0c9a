"""A real redis-server on a free loopback port, its data folder in the test's tmp_path, stopped after."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port


@dataclass
class RedisProcess:
    """`redis-server` without persistence; `stop()` and `start()` again on the same port (an outage)."""

    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    bind: tuple[str, ...] = ("127.0.0.1",)  # more addresses for nodes on other test hosts
    password: str = ""  # `requirepass`: what a Redis that other hosts reach needs

    def url_at(self, address: str) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{address}:{self.port}/0"

    @property
    def url(self) -> str:
        return self.url_at("127.0.0.1")

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install -y redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - the process keeps it
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", *self.bind, "--save", "", "--appendonly", "no",
             "--dir", str(self.data_dir), "--daemonize", "no", "--protected-mode", "yes",
             *(("--requirepass", self.password) if self.password else ())],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited with {self.proc.returncode}: "
                            + (self.data_dir / "redis.log").read_text(errors="replace"))
            if self.ping():
                return
            time.sleep(0.05)
        pytest.fail(f"redis-server did not answer PING on port {self.port} in {timeout}s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                if self.password:
                    s.sendall(f"AUTH {self.password}\r\n".encode())
                    if not s.recv(16).startswith(b"+OK"):
                        return False
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(free_port(), tmp_path / "redis")
    server.start()
    yield server
    server.stop()
