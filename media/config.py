"""Settings of the media plane, filled by the program's TOML loader from the `[media]` section."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from media.api import MediaError

CAPACITY_REASON = "media capacity reached"


class MediaCapacityError(MediaError):
    """A join refused because the worker carries its configured number of subscriptions.

    `code` is what the signaling layer shows a client ("media_capacity"); the message starts with
    `CAPACITY_REASON`, so code that only reads the text can tell it apart as well.
    """

    code = "media_capacity"


@dataclass(frozen=True, slots=True)
class MediaConfig:
    # ICE host addresses written into answers. A server behind 1:1 NAT lists its public address
    # (it binds 0.0.0.0 and announces the address); tests list 127.0.0.1, which aioice would
    # otherwise leave out. Empty: every non-loopback interface address, as aioice gathers them.
    announced_addresses: tuple[str, ...] = ()
    # UDP ports the SFU binds for ICE, so a firewall can open exactly this range.
    udp_port_min: int = 40000
    udp_port_max: int = 40999
    # Send a subscriber's share of one received batch (a video frame's packets) in one system call per
    # run of equal-size datagrams (Linux UDP segmentation offload). Falls back to one call per packet
    # by itself where a socket or route refuses it; false turns it off.
    udp_gso: bool = True
    # Worker processes that own rooms; 0 means one per CPU core.
    workers: int = 0
    # Where the relay links between workers bind their UDP sockets (media/relay.py): a lesson that
    # outgrows its worker is carried on by copies of its room in other workers. Loopback on one box.
    relay_address: str = "127.0.0.1"
    # Handed to browsers so they can find a path through NAT; the SFU itself announces its address.
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_username: str = ""
    turn_password: str = ""
    # Keyframe requests (PLI, or FIR where the publisher only offers that) to one publisher track are
    # coalesced across subscribers and sent at most once per this many seconds.
    keyframe_request_interval: float = 0.2
    # A keyframe costs a burst of packets to every subscriber of the track. The interval grows beyond
    # `keyframe_request_interval` when requested keyframes would take more than this share of one
    # core (the measured fan-out time of a packet times the packets of the last keyframe), up to
    # `keyframe_request_max_interval` seconds: a join storm of hundreds cannot starve the loop.
    keyframe_cpu_budget: float = 0.25
    keyframe_request_max_interval: float = 1.0
    # A subscriber still held for a keyframe after this long asks again (the request may be lost).
    keyframe_retry_interval: float = 1.0
    # A subscriber that is already playing a track and sends PLI/FIR (its decoder lost the picture)
    # gets a keyframe asked for at most this often per track, whoever asks (as LiveKit throttles
    # PLIs): a few hostile subscribers cannot make the lead's encoder send keyframes several times a
    # second, each a burst to everyone and a blow to the picture's quality.
    subscriber_keyframe_interval: float = 0.5
    # ... and backs off while they keep asking: each request served within the current interval of
    # the one before doubles the interval, up to this many seconds; a track whose playing subscribers
    # stayed quiet for a whole interval starts again from `subscriber_keyframe_interval`. A request
    # that arrives inside the interval is not lost: it is served when the interval ends, or by any
    # keyframe that comes before. Slots held for a first keyframe, talk-back switches and the lead's
    # own requests are not subject to it (LiveKit throttles PLIs per track the same way).
    subscriber_keyframe_max_interval: float = 4.0
    # Packets kept per published track to answer subscribers' NACKs (a power of two).
    send_history_packets: int = 1024
    # Upstream NACKs for a missing inbound packet: how often and how many times to ask.
    nack_retry_interval: float = 0.03
    nack_max_retries: int = 4
    # Gaps larger than this are a stream jump (publisher restart), not loss.
    nack_max_gap: int = 256
    # Retransmit on RTX where the subscriber negotiated it, else resend on the media SSRC.
    use_rtx: bool = True
    # Retransmission budget of one slot: this share of the bytes it forwards (as libwebrtc's pacer
    # caps retransmissions), plus a floor of `retransmit_floor_bps`, at most `retransmit_burst` bytes
    # saved up. NACKed packets beyond it are counted (`over_budget`), not sent.
    retransmit_share: float = 0.5
    retransmit_floor_bps: int = 64_000
    retransmit_burst: int = 64 * 1024
    # Retransmissions per second one room may make in all (its share of the worker: one room's
    # NACK storm cannot take the core from the worker's other rooms).
    room_retransmissions_per_second: float = 10_000.0
    # Retransmissions per second one worker process (or the in-process plane) makes in all, shared
    # equally among its rooms that retransmitted within the last second; a room that needs none
    # leaves its share to the others. One room's hostile subscribers can take at most their room's
    # share from the worker's other rooms.
    worker_retransmissions_per_second: float = 10_000.0
    # SRTP/SRTCP admission per participant, checked where a datagram is read from the socket (before
    # aioice, aiortc and SRTP decryption see it): at most this many RTCP datagrams a second (burst
    # `rtcp_datagrams_burst`), and none from an address other than the participant's selected ICE
    # pair. Dropped datagrams are counted (`rtcp_rate_limited`, `wrong_address_datagrams`).
    rtcp_datagrams_per_second: float = 200.0
    rtcp_datagrams_burst: float = 400.0
    # A participant at least `rtcp_useless_min` of whose RTCP datagrams in a report interval, and at
    # least a third, achieved nothing (junk, NACKs refused for rate or budget, reports for SSRCs it does
    # not have) gets its datagram rate halved at each interval, down to this floor (its receiver
    # reports still fit; straight to it when two thirds or more achieved nothing); it doubles back at
    # each interval it stays within that rate
    # (`rtcp_penalties` counts the cuts).
    rtcp_datagrams_floor: float = 25.0
    rtcp_useless_min: int = 50
    # RTCP feedback one participant may send: NACK packets and keyframe requests (PLI/FIR) per
    # second (bursts of twice that); beyond it they are counted as `rate_limited` and ignored.
    nack_packets_per_second: float = 100.0
    keyframe_requests_per_second: float = 5.0
    # A participant whose packets keep failing (handler exceptions, SRTP refusals, rate-limited or
    # malformed packets) more than `misbehaving_errors` times within `misbehaving_window` seconds is
    # dropped with reason "misbehaving"; 0 turns this off.
    misbehaving_errors: int = 2000
    misbehaving_window: float = 10.0
    # Estimate sent to publishers in REMB so browsers ramp up to lesson quality.
    publisher_max_bitrate: int = 2_500_000
    # Sender/receiver reports and liveness checks run this often (seconds).
    report_interval: float = 1.0
    # A participant whose ICE/DTLS does not complete in this time, or that sends no RTCP for
    # `peer_timeout` seconds once connected, is dropped and its resources freed.
    connect_timeout: float = 20.0
    peer_timeout: float = 8.0
    # A published track that sends nothing for this long is off air (PUBLISHER_DOWN, reason "idle")
    # until its next packet (PUBLISHER_UP again): a lead whose link drops shows as interrupted on every
    # classroom screen within about a second, not when ICE gives up. Cameras and microphones send
    # continuously; courseware of a still slide may pause for longer, hence its own, longer timeout
    # (pages also say outright when they stop sharing: the `publishing` message, docs/protocol.md).
    track_idle_timeout: float = 1.0
    screen_idle_timeout: float = 4.0
    # Subscriptions (connections of receiving classrooms and observers; the lead is always admitted)
    # one worker process, or the in-process plane, carries. Joins beyond it are refused with
    # `MediaCapacityError` ("media capacity reached") instead of overloading the event loop until
    # consent checks time out and the whole room goes dark. Measured: about 300 subscriber streams
    # per core; 250 leaves headroom for join storms and keyframe bursts. 0 means no limit.
    max_subscriptions_per_worker: int = 250

    def __post_init__(self) -> None:
        if not (0 < self.udp_port_min <= self.udp_port_max <= 65535):
            raise ValueError(f"bad UDP port range {self.udp_port_min}-{self.udp_port_max}")
        if self.workers < 0:
            raise ValueError("workers must be 0 (one per core) or more")
        n = self.send_history_packets
        if n < 16 or n & (n - 1):
            raise ValueError("send_history_packets must be a power of two, at least 16")
        if self.keyframe_request_interval < 0 or self.report_interval <= 0:
            raise ValueError("intervals must be positive")
        if self.keyframe_request_max_interval < self.keyframe_request_interval:
            raise ValueError("keyframe_request_max_interval must be >= keyframe_request_interval")
        if not 0 < self.keyframe_cpu_budget <= 1:
            raise ValueError("keyframe_cpu_budget must be a share of one core, in (0, 1]")
        if not (0 < self.track_idle_timeout <= self.screen_idle_timeout):
            raise ValueError("track_idle_timeout must be positive and at most screen_idle_timeout")
        if not 0 <= self.retransmit_share <= 4:
            raise ValueError("retransmit_share must be between 0 and 4")
        if self.subscriber_keyframe_max_interval < self.subscriber_keyframe_interval:
            raise ValueError("subscriber_keyframe_max_interval must be >= subscriber_keyframe_interval")
        if self.worker_retransmissions_per_second <= 0 or self.room_retransmissions_per_second <= 0:
            raise ValueError("retransmission rates must be positive")
        if self.rtcp_datagrams_per_second <= 0 or self.rtcp_datagrams_burst < 1:
            raise ValueError("rtcp_datagrams_per_second must be positive and rtcp_datagrams_burst at least 1")
        if not 0 < self.rtcp_datagrams_floor <= self.rtcp_datagrams_per_second or self.rtcp_useless_min < 1:
            raise ValueError("rtcp_datagrams_floor must be in (0, rtcp_datagrams_per_second], rtcp_useless_min >= 1")
        if self.misbehaving_errors < 0 or self.misbehaving_window <= 0:
            raise ValueError("misbehaving_errors must be >= 0 and misbehaving_window positive")
        if self.max_subscriptions_per_worker < 0:
            raise ValueError("max_subscriptions_per_worker must be 0 (no limit) or more")

    def ice_servers(self) -> list[dict[str, Any]]:
        """The `iceServers` list a browser's RTCPeerConnection should be created with."""
        servers: list[dict[str, Any]] = []
        if self.stun_urls:
            servers.append({"urls": list(self.stun_urls)})
        if self.turn_urls:
            servers.append(
                {"urls": list(self.turn_urls), "username": self.turn_username, "credential": self.turn_password}
            )
        return servers
