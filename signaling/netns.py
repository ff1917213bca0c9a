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
    """One namespace with address `theirs`, reached from here at `ours` over the veth `name`."""

    def __init__(self, name: str, ours: str, theirs: str, prefix: int = 30) -> None:
        for tool in ("ip", "unshare", "nsenter"):
            assert shutil.which(tool), f"{tool} is missing: apt-get install iproute2 util-linux"
        self.name, self.ours, self.theirs = name, ours, theirs
        # the namespace lives as long as this process does (unshare execs sleep inside it)
        self.holder = subprocess.Popen(["unshare", "-n", "sleep", "3600"])
        self.netns = f"/proc/{self.holder.pid}/ns/net"
        peer = f"{name}p"
        _run("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        _run("ip", "link", "set", peer, "netns", str(self.holder.pid))
        _run("ip", "addr", "add", f"{ours}/{prefix}", "dev", name)
        _run("ip", "link", "set", name, "up")
        self.inside("ip", "link", "set", "lo", "up")
        self.inside("ip", "addr", "add", f"{theirs}/{prefix}", "dev", peer)
        self.inside("ip", "link", "set", peer, "up")

    def inside(self, *cmd: str) -> None:
        _run("nsenter", f"--net={self.netns}", *cmd)

    def wrapper(self, folder: Path, program: str) -> Path:
        """An executable that runs `program` inside this host (for Playwright's executable_path)."""
        path = folder / f"{self.name}-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec nsenter --net={self.netns} {program} "$@"\n')
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


def isolated() -> bool:
    """True inside a network namespace that has nothing but loopback and our own veths (the suite's)."""
    # /sys/class/net shows the namespace sysfs was mounted in, so ask ip, which asks this namespace
    out = subprocess.run(["ip", "-o", "link", "show"], check=True, capture_output=True, text=True, timeout=10).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line}
    return all(n == "lo" or n.startswith("lcv") for n in names)
