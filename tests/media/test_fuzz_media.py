"""A short pass of the whole-packet-path fuzz target in CI (`scripts/fuzz-media` runs it longer)."""

from __future__ import annotations

import os

from fuzz_media import SEEDS, play, scenarios
from hypothesis import HealthCheck, given, settings

EXAMPLES = int(os.environ.get("MEDIA_FUZZ_EXAMPLES", "150"))


def test_the_seed_corpus_in_order_passes():
    play(SEEDS + [("tick", b"")] * 3)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenarios)
def test_arbitrary_traffic_through_the_whole_packet_path(ops):
    play(ops)
