"""The spill through the real program: `classroom serve` with two media workers of one subscription
each, a lead and two receiving classrooms over the WebSocket; the second classroom is carried by a
copy of the room in the other worker, and signaling and monitoring take the merged stats."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from signaling.client import Peer, Refused, join_with_media
from signaling.trial import AdminApi, build_world, join_token, lesson_now_timezone

ENV = {"CLASSROOM_MEDIA__ANNOUNCED_ADDRESSES": "127.0.0.1", "CLASSROOM_SIGNALING__STATS_INTERVAL_S": "0.5",
       "CLASSROOM_SIGNALING__EVIDENCE_INTERVAL_S": "1", "CLASSROOM_MEDIA__WORKERS": "2",
       "CLASSROOM_MEDIA__MAX_SUBSCRIPTIONS_PER_WORKER": "1"}


async def test_a_lesson_larger_than_a_worker_plays_in_every_classroom_through_classroom_serve(
    server_factory: Any,
) -> None:
    tz = lesson_now_timezone()
    srv = server_factory("--media", "workers", env={**ENV, "CLASSROOM_SCHEDULER__TIMEZONE": tz})
    api = AdminApi(srv.url, srv.token)
    world = await build_world(api, tz, receivers=2)
    ws_url = srv.url.replace("http", "ws") + "/ws"
    lesson = world.lesson_ids[0]
    peers = [Peer(), Peer(), Peer()]
    clients = []
    try:
        clients.append(await join_with_media(ws_url, await join_token(api, lesson, "lead"), peers[0],
                                             peers[0].as_lead()))
        for peer, classroom in zip(peers[1:], world.receiving_classroom_ids, strict=True):
            token = await join_token(api, lesson, "receiver", classroom)
            clients.append(await join_with_media(ws_url, token, peer, peer.as_classroom()))
        for peer in peers[1:]:
            await asyncio.wait_for(peer.first_frame.wait(), 30)
        frames = [p.frames for p in peers[1:]]
        deadline = time.monotonic() + 15
        while not all(p.frames >= f + 30 for p, f in zip(peers[1:], frames, strict=True)):
            assert time.monotonic() < deadline, [p.frames for p in peers[1:]]
            await asyncio.sleep(0.1)
        # the technician's view: the lesson's media over both workers, one classroom in the copy
        [live] = [x for x in (await api.ok("GET", "/api/v1/live?detail=1"))["lessons"] if x["lesson_id"] == lesson]
        media = live["media"]
        workers = {p["role"]: set() for p in media["participants"].values()}
        for p in media["participants"].values():
            workers[p["role"]].add(p["worker_pid"])
        assert len(workers["receiver"]) == 2 and workers["lead"] == {media["worker_pid"]}
        [copy] = media["copies"]
        assert len(copy["participants"]) == 1 and len(media["links"]) == 1
        assert any(s["packets_sent"] > 0 for s in media["links"][0]["sent"])
        await asyncio.sleep(2)  # a few rounds of the stats loop (monitoring, evidence) over the merged snapshot
        assert "Traceback" not in srv.log, srv.log[-3000:]

        # The copy's worker dies: its classroom is told to reconnect, and plays again within 5 s (the
        # owner has no room left, so it lands on the replacement worker, in a new copy).
        [moved] = [i for i, c in enumerate(world.receiving_classroom_ids) if copy["participants"][0].endswith(f"-{c}")]
        os.kill(copy["worker_pid"], signal.SIGKILL)
        killed = time.monotonic()
        restart = await clients[1 + moved].expect("restart", timeout=10)
        assert restart["reason"] == "media_lost"
        deadline = killed + 60
        while True:  # the replacement worker may still be starting: the page retries a full server
            again = Peer()
            peers.append(again)
            token = await join_token(api, lesson, "receiver", world.receiving_classroom_ids[moved])
            try:
                clients.append(await join_with_media(ws_url, token, again, again.as_classroom()))
                break
            except Refused as exc:
                assert exc.code == "media_capacity" and time.monotonic() < deadline, exc
                await again.close()
                await asyncio.sleep(0.5)
        rejoined = time.monotonic()
        await asyncio.wait_for(again.first_frame.wait(), 5)
        assert time.monotonic() - rejoined < 5
        others = peers[2 - moved]
        count = others.frames
        deadline = time.monotonic() + 10
        while others.frames < count + 20:  # the classroom at the owner never stopped
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        for c in clients:
            await c.close()
        for p in peers:
            await p.close()
