"""The relay link's datagram handling without peers: forged, reflected, replayed and malformed
datagrams, authenticated junk, a state too large for one datagram, and that what crosses is encrypted."""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media.api import EventKind
from media.config import MediaConfig
from media.relay import KIND_RTCP, KIND_RTP, KIND_STATE, STATE_CHUNK, RelayLink
from media.relay import open_link_socket as link_socket
from media.relay_seal import HEAD, REPLAY_WINDOW, LinkSeal, ReplayWindow
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


def sealed(origin: RelayLink, kind: int, track_id: int, body: bytes) -> bytes:
    """A datagram as the origin's end of the link sends it (its key, its direction, its next counter)."""
    return origin.seal.seal(kind, track_id, body)


GOOD_STATE = (b'{"tracks":[[7,"lead","camera","video",1234,true,[[96,"vp8","vp8",90000]]]],"want":[],'
              b'"room":{"lead_id":"lead","talkback_id":null,"to_all":false}}')


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
    state = LinkSeal(secrets.token_bytes(32), origin=True).seal(KIND_STATE, 0, bytes(8) + b"{}")
    copy.receive(state, copy.peer, 0.0)
    reflected = sealed(origin, KIND_STATE, 0, bytes(8) + b"{}")  # what the origin sends...
    origin.receive(reflected, origin.peer, 0.0)  # ...is not what it takes
    assert copy.refused == 1 and origin.refused == 1
    assert copy.states_in == origin.states_in == 0


def test_a_datagram_changed_anywhere_is_refused(links):
    origin, copy = links
    datagram = sealed(origin, KIND_STATE, 0, struct.pack("!IHH", 1, 0, 1) + GOOD_STATE)
    for i in range(len(datagram)):  # a bit flipped in the header, the ciphertext or the tag
        copy.receive(datagram[:i] + bytes([datagram[i] ^ 0x01]) + datagram[i + 1 :], copy.peer, 0.0)
    assert copy.refused == len(datagram) and copy.states_in == 0
    copy.receive(datagram, copy.peer, 0.0)
    assert copy.states_in == 1 and copy.replayed == 0


def test_what_crosses_is_encrypted_and_no_nonce_is_used_twice(links):
    origin, copy = links
    pattern = b"CLASSROOM-VIDEO-" * 60
    rtp = struct.pack("!BBHII", 0x80, 96, 1, 2, 3) + pattern
    datagrams = [sealed(origin, KIND_RTP, 5, rtp) for _ in range(50)]
    datagrams += [copy.seal.seal(KIND_RTP, 5, rtp) for _ in range(50)]
    for datagram in datagrams:
        assert b"CLASSROOM" not in datagram and rtp[:12] not in datagram
    assert len({d[HEAD:] for d in datagrams}) == len(datagrams)  # the same packet never looks the same
    nonces = {(d[1] & 0x80, d[4:HEAD]) for d in datagrams}
    assert len(nonces) == len(datagrams)  # direction and counter: never twice
    opened = LinkSeal(KEY, origin=False).open(datagrams[0])
    assert opened is not None and opened[3] == rtp


def test_a_duplicate_or_replayed_datagram_is_taken_once(links):
    origin, copy = links
    first = sealed(origin, KIND_STATE, 0, struct.pack("!IHH", 1, 0, 1) + GOOD_STATE)
    empty = sealed(origin, KIND_STATE, 0, struct.pack("!IHH", 2, 0, 1) + b'{"tracks":[],"want":[]}')
    copy.receive(first, copy.peer, 0.0)
    copy.receive(empty, copy.peer, 0.0)
    assert not copy.remote and copy.states_in == 2
    copy.receive(first, copy.peer, 0.0)  # an old state sent again brings nothing back
    copy.receive(empty, copy.peer, 0.0)
    assert copy.replayed == 2 and copy.states_in == 2 and not copy.remote and copy.refused == 0


def test_the_replay_window_takes_reordered_counters_once_and_refuses_too_old_ones():
    window = ReplayWindow()
    assert window.accept(5) and window.accept(3) and window.accept(4)
    assert not window.accept(3) and not window.accept(5)
    assert window.accept(5 + REPLAY_WINDOW)
    assert not window.accept(5)  # fell out of the window
    assert window.accept(6) and not window.accept(6)  # still inside it
    assert window.accept(10**18) and not window.accept(10**18) and window.accept(10**18 - 1)


def test_a_key_of_the_wrong_size_is_refused(links):
    origin, _ = links
    with pytest.raises(ValueError):
        RelayLink(origin.room, "x", b"short", True, origin.sock)


@given(st.sampled_from([KIND_RTP, KIND_RTCP, KIND_STATE, 0, 9, 0x7F]), st.integers(0, 0xFFFF),
       st.binary(max_size=1400))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_authenticated_junk_never_escapes_and_leaves_the_link_working(links, kind, track_id, body):
    origin, copy = links
    copy.receive(sealed(origin, kind, track_id, body), copy.peer, time.monotonic())
    # still takes a valid state afterwards
    copy._incoming = None
    copy.receive(sealed(origin, KIND_STATE, 0, struct.pack("!IHH", 12345, 0, 1) + GOOD_STATE), copy.peer, 0.0)
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
    assert b'"tracks"' not in b"".join(sent)  # encrypted
    opener = LinkSeal(KEY, origin=False)
    heads = [opener.open(d)[3][:4] for d in (sent[0], sent[-1])]
    assert heads[0] == heads[1]  # one generation


async def test_a_silent_other_end_is_said_once_as_link_down_and_link_up_when_it_is_heard_again() -> None:
    said: list[tuple[object, ...]] = []
    config = MediaConfig(announced_addresses=("127.0.0.1",))
    room = Room("r", config, lambda *a: said.append(a))
    room.is_copy = True
    link = RelayLink(room, "r:0>1", KEY, False, link_socket("127.0.0.1"))
    try:
        link.check_heard(100.0)
        assert said == []  # not connected yet: nothing to miss
        link.connected_at = 100.0
        link.check_heard(102.9)
        assert said == []
        link.check_heard(103.1)  # never heard since it connected
        link.check_heard(104.0)
        [(kind, room_id, _pid, _track, detail)] = said
        assert kind == EventKind.LINK_DOWN and room_id == "r" and detail["end"] == "copy"
        assert detail["link_id"] == "r:0>1" and detail["silent_s"] >= 3.0
        assert link.snapshot()["down"] is True and link.snapshot()["downs"] == 1
        link.heard_at = 104.5  # a datagram came
        link.check_heard(104.6)
        assert said[-1][0] == EventKind.LINK_UP and len(said) == 2 and link.down is False
        link.check_heard(107.6)  # silent again
        assert said[-1][0] == EventKind.LINK_DOWN and link.downs == 2
    finally:
        link.close()
