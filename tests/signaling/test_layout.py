"""What each screen shows, as the server states it (signaling/layout.py), and when a link counts as lost."""

from __future__ import annotations

from signaling.layout import LessonPicture, layout_for
from signaling.liveness import LinkState, link_state, shown_quality


def on_air(*tracks: str, declared: dict[str, bool] | None = None) -> LessonPicture:
    return LessonPicture(lead_present=True, lead_live=set(tracks), lead_started=set(tracks), lead_declared=declared,
                         lead_was_on_air=bool(tracks))


def test_a_classroom_waits_while_the_teacher_is_off_air() -> None:
    lay = layout_for(LessonPicture(), "receiver", "classroom-1")
    assert lay["main"] is None and lay["side"] == [] and lay["lead"] == "off_air"


def test_the_teacher_fills_the_screen_and_courseware_puts_the_teacher_beside_it() -> None:
    assert layout_for(on_air("camera", "audio"), "receiver", "classroom-1")["main"] == "camera"
    lay = layout_for(on_air("camera", "audio", "screen"), "receiver", "classroom-1")
    assert lay["main"] == "screen" and lay["side"] == ["camera"]


def test_courseware_the_page_stopped_leaves_at_once_though_its_packets_still_flow() -> None:
    picture = on_air("camera", "audio", "screen", declared={"camera": True, "audio": True, "screen": False})
    assert layout_for(picture, "receiver", "classroom-1")["main"] == "camera"


def test_a_still_slide_stays_up_while_it_sends_nothing_new() -> None:
    picture = on_air("camera", "audio", "screen", declared={"screen": True})
    picture.lead_live.discard("screen")  # the SFU's idle timeout: no new frame of a still slide
    assert layout_for(picture, "receiver", "classroom-1")["main"] == "screen"
    # without the page's word, silence is all there is to go by
    undeclared = on_air("camera", "audio", "screen")
    undeclared.lead_live.discard("screen")
    assert layout_for(undeclared, "receiver", "classroom-1")["main"] == "camera"


def test_courseware_is_shown_only_once_it_has_sent_something() -> None:
    picture = on_air("camera", "audio", declared={"screen": True})
    assert layout_for(picture, "receiver", "classroom-1")["main"] == "camera"


def test_a_teacher_whose_media_stopped_is_interrupted_not_gone() -> None:
    picture = on_air("camera", "audio")
    picture.lead_live.clear()
    lay = layout_for(picture, "receiver", "classroom-1")
    assert lay["lead"] == "interrupted" and lay["main"] is None
    # a teacher who joined but has not started sending yet is not "interrupted"
    assert layout_for(LessonPicture(lead_present=True), "receiver", "classroom-1")["lead"] == "off_air"
    picture.lead_present = False
    assert layout_for(picture, "receiver", "classroom-1")["lead"] == "off_air"


def test_talkback_to_everyone_stands_beside_the_teacher_never_on_the_called_classroom_itself() -> None:
    picture = on_air("camera", "audio", "screen")
    picture.talkback, picture.talkback_name, picture.talkback_to_all = "classroom-2", "教学点2", True
    picture.live["classroom-2"] = {"camera", "audio"}
    other = layout_for(picture, "receiver", "classroom-1")
    assert other["main"] == "screen" and other["side"] == ["camera", "talkback_camera"]
    assert other["talkback"] == {"participant_id": "classroom-2", "name": "教学点2", "to_all": True, "you": False}
    called = layout_for(picture, "receiver", "classroom-2")
    assert called["side"] == ["camera"] and called["talkback"]["you"] is True
    assert layout_for(picture, "lead", "lead-1")["side"] == ["talkback_camera"]


def test_talkback_to_the_teacher_only_leaves_the_other_screens_alone() -> None:
    picture = on_air("camera", "audio")
    picture.talkback, picture.talkback_to_all = "classroom-2", False
    picture.live["classroom-2"] = {"camera"}
    assert layout_for(picture, "receiver", "classroom-1")["side"] == []
    assert layout_for(picture, "lead", "lead-1")["side"] == ["talkback_camera"]


def test_a_called_classroom_whose_camera_stopped_is_not_shown_as_a_frozen_picture() -> None:
    picture = on_air("camera", "audio")
    picture.talkback, picture.talkback_to_all = "classroom-2", True
    picture.live["classroom-2"] = {"audio"}
    assert layout_for(picture, "lead", "lead-1")["side"] == []
    assert layout_for(picture, "receiver", "classroom-1")["side"] == []


def test_a_silent_link_is_unknown_then_lost_unless_media_still_flows() -> None:
    assert link_state(0.4, 0.1) == LinkState.OK
    assert link_state(1.3, None) == LinkState.UNKNOWN
    assert link_state(2.1, None) == LinkState.LOST
    assert link_state(2.1, 3.0) == LinkState.LOST
    assert link_state(2.1, 0.2) == LinkState.OK  # a box that pings rarely but whose media the SFU hears


def test_stale_or_lost_quality_is_never_shown_as_current() -> None:
    media = {"score": 97, "loss": 0.0, "rtt_ms": 40}
    client = {"fps": 25.0}
    assert shown_quality(LinkState.OK, media, 1.0, client, 1.0) == {"state": "ok", **media, **client}
    assert shown_quality(LinkState.OK, media, 9.0, client, 1.0) == {"state": "ok", **client}
    assert shown_quality(LinkState.OK, media, 9.0, client, 9.0) == {"state": "unknown"}
    assert shown_quality(LinkState.LOST, media, 0.1, client, 0.1) == {"state": "lost"}
