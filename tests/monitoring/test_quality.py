"""The 1–5 quality score and the gate for what pages report: pure functions, no I/O."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitoring.quality import QualityInputs, QualityTracker, ReportRefused, clean_client_report, score


def test_a_clean_link_is_excellent_and_loss_delay_and_freezes_pull_it_down() -> None:
    clean = score(QualityInputs(loss=0.0, jitter_ms=2, rtt_ms=20, fps=25, expected_fps=25))
    assert clean.level == "excellent" and clean.score >= 4.2
    lossy = score(QualityInputs(loss=0.05, rtt_ms=20))
    very_lossy = score(QualityInputs(loss=0.2, rtt_ms=20))
    assert clean.score > lossy.score > very_lossy.score and very_lossy.level == "poor"
    assert lossy.reasons[0] == "loss"
    slow = score(QualityInputs(loss=0.0, rtt_ms=900))
    assert slow.score < clean.score and "delay" in slow.reasons
    # a picture that is stuck is never "excellent", however clean the network
    frozen = score(QualityInputs(loss=0.0, rtt_ms=20, frozen=True))
    assert frozen.score <= 2.0 and frozen.reasons[0] == "freeze"
    assert score(QualityInputs(waiting_for_keyframe=True)).score <= 2.0
    assert score(QualityInputs(fps=0, expected_fps=25)).score <= 1.5
    assert score(QualityInputs(silent=True)).level == "lost"


@given(st.floats(-10, 10), st.floats(-1e6, 1e9), st.floats(-1e6, 1e9), st.floats(-1e3, 1e4), st.booleans())
def test_any_input_gives_a_score_between_1_and_5(loss: float, jitter: float, rtt: float, fps: float,
                                                frozen: bool) -> None:
    q = score(QualityInputs(loss=loss, jitter_ms=max(0.0, jitter), rtt_ms=max(0.0, rtt), fps=max(0.0, fps),
                            expected_fps=25, frozen=frozen))
    assert 1.0 <= q.score <= 5.0 and not math.isnan(q.score)


def test_reports_are_cleaned_clamped_and_refused_when_too_frequent() -> None:
    report = {"fps": 1e9, "jitter_ms": -5, "frames_decoded": 10, "bogus": 3, "width": "wide",
              "freeze_count": float("nan"), "height": True, "bitrate_kbps": 800}
    cleaned = clean_client_report(report, None)
    assert cleaned == {"fps": 240, "jitter_ms": 0, "frames_decoded": 10, "bitrate_kbps": 800}
    with pytest.raises(ReportRefused, match="too often"):
        clean_client_report({"fps": 25}, 0.1)
    assert clean_client_report({"fps": 25}, 2.0) == {"fps": 25}


def _media(on_air: bool = True, lost: float = 0.0, waiting: bool = False) -> dict:
    return {"slots": {"0": {"kind": "video", "source": {"participant_id": "lead-1", "track": "camera"},
                            "source_on_air": on_air, "fraction_lost": lost, "rtt_ms": 30, "jitter_ms": 3,
                            "waiting_for_keyframe": waiting}}}


def test_a_freeze_the_page_reports_caps_the_score_for_ten_seconds_and_a_reload_is_no_freeze() -> None:
    t = QualityTracker()
    q, _ = t.subscriber("c", _media(), {"freeze_count": 0, "fps": 25, "frames_decoded": 100}, False, 0.0, 25)
    assert q.level == "excellent"
    q, figures = t.subscriber("c", _media(), {"freeze_count": 1, "fps": 25, "frames_decoded": 150}, False, 2.0, 25)
    assert "freeze" in q.reasons and figures["freezes"] == 1
    q, _ = t.subscriber("c", _media(), {"freeze_count": 1, "fps": 25, "frames_decoded": 200}, False, 13.0, 25)
    assert "freeze" not in q.reasons
    # the page reloaded: its counters start again from zero; that is not a freeze
    q, _ = t.subscriber("c", _media(), {"freeze_count": 0, "fps": 25, "frames_decoded": 5}, False, 15.0, 25)
    assert "freeze" not in q.reasons


def test_no_new_frame_counts_as_frozen_only_while_the_teachers_camera_is_on_air() -> None:
    t = QualityTracker()
    t.subscriber("c", _media(on_air=False), {"fps": 0, "frames_decoded": 100}, False, 0.0)
    q, _ = t.subscriber("c", _media(on_air=False), {"fps": 0, "frames_decoded": 100}, False, 2.0)
    assert "freeze" not in q.reasons  # camera off: nothing to decode, nothing frozen
    q, _ = t.subscriber("c", _media(on_air=True), {"fps": 0, "frames_decoded": 100}, False, 4.0)
    assert "freeze" in q.reasons


def test_the_leads_uplink_loss_is_measured_over_the_interval() -> None:
    t = QualityTracker()
    pub = {"published": {"camera": {"on_air": True, "packets": 1000, "packets_lost": 0, "jitter_ms": 2}}}
    q, f = t.publisher("lead", pub, False)
    assert f["loss"] is None and q.level == "excellent"
    pub = {"published": {"camera": {"on_air": True, "packets": 1800, "packets_lost": 200, "jitter_ms": 2}}}
    q, f = t.publisher("lead", pub, False)
    assert f["loss"] == 0.2 and q.level == "poor"
