"""Test hosts on their own network, for tests and benchmarks: a namespace joined to ours by a veth pair.

The suite runs in a namespace of its own with only loopback (scripts/test-all); a `Host` adds one more,
made by this test run and removed after it, so that a classroom PC can "pull its cable"
(`ip link set ... down`) while the server and the other classrooms stay connected. Addresses are the
test's own, inside those namespaces: nothing leaves the machine.
"""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)


class Host:
    """One namespace with address `theirs`, reached from here at `ours` over the veth `name`; or, with
    `bridge`, one host more on that bridge's network (`Network`), its veth a port of the bridge."""

    def __init__(self, name: str, ours: str, theirs: str, prefix: int = 30, bridge: str | None = None) -> None:
        for tool in ("ip", "unshare", "nsenter"):
            assert shutil.which(tool), f"{tool} is missing: apt-get install iproute2 util-linux"
        self.name, self.ours, self.theirs = name, ours, theirs
        # the namespace lives as long as this process does (unshare execs sleep inside it)
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "3600"])
        self.netns = f"/proc/{self.holder.pid}/ns/net"
        peer = f"{name}p"
        _run("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", str(self.holder.pid))
        if bridge is None:
            _run("ip", "addr", "add", f"{ours}/{prefix}", "dev", name)
        else:
            _run("ip", "link", "set", name, "master", bridge)
        _run("ip", "link", "set", name, "up")
        self.inside("ip", "link", "set", "lo", "up")
        self.inside("ip", "addr", "add", f"{theirs}/{prefix}", "dev", peer)
        self.inside("ip", "link", "set", peer, "up")

    @property
    def enter(self) -> tuple[str, ...]:
        """The words that run a command inside this host: `[*host.enter, program, ...]`."""
        return ("nsenter", f"--net={self.netns}")

    def inside(self, *cmd: str) -> None:
        _run(*self.enter, *cmd)

    def wrapper(self, folder: Path, program: str) -> Path:
        """An executable that runs `program` inside this host (for Playwright's executable_path)."""
        path = folder / f"{self.name}-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec {" ".join(self.enter)} {program} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return path

    def cut(self) -> None:
        _run("ip", "link", "set", self.name, "down")

    def restore(self) -> None:
        _run("ip", "link", "set", self.name, "up")

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.name], capture_output=True, timeout=20)
        self.holder.kill()
        self.holder.wait(10)


class Network:
    """A LAN of test hosts: a bridge here with address `ours`, and `Host`s joined to it (`add`), each with
    an address of the same subnet, so that every host reaches every other and this namespace (a district's
    network: its control node here, an edge per county machine room)."""

    def __init__(self, name: str, ours: str, prefix: int = 24) -> None:
        assert shutil.which("ip"), "ip is missing: apt-get install iproute2"
        self.name, self.ours, self.prefix = name, ours, prefix
        self.hosts: list[Host] = []
        _run("ip", "link", "add", name, "type", "bridge")
        _run("ip", "addr", "add", f"{ours}/{prefix}", "dev", name)
        _run("ip", "link", "set", name, "up")

    def add(self, name: str, theirs: str) -> Host:
        host = Host(name, self.ours, theirs, self.prefix, bridge=self.name)
        self.hosts.append(host)
        return host

    def close(self) -> None:
        for host in self.hosts:
            host.close()
        subprocess.run(["ip", "link", "del", self.name], capture_output=True, timeout=20)


def isolated() -> bool:
    """True inside a network namespace that has nothing but loopback and our own veths (the suite's)."""
    # /sys/class/net shows the namespace sysfs was mounted in, so ask ip, which asks this namespace
    out = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True, timeout=10).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return all(n == "lo" or n.startswith("lcv") for n in names)
