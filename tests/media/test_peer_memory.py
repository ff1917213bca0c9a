"""Per-subscriber memory: one DTLS certificate per process, aiortc's unused receive machinery dropped."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection
from media_clients import Publisher, Subscriber

from media.api import ParticipantRole
from media.config import MediaConfig
from media.local import LocalMediaPlane
from media.peer import SharedCertificate, shared_certificate


def certificate(pc: RTCPeerConnection) -> object:
    return pc._RTCPeerConnection__certificates[0]  # type: ignore[attr-defined]


async def test_sfu_connections_share_one_certificate_and_drop_what_they_never_use():
    plane = LocalMediaPlane(MediaConfig(announced_addresses=("127.0.0.1",), udp_port_min=47000, udp_port_max=47999))
    await plane.start()
    await plane.open_room("lesson")
    subs: list[Subscriber] = []
    try:
        pub = await Publisher.connect(plane, "lesson", "lead")
        subs = list(
            await asyncio.gather(*(Subscriber.connect(plane, "lesson", f"class-{i}", audio_slots=1) for i in range(3)))
        )
        for sub in subs:
            await sub.wait_frames(10)  # DTLS with the shared certificate and cached SSL context works
        room = plane.rooms["lesson"]
        shared = shared_certificate()
        assert isinstance(shared, SharedCertificate)
        peers = [p.peer for p in room.participants.values()]
        assert all(certificate(peer.pc) is shared for peer in peers)
        # one SSL context per SRTP profile list, not one per handshake
        assert len(shared._contexts) == 1
        # clients made with plain aiortc still get a certificate of their own
        assert certificate(pub.pc) is not shared and certificate(subs[0].pc) is not shared
        for participant in room.participants.values():
            # parsed SDP kept only where aiortc's connect step still needs it (the SFU receives)
            kept = participant.peer.pc.remoteDescription is not None
            assert kept == bool(participant.inbound), participant.id
        for peer in peers:
            for t in peer.pc.getTransceivers():
                assert t.receiver._RTCRtpReceiver__remote_bitrate_estimator is None  # type: ignore[attr-defined]
                assert t.receiver._RTCRtpReceiver__jitter_buffer is None  # type: ignore[attr-defined]
        await plane.leave("lesson", "class-0")
        again = await plane.stats("lesson")
        assert again["participants"]["class-1"]["connection"] == "connected"
        assert again["participants"]["lead"]["role"] == str(ParticipantRole.LEAD)
        await pub.close()
    finally:
        for sub in subs:
            await sub.close()
        await plane.stop()
