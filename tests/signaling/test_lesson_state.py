"""The lesson's state as the server states it, over real sockets with aiortc peers and a real worker.

What a classroom's screen is told when the teacher's courseware stops, when the teacher's media stops
without the teacher leaving (a pulled cable), and when the teacher leaves; what the teacher's roster
says when a classroom goes silent and when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from signaling.client import Peer, ProtocolClient, join_with_media
from signaling.trial import join_token
from tests.signaling.test_websocket_server import _setup


def _heartbeat(client: ProtocolClient) -> asyncio.Task[None]:
    """Ping twice a second, as the pages do (docs/protocol.md)."""
    async def beat() -> None:
        while True:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.send("ping")
            await asyncio.sleep(0.5)
    return asyncio.ensure_future(beat())


async def _layout(client: ProtocolClient, want: Any, timeout: float = 8.0) -> dict[str, Any]:
    """The first layout (the one in `joined`, or a `layout` event) that satisfies `want`."""
    # the latest so far (expect() may have passed layouts by while it waited for an answer)
    latest = next((m.get("layout", m) for m in reversed(client.seen) if m["type"] in ("layout", "joined")), None)
    if latest is not None and want(latest):
        return dict(latest)
    deadline = time.monotonic() + timeout
    while True:
        msg = await client.expect("layout", timeout=max(0.1, deadline - time.monotonic()))
        if want(msg):
            return msg


async def _roster(client: ProtocolClient, pid: str, link: str, timeout: float = 8.0) -> float:
    started = time.monotonic()
    while True:
        msg = await client.expect("roster", timeout=max(0.1, timeout - (time.monotonic() - started)))
        entry = next(p for p in msg["participants"] if p["participant_id"] == pid)
        if entry["link"] == link:
            assert link == "ok" or entry["quality"] == {"state": link}, entry  # no stale figures
            return time.monotonic() - started


async def test_a_classroom_is_told_what_its_screen_shows_at_every_change(server_factory: Any) -> None:
    srv, api, world, ws_url = await _setup(server_factory)
    lesson = world.lesson_ids[0]
    lead_peer, room_peer = Peer(), Peer()
    lead = await join_with_media(ws_url, await join_token(api, lesson, "lead"), lead_peer, lead_peer.as_lead(), lesson)
    room = await join_with_media(ws_url, await join_token(api, lesson, "receiver", world.receiving_classroom_ids[0]),
                                 room_peer, room_peer.as_classroom(), lesson)
    pid = f"classroom-{world.receiving_classroom_ids[0]}"
    beats = [_heartbeat(lead), _heartbeat(room)]
    try:
        joined = next(m for m in room.seen if m["type"] == "joined")
        assert set(joined["layout"]) == {"seq", "lead", "main", "side", "talkback"}
        await _layout(room, lambda m: m["lead"] == "on_air" and m["main"] == "camera")

        # the lead says its courseware is off: nothing changes for a page that never showed it; a screen
        # it says it shares, with no packets yet, is not put on the big screen
        await lead.send("publishing", camera=True, audio=True, screen=True)
        await asyncio.sleep(1.0)
        assert not any(m["type"] == "layout" and m["main"] == "screen" for m in room.seen)

        # the teacher's roster lists every receiving classroom, the absent one too
        await _roster(lead, pid, "ok")
        roster = next(m for m in reversed(lead.seen) if m["type"] == "roster")
        links = {p["participant_id"]: p["link"] for p in roster["participants"]}
        assert links == {pid: "ok", f"classroom-{world.receiving_classroom_ids[1]}": "absent"}

        # the classroom goes silent (its media and its socket, as with a pulled cable): lost within 3 s
        silent_at = time.monotonic()
        beats[1].cancel()
        await room_peer.close()
        await _roster(lead, pid, "lost", timeout=6.0)
        assert time.monotonic() - silent_at < 5.0  # promptly (about 2 s), not when a socket finally closes
        # and it is back as soon as it speaks again
        beats.append(_heartbeat(room))
        await _roster(lead, pid, "ok", timeout=4.0)

        # the lead's media stops without it leaving: every classroom is told the teacher is interrupted
        second = Peer()
        other = await join_with_media(ws_url, await join_token(api, lesson, "receiver",
                                                               world.receiving_classroom_ids[1]),
                                      second, second.as_classroom(), lesson)
        beats.append(_heartbeat(other))
        await _layout(other, lambda m: m["main"] == "camera")
        stopped = time.monotonic()
        await lead_peer.close()
        lay = await _layout(other, lambda m: m["lead"] == "interrupted")
        assert lay["main"] is None and time.monotonic() - stopped < 5.0
        # the lead leaves: off air
        await lead.send("leave")
        await _layout(other, lambda m: m["lead"] == "off_air")
        await other.close()
        await second.close()
    finally:
        for beat in beats:
            beat.cancel()
        await lead.close()
        await room.close()
        await lead_peer.close()
        await room_peer.close()
        del srv


async def test_a_burst_of_changes_reaches_the_teacher_as_few_rosters_the_last_state_always(
        server_factory: Any) -> None:
    """A classroom's hand goes up and down 22 times in a burst (as 200 classrooms of a dead edge rejoining
    would change the roster): the teacher gets every `hand` event at once, in order, but the roster at most
    every 0.2 s: the first change at once (up), the last state after it (down). A change on its own still
    shows."""
    _srv, api, world, ws_url = await _setup(server_factory)
    lesson = world.lesson_ids[0]
    pid = f"classroom-{world.receiving_classroom_ids[0]}"
    lead = await ProtocolClient.connect(ws_url)
    room = await ProtocolClient.connect(ws_url)
    try:
        await lead.join(await join_token(api, lesson, "lead"), lesson)
        await room.join(await join_token(api, lesson, "receiver", world.receiving_classroom_ids[0]), lesson)
        await _roster(lead, pid, "ok")
        await asyncio.sleep(0.5)  # the join's rosters are out
        while not lead.inbox.empty():
            lead.inbox.get_nowait()

        ups = [i % 2 == 0 for i in range(22)]  # up, down, ..., down
        for up in ups:
            await room.send("raise_hand", up=up)
        hands: list[bool] = []
        rosters: list[tuple[float, bool]] = []  # (when, the classroom's hand in it)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                msg = await lead.expect("hand", "roster", timeout=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if msg["type"] == "hand":
                hands.append(msg["up"])
            else:
                entry = next(p for p in msg["participants"] if p["participant_id"] == pid)
                rosters.append((time.monotonic(), entry["hand_up"]))
                if len(hands) == len(ups) and not entry["hand_up"]:
                    deadline = min(deadline, time.monotonic() + 0.6)  # no roster after the last state
        assert hands == ups
        assert rosters[0][1] is True and rosters[-1][1] is False, rosters
        # one roster per 0.2 s of the burst at most (sent one per change, 22 would come within a few ms)
        span = rosters[-1][0] - rosters[0][0]
        assert len(rosters) < len(ups) and len(rosters) <= span / 0.2 + 2, (len(rosters), span)

        # a change on its own, after the burst, still shows
        await room.send("raise_hand", up=True)
        assert (await lead.expect("hand"))["up"] is True
        while not next(p for p in (await lead.expect("roster", timeout=2))["participants"]
                       if p["participant_id"] == pid)["hand_up"]:
            pass
    finally:
        await room.close()
        await lead.close()
