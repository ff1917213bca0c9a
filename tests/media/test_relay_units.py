"""The relay link's datagram handling without peers: forged, reflected and malformed datagrams,
authenticated junk, and a state too large for one datagram."""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.config import MediaConfig
from media.relay import FRAME, FROM_ORIGIN, KIND_RTCP, KIND_RTP, KIND_STATE, MAGIC, STATE_CHUNK, RelayLink, _tag
from media.relay import open_link_socket as link_socket
from media.room import Room

KEY = secrets.token_bytes(32)


def _emit(*_args: object) -> None:
    pass


async def _pair() -> tuple[RelayLink, RelayLink]:
    config = MediaConfig(announced_addresses=("127.0.0.1",))
    origin_room, copy_room = Room("r", config, _emit), Room("r", config, _emit)
    copy_room.is_copy = True
    origin = RelayLink(origin_room, "r:0>1", KEY, True, link_socket("127.0.0.1"))
    copy = RelayLink(copy_room, "r:0>1", KEY, False, link_socket("127.0.0.1"))
    origin.peer, copy.peer = copy.local, origin.local  # addresses only: nothing is sent in these tests
    origin_room.links.append(origin)
    copy_room.links.append(copy)
    return origin, copy


@pytest.fixture
def links() -> Iterator[tuple[RelayLink, RelayLink]]:
    loop = asyncio.new_event_loop()
    origin, copy = loop.run_until_complete(_pair())
    try:
        yield origin, copy
    finally:
        for link in (origin, copy):
            link.room._task.cancel()
            link.sock.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def sealed(kind: int, track_id: int, body: bytes, from_origin: bool = True, key: bytes = KEY) -> bytes:
    message = bytes([MAGIC, kind | (FROM_ORIGIN if from_origin else 0), track_id >> 8, track_id & 0xFF]) + body
    return message + _tag(key, message)


def counters(link: RelayLink) -> tuple[int, int, int]:
    return link.refused, link.wrong_address, link.errors


@given(st.binary(max_size=1500))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_datagram_without_the_key_is_refused_and_counted_once(links, data):
    _, copy = links
    before = counters(copy)
    copy.receive(data, copy.peer, time.monotonic())
    assert counters(copy) == (before[0] + 1, before[1], before[2])
    assert not copy.remote and not copy.room.sources


@given(st.binary(max_size=1500))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_datagram_from_anyone_but_the_other_end_is_dropped_unread(links, data):
    _, copy = links
    before = counters(copy)
    copy.receive(data, ("127.0.0.2", copy.peer[1]), time.monotonic())
    assert counters(copy) == (before[0], before[1] + 1, before[2])


def test_a_datagram_sealed_with_another_key_or_reflected_back_is_refused(links):
    origin, copy = links
    state = sealed(KIND_STATE, 0, bytes(8) + b"{}", key=secrets.token_bytes(32))
    copy.receive(state, copy.peer, 0.0)
    reflected = sealed(KIND_STATE, 0, bytes(8) + b"{}", from_origin=True)  # the copy's own direction...
    origin.receive(reflected, origin.peer, 0.0)  # ...is what the origin sends, not what it takes
    assert copy.refused == 1 and origin.refused == 1
    assert copy.states_in == origin.states_in == 0


@given(st.sampled_from([KIND_RTP, KIND_RTCP, KIND_STATE, 0, 9, 0x7F]), st.integers(0, 0xFFFF),
       st.binary(max_size=1400))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_authenticated_junk_never_escapes_and_leaves_the_link_working(links, kind, track_id, body):
    _, copy = links
    copy.receive(sealed(kind, track_id, body), copy.peer, time.monotonic())
    # still takes a valid state afterwards
    good = b'{"tracks":[[7,"lead","camera","video",1234,true,[[96,"vp8","vp8",90000]]]],"want":[],' \
           b'"room":{"lead_id":"lead","talkback_id":null,"to_all":false}}'
    copy._incoming = None
    copy.receive(sealed(KIND_STATE, 0, struct.pack("!IHH", 12345, 0, 1) + good), copy.peer, 0.0)
    assert 7 in copy.remote and copy.room.lead_id == "lead"


def test_a_state_of_hundreds_of_tracks_crosses_in_chunks_and_is_taken_whole(links):
    origin, copy = links
    tracks = [[i, f"class-{i // 2:03d}", "camera" if i % 2 else "audio", "video" if i % 2 else "audio", 1000 + i,
               False, [[111, "opus", "opus", 48000]] if i % 2 == 0 else [[96, "vp8", "vp8", 90000]]]
              for i in range(1, 401)]
    blob = (b'{"tracks":' + str(tracks).replace("'", '"').replace("False", "false").encode()
            + b',"want":[]}')
    assert len(blob) > 20 * STATE_CHUNK
    sent: list[bytes] = []
    origin.wire.connect(bytes, bytes, lambda data, _addr: sent.append(data), copy.local)
    origin._send_state(blob)
    assert len(sent) == -(-len(blob) // STATE_CHUNK)
    for datagram in reversed(sent[1:]):  # out of order, the first one last
        copy.receive(datagram, copy.peer, 0.0)
        assert copy.states_in == 0
    copy.receive(sent[0], copy.peer, 0.0)
    assert copy.states_in == 1 and len(copy.remote) == 400 and len(copy.room.sources) == 400
    assert copy.refused == copy.errors == 0
    assert sent[0][FRAME:FRAME + 4] == sent[-1][FRAME:FRAME + 4]  # one generation
