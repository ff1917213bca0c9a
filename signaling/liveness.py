"""Is a participant still there, and is what we show of its quality still true? Pure rules, no I/O.

A page sends `ping` twice a second (docs/protocol.md, heartbeat); the SFU knows when it last heard
anything (RTP or RTCP) from the participant's connection. A participant silent on both for
`LOST_AFTER_S` is lost: its link dropped, though no socket has closed yet (a pulled cable closes
nothing for minutes). Quality figures older than `STALE_AFTER_S` are unknown, never shown as if
current.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

HEARTBEAT_S = 0.5  # how often a page sends `ping`
UNKNOWN_AFTER_S = 1.2  # heartbeats missed: what we know may be stale
LOST_AFTER_S = 1.8  # three heartbeats missed and no media either: the link is down
MEDIA_FRESH_S = 1.5  # the SFU heard the participant this recently: it is there, whatever its socket does
STALE_AFTER_S = 5.0  # quality figures older than this are not shown


class LinkState(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # a heartbeat is late; figures may be stale
    LOST = "lost"  # silent on the WebSocket and on media
    ABSENT = "absent"  # a receiving classroom of the lesson that has not joined
    LEFT = "left"  # it left (its page said so)


def link_state(ws_silent_s: float, media_silent_s: float | None) -> LinkState:
    """The link of a connected participant from how long its socket and its media have been silent.

    `media_silent_s` is an upper bound on the time since the SFU last heard it (None: no media)."""
    media_fresh = media_silent_s is not None and media_silent_s < MEDIA_FRESH_S
    if media_fresh:
        return LinkState.OK if ws_silent_s < LOST_AFTER_S * 3 else LinkState.UNKNOWN
    if ws_silent_s >= LOST_AFTER_S:
        return LinkState.LOST
    if ws_silent_s >= UNKNOWN_AFTER_S:
        return LinkState.UNKNOWN
    return LinkState.OK


def shown_quality(
    link: LinkState, media: dict[str, Any], media_age_s: float, client: dict[str, Any], client_age_s: float
) -> dict[str, Any]:
    """What the teacher's roster and the technician see of one participant's quality.

    Only figures from sources fresher than `STALE_AFTER_S` are shown; a participant whose link is
    not OK shows its state alone: a dropped classroom never keeps its last good score."""
    if link != LinkState.OK:
        return {"state": str(link)}
    out: dict[str, Any] = {}
    if media and media_age_s < STALE_AFTER_S:
        out.update(media)
    if client and client_age_s < STALE_AFTER_S:
        out.update(client)
    if not out:
        return {"state": str(LinkState.UNKNOWN)}
    return {"state": str(LinkState.OK), **out}
