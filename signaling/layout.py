"""What each screen of a lesson shows: the layout state the server owns and the pages render from.

Pages never infer the picture from media events (Chromium fires no mute/unmute for a slot the SFU
re-points); they draw exactly what `layout_for` says, and the server sends it again whenever it
changes (docs/protocol.md, the `layout` event). Pure functions over plain data, no I/O.

A receiving classroom (or an observer) sees:
- the lead off air: nothing, with "waiting for the teacher", or "the teacher's connection is
  interrupted" when the lead's media stopped without the lead leaving;
- courseware shared: the courseware on the big screen and the teacher's camera beside it;
- otherwise the teacher's camera on the big screen;
- talk-back to everyone: the called classroom beside that (never covering the teacher), except on
  the called classroom's own screen, which is told that it has the floor.
The lead sees the called classroom in its talk-back box while one is called on and its camera sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# what a lead's connection may say it sends right now (the `publishing` message)
PUBLISHABLE = ("camera", "audio", "screen")


@dataclass
class LessonPicture:
    """The facts a layout is drawn from: one per live lesson, updated from media events and messages."""

    lead_present: bool = False  # a lead connection has joined
    # tracks of the lead whose packets flow now (SFU events; an idle track is off air)
    lead_live: set[str] = field(default_factory=set)
    # tracks of the lead that have sent on its current connection (a still slide sends nothing for a while)
    lead_started: set[str] = field(default_factory=set)
    # the lead's current connection has been on air: silence now means its link dropped, not "not started yet"
    lead_was_on_air: bool = False
    # what the lead's page says it sends (None: it never said; media activity alone decides)
    lead_declared: dict[str, bool] | None = None
    talkback: str | None = None
    talkback_name: str = ""
    talkback_to_all: bool = False
    # per receiving classroom, its tracks whose packets flow now
    live: dict[str, set[str]] = field(default_factory=dict)

    def lead_sends(self, track: str) -> bool:
        """Whether the lead's `track` should be on screen now."""
        declared = self.lead_declared.get(track) if self.lead_declared is not None else None
        if declared is False:
            return False  # the page stopped it: off at once, not after the media goes quiet
        if track == "screen" and declared:
            # courseware the page says it shares: a still slide sends nothing new for a while, and
            # stays up as long as the lead is on air at all
            return track in self.lead_started and bool(self.lead_live)
        return track in self.lead_live

    @property
    def lead_state(self) -> str:
        """`on_air`, `interrupted` (joined but its media stopped), or `off_air`."""
        if self.lead_live:
            return "on_air"
        return "interrupted" if self.lead_present and self.lead_was_on_air else "off_air"

    def talkback_picture(self) -> bool:
        return self.talkback is not None and "camera" in self.live.get(self.talkback, set())


def layout_for(picture: LessonPicture, role: str, participant_id: str | None) -> dict[str, Any]:
    """The layout one participant's screen shows: `main` (a slot or None) and `side` (slots beside it).

    Slots are the names of docs/protocol.md (`camera`, `screen`, `talkback_camera`); `lead` says
    whether the teacher is on air, `talkback` who has the floor and whether it is this participant.
    """
    tb = picture.talkback
    talkback = {
        "participant_id": tb,
        "name": picture.talkback_name if tb else "",
        "to_all": picture.talkback_to_all if tb else False,
        "you": tb is not None and tb == participant_id,
    }
    main: str | None = None
    side: list[str] = []
    if role == "lead":
        if tb is not None and picture.talkback_picture():
            side.append("talkback_camera")
    else:
        camera = picture.lead_sends("camera")
        if picture.lead_sends("screen"):
            main = "screen"
            if camera:
                side.append("camera")
        elif camera:
            main = "camera"
        if tb is not None and tb != participant_id and picture.talkback_to_all and picture.talkback_picture():
            side.append("talkback_camera")
    return {"lead": picture.lead_state, "main": main, "side": side, "talkback": talkback}
