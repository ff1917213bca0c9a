"""Broken offers against a real worker process: refused with a message that says what is wrong."""

from __future__ import annotations

import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from media_clients import BUNDLE, CLIENT_PORTS

from media.api import MediaError, ParticipantRole
from media.config import MediaConfig
from media.ice import control_host_candidates
from media.workers import WorkerMediaPlane


async def client_offer(send: bool) -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=BUNDLE))
    pc.addTransceiver("video", direction="sendonly" if send else "recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    control_host_candidates(pc, ["127.0.0.1"], *CLIENT_PORTS)
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_out_of_range_numbers_and_missing_directions_get_clear_answers_from_a_worker():
    plane = WorkerMediaPlane(
        MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=45000, udp_port_max=45099, workers=1)
    )
    await plane.start()
    pcs = []
    try:
        await plane.open_room("maths")
        # Defect 5: an SSRC of 2^32 was accepted, and broke the room's housekeeping once talk-back
        # called the classroom.
        pc, offer = await client_offer(send=True)
        pcs.append(pc)
        bad = re.sub(r"a=ssrc:\d+", "a=ssrc:4294967296", offer, count=1)
        with pytest.raises(MediaError) as info:
            await plane.join("maths", "class-1", ParticipantRole.RECEIVER, bad)
        text = str(info.value)
        assert "SSRC 4294967296 is out of range" in text and "line" in text, text
        for old, new, what in [
            (r"a=rtpmap:97 ", "a=rtpmap:300 ", "payload type 300 is out of range"),
            (r"a=extmap:1 ", "a=extmap:999 ", "header extension id 999 is out of range"),
            (r"a=fmtp:98 apt=97", "a=fmtp:98 apt=1000", "(apt) 1000 is out of range"),
        ]:
            assert re.search(old, offer), old
            with pytest.raises(MediaError, match=re.escape(what)):
                await plane.join("maths", "class-1", ParticipantRole.RECEIVER, re.sub(old, new, offer, count=1))
        # Defect 7: an m-line without a direction got "None is not in list"; RFC 3264 says sendrecv.
        pc, offer = await client_offer(send=False)
        pcs.append(pc)
        answer = await plane.join("maths", "class-2", ParticipantRole.RECEIVER, offer.replace("a=recvonly\r\n", "", 1))
        assert "m=video" in answer
        stats = await plane.stats("maths")
        assert set(stats["participants"]) == {"class-2"}
    finally:
        for pc in pcs:
            await pc.close()
        await plane.stop()
