"""An edge's control API over HTTPS, through the real program: `classroom edge --tls-cert --tls-key` and a
control node (`classroom serve --redis`) that trusts the edge's certificate (`[cluster] ca_file`), on one
real redis-server.

The edge registers its https:// address; a client that does not trust its certificate is refused before
anything (the node secret, a link's key) is sent; the control node, trusting it, places the county's
classroom on the edge, which decodes the lead's frames there, and says nothing of plain HTTP. An
http:// control API on another host is what the control node warns about."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edge.control_client import EdgeClient, EdgeUnavailable, client_context, plain_off_host
from signaling.client import Peer, join_with_media
from signaling.tls import self_signed
from signaling.trial import join_token
from tests.edge.cluster_world import start_cluster, wait_for
from tests.edge.conftest import RedisProcess
from tests.edge.test_edge_node import edge_factory  # noqa: F401 - the fixture


def test_plain_http_is_warned_about_only_off_this_host() -> None:
    assert plain_off_host("http://10.0.0.7:8090") and plain_off_host("http://edge-3.county.example")
    assert not plain_off_host("http://127.0.0.1:8090") and not plain_off_host("http://localhost:8090")
    assert not plain_off_host("http://[::1]:8090") and not plain_off_host("https://10.0.0.7:8090")


async def test_an_edge_on_https_is_trusted_by_its_ca_only_and_carries_a_classroom(
        server_factory: Any, edge_factory: Any, redis_server: RedisProcess, tmp_path: Path) -> None:  # noqa: F811
    cert, key = self_signed(tmp_path / "edge-tls", ["127.0.0.1"])
    c = await start_cluster(server_factory, edge_factory, redis_server, CLASSROOM_CLUSTER__CA_FILE=str(cert))
    edge = c.start_edge("edge-s", c.county, "--tls-cert", str(cert), "--tls-key", str(key))
    https_url = f"https://127.0.0.1:{edge.port}"
    assert f"control API on {https_url}" in edge.log

    async def registered() -> str | None:
        nodes = (await c.api.ok("GET", "/api/v1/monitor/nodes"))["nodes"]
        return next((n["node"]["address"] for n in nodes if n["node"]["id"] == "edge-s"), None)

    assert await wait_for(registered, 20, "the edge on the nodes page") == https_url

    untrusting = EdgeClient(https_url, c.secret)
    with pytest.raises(EdgeUnavailable):
        await untrusting.status()  # the system's CAs do not know the edge's certificate
    await untrusting.close()
    trusting = EdgeClient(https_url, c.secret, client_context(str(cert)))
    assert (await trusting.status())["node_id"] == "edge-s"

    participant = f"classroom-{c.world.receiving_classroom_ids[0]}"
    lead_peer, seat = Peer(), Peer()
    clients = []
    try:
        clients.append(await join_with_media(c.ws_url, await join_token(c.api, c.lesson, "lead"), lead_peer,
                                             lead_peer.as_lead()))
        token = await join_token(c.api, c.lesson, "receiver", c.world.receiving_classroom_ids[0])
        clients.append(await join_with_media(c.ws_url, token, seat, seat.as_classroom()))
        await asyncio.wait_for(seat.first_frame.wait(), 40)
        [room_id] = (await trusting.status())["rooms"]
        assert participant in (await trusting.stats(room_id))["participants"]
        log = c.control.log
        assert "plain HTTP" not in log and "could not take" not in log, log[-3000:]
        c.logs_clean()
    finally:
        for x in clients:
            await x.close()
        for p in (lead_peer, seat):
            await p.close()
        await trusting.close()
