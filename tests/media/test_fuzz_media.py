"""A short pass of the whole-packet-path fuzz target in CI (`scripts/fuzz-media` runs it longer)."""

from __future__ import annotations

import asyncio
import os

from fuzz_media import RECORDED, SEEDS, SUB_SSRC, TARGETS, check, play, run_scenario, scenarios
from hypothesis import HealthCheck, given, settings

EXAMPLES = int(os.environ.get("MEDIA_FUZZ_EXAMPLES", "150"))


def test_the_seed_corpus_in_order_passes():
    play(SEEDS + [("tick", b"")] * 3)


def test_the_chromium_corpus_is_there_and_its_session_goes_through():
    # recorded by tests/media/record_corpus.py (scripts/record-media-corpus); never skipped
    assert {target for target, _ in RECORDED} == set(TARGETS), "tests/media/corpus/ is missing or incomplete"
    from media.rtp_header import RtpHeader, is_rtcp

    result = asyncio.run(run_scenario(RECORDED + [("tick", b"")] * 3))
    check(result)
    forwarded = [RtpHeader.parse(p) for p in result["down"] if not is_rtcp(p)]
    # Chromium's keyframe, deltas and RTX reach the subscriber's slot under the target's SSRCs
    assert sum(1 for h in forwarded if h is not None and h.ssrc == SUB_SSRC) >= 10
    camera = result["snapshot"]["participants"]["lead"]["published"]["camera"]
    assert camera["keyframes"] >= 1 and camera["retransmissions_received"] >= 1


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios)
def test_arbitrary_traffic_through_the_whole_packet_path(ops):
    play(ops)
