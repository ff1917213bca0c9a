import asyncio

import pytest
from aiortc import RTCPeerConnection

from media.config import MediaConfig
from media.ice import control_host_candidates


def test_defaults_and_ice_servers():
    c = MediaConfig(stun_urls=("stun:stun.example.org:3478",), turn_urls=("turn:turn.example.org",),
                    turn_username="u", turn_password="p")
    assert (c.udp_port_min, c.udp_port_max, c.workers, c.announced_addresses) == (40000, 40999, 0, ())
    assert c.ice_servers() == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:turn.example.org"], "username": "u", "credential": "p"},
    ]
    with pytest.raises(ValueError):
        MediaConfig(udp_port_min=5000, udp_port_max=4000)
    with pytest.raises(ValueError):
        MediaConfig(send_history_packets=1000)


async def test_loopback_is_announced_within_the_port_range():
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    control_host_candidates(pc, ["127.0.0.1"], 47000, 47003)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    lines = [line for line in sdp.splitlines() if line.startswith("a=candidate")]
    assert len(lines) == 1
    _, _, _, _, host, port, *_ = lines[0].split()
    assert host == "127.0.0.1" and 47000 <= int(port) <= 47003
    await pc.close()
    await asyncio.sleep(0)


def test_capacity_and_keyframe_storm_settings():
    c = MediaConfig()
    assert c.max_subscriptions_per_worker == 250
    assert c.keyframe_request_interval <= c.keyframe_request_max_interval
    MediaConfig(max_subscriptions_per_worker=0)  # no limit
    with pytest.raises(ValueError):
        MediaConfig(max_subscriptions_per_worker=-1)
    with pytest.raises(ValueError):
        MediaConfig(keyframe_request_interval=0.5, keyframe_request_max_interval=0.2)
    with pytest.raises(ValueError):
        MediaConfig(keyframe_cpu_budget=0)
