"""Settings of monitoring: the node's name in metrics, who may scrape `/metrics`, and the figures the
product computes for alerting; the `[monitoring]` section of the TOML file."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

# Loopback and the private ranges: a district's Prometheus runs on its own network. Anything else must
# be listed explicitly (or use `metrics_token`).
PRIVATE_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")


@dataclass(frozen=True)
class MonitoringConfig:
    node_name: str = field(default_factory=socket.gethostname)  # the `node` label of every metric
    metrics_enabled: bool = True  # serve GET /metrics
    # Addresses (CIDR or single) that may scrape /metrics; empty: any address.
    metrics_allow: tuple[str, ...] = PRIVATE_NETWORKS
    # When set, a scrape must also send `Authorization: Bearer <metrics_token>` (Prometheus: `authorization`).
    metrics_token: str = ""
    # the gauges computed for Prometheus's alert rules use the `[alerts]` thresholds (monitoring/alerts.py)
    stale_after_s: float = 10.0  # a room whose stats are older than this is left out of the gauges

    def __post_init__(self) -> None:
        if not self.node_name.strip():
            raise ValueError("node_name must not be empty")
        if self.stale_after_s <= 0:
            raise ValueError("stale_after_s must be positive")
        for entry in self.metrics_allow:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"metrics_allow: {entry!r} is not an address or network") from None
