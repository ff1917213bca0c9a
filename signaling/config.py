"""Settings of the web front: TLS, token lifetimes, rate limits; the `[signaling]` section of the TOML file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SignalingConfig:
    # HTTPS/WSS: a PEM certificate chain and key. Empty: plain HTTP unless `serve --tls-self-signed`.
    tls_cert: str = ""
    tls_key: str = ""
    # The address people type, used in enrolment links and QR codes; empty: taken from each request.
    public_url: str = ""
    session_hours: float = 12.0  # a teacher's or administrator's login
    enrolment_days: int = 365  # an enrolment link (one school year)
    device_days: int = 400  # a classroom PC's device token, renewed at each enrolment
    # Per client address; a school behind one NAT address shares these, hence generous joins.
    login_per_minute: float = 10.0
    login_burst: int = 5
    # Per account (username), whatever the address: failed logins only, so guessing from many addresses
    # stops while the owner's correct logins are not counted.
    login_failures_per_account_per_minute: float = 5.0
    login_failures_per_account_burst: int = 10
    join_per_minute: float = 120.0
    join_burst: int = 60
    rate_limit_addresses: int = 10000  # addresses remembered by the rate limiter (oldest forgotten)
    ws_max_message_bytes: int = 256 * 1024  # an SDP offer with many codecs stays well under this
    ws_max_sessions: int = 5000
    # Sockets that have not joined yet (they are closed after 20 s anyway): per client address and in all,
    # so reconnecting floods cannot fill `ws_max_sessions`; and all sockets of one address (a school NAT).
    ws_max_unjoined_per_address: int = 50
    ws_max_unjoined: int = 1000
    ws_max_per_address: int = 1000
    ws_idle_timeout_s: float = 60.0  # no message (pings included) for this long closes a socket
    stats_interval_s: float = 1.0  # how often room stats feed quality displays, liveness and evidence
    # how often the attendance timeline (and the evidence totals it gives) is written: what a kill -9 may lose
    evidence_interval_s: float = 2.0
    hsts: bool = True  # Strict-Transport-Security when serving HTTPS

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        for name in ("session_hours", "login_per_minute", "join_per_minute", "stats_interval_s", "evidence_interval_s",
                     "login_failures_per_account_per_minute", "ws_max_unjoined_per_address", "ws_max_unjoined",
                     "ws_max_per_address"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.login_burst < 1 or self.join_burst < 1 or self.login_failures_per_account_burst < 1:
            raise ValueError("bursts must be at least 1")
