"""Settings of the cluster, the `[cluster]` section of the TOML file (`classroom serve --redis URL` sets one)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterConfig:
    # empty: one machine, the in-process registry, timed jobs run here as always; a redis:// URL: many nodes
    # share a registry on it and only the holder of the scheduler's job lock runs the timed jobs
    redis_url: str = ""
    node_id: str = ""  # default: [monitoring] node_name (the host name)
    region: str = ""  # where this node serves, for placement
    county: str = ""
    role: str = "origin"  # origin or edge
    capacity: int = 600  # subscriptions this node can carry
    lease_s: float = 15.0  # the job lock's lease: a dead holder's jobs move to another node within about this
    heartbeat_s: float = 5.0  # a node is dropped from the registry after 3 missed heartbeats
    key_prefix: str = "classroom:"  # keys in Redis begin with this (several districts can share a Redis)
    # what nodes show each other's control API (`classroom edge`); empty: the data folder's node-secret file
    node_secret: str = ""
    # the CA certificates (PEM) the control node trusts for the edges' HTTPS control APIs (`classroom edge
    # --tls-cert`); empty: the system's. An edge's API on plain HTTP off this host is warned about: the
    # relay links' keys cross it
    ca_file: str = ""

    def __post_init__(self) -> None:
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")
        if self.role not in ("origin", "edge"):
            raise ValueError("role must be origin or edge")
        if self.lease_s <= 0 or self.heartbeat_s <= 0:
            raise ValueError("lease_s and heartbeat_s must be positive")
        if self.heartbeat_s * 3 > 600 or self.lease_s > 600:
            raise ValueError("lease_s and heartbeat_s are seconds, at most a few minutes")
