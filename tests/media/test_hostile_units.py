"""The pure parts of the media plane under hostile input: sizes, sequence numbers, NACK state, budgets."""

from __future__ import annotations

import itertools
import random
import time

from hostile_path import DELTA, KEY, make_down, make_track, rtp

from media.limits import MAX_PAYLOAD, SRTP_MAX_RTCP
from media.nack_tracker import NackTracker
from media.rtcp import Nack, build_nacks, parse_compound
from media.rtp_header import RtpHeader
from media.seq_tracker import DROP, NEW, RESTART, SeqTracker


def feed(track, data: bytes, now: float = 1.0) -> None:
    track.on_rtp(RtpHeader.parse(data), data, now)


# -- defect 1: oversized packets ---------------------------------------------------------------------


def test_an_oversized_payload_is_refused_where_it_enters_and_the_rest_is_forwarded():
    up: list[bytes] = []
    track = make_track(up)
    downs = [[] for _ in range(3)]
    slots = [make_down(track, sink, f"class-{i}", 3000 + 10 * i) for i, sink in enumerate(downs)]
    feed(track, rtp(10, KEY))
    # 1,344 bytes of payload: 1,356 as RTP, 1,358 on RTX, beyond what SRTP protects.
    feed(track, rtp(11, DELTA + bytes(MAX_PAYLOAD + 2 - len(DELTA))))
    feed(track, rtp(12, DELTA + bytes(100)))
    assert track.oversized == 1
    assert [len(sink) for sink in downs] == [2, 2, 2]
    assert all(dt.wire.errors == 0 for dt in slots)


def test_a_batch_with_a_packet_srtp_refuses_loses_only_that_packet():
    up: list[bytes] = []
    track = make_track(up)
    downs = [[] for _ in range(2)]
    slots = [make_down(track, sink, f"class-{i}", 3000 + 10 * i) for i, sink in enumerate(downs)]
    batch = [(10, 0, 0, 97, KEY, True), (11, 0, 0, 97, bytes(1400), False), (12, 0, 0, 97, DELTA, False)]
    for dt in slots:
        dt.forward(batch, 1.0)
    assert [len(sink) for sink in downs] == [2, 2]
    assert [dt.wire.errors for dt in slots] == [1, 1]


def test_the_largest_accepted_payload_can_be_retransmitted_on_rtx():
    up: list[bytes] = []
    down: list[bytes] = []
    track = make_track(up)
    dt = make_down(track, down)
    feed(track, rtp(10, KEY + bytes(MAX_PAYLOAD - len(KEY))))
    feed(track, rtp(11, DELTA))
    first = RtpHeader.parse(down[0])  # protected, but the header stays readable
    dt.on_nack([first.seq, (first.seq + 1) & 0xFFFF, (first.seq + 2) & 0xFFFF])
    assert dt.retransmitted == 2 and dt.wire.errors == 0 and len(down) == 4
    assert len(down[2]) > MAX_PAYLOAD + 14  # the big one went out on RTX


def test_a_long_upstream_nack_is_split_into_packets_srtp_takes():
    up: list[bytes] = []
    track = make_track(up)
    lost = list(range(0, 2000, 5))  # 400 items, one per number
    track.send_nack(lost)
    assert track.wire.errors == 0 and len(up) > 1
    packets = build_nacks(5, 1111, lost)
    assert max(len(p) for p in packets) <= SRTP_MAX_RTCP
    got = [n for p in packets for item in parse_compound(p) if isinstance(item, Nack) for n in item.lost]
    assert got == lost


def test_a_nack_packet_is_not_unpacked_beyond_a_bound():
    (nack,) = build_nacks(1, 2, range(0, 20000, 1), items_per_packet=10_000)[:1]
    (parsed,) = parse_compound(nack)
    assert len(parsed.lost) <= 512 + 16  # whole items: the last one may carry 16 more


# -- defect 2: sequence numbers that jump ------------------------------------------------------------


def test_forward_jumps_inside_the_gap_do_not_lock_the_real_stream_out():
    up: list[bytes] = []
    down: list[bytes] = []
    track = make_track(up, history=1024, nack=NackTracker(max_gap=256))
    make_down(track, down)
    for seq in range(1000, 1050):
        feed(track, rtp(seq, KEY))
    # A buggy or hostile sender jumps ahead by a believable 250, again and again (half the space).
    fake = 1050
    for _ in range(130):
        fake += 250
        feed(track, rtp(fake, DELTA, ts=9000 + 1050 * 3000))
    sent = len(down)
    for seq in range(1050, 1150):  # and the real stream goes on
        feed(track, rtp(seq, KEY), 2.0)
    # Today's code believes the jumps and then drops the real stream as old for minutes.
    assert len(down) - sent >= 95, len(down) - sent
    assert track.restarts == 1


def test_an_encoder_restarting_lower_on_the_same_ssrc_is_followed():
    up: list[bytes] = []
    down: list[bytes] = []
    track = make_track(up, history=1024, nack=NackTracker(max_gap=256))
    make_down(track, down)
    for seq in range(5000, 5200):
        feed(track, rtp(seq, KEY if seq == 5000 else DELTA))
    sent = len(down)
    for seq in range(4800, 4900):  # the box rebooted: same SSRC, numbers from lower down
        feed(track, rtp(seq, KEY if seq < 4810 else DELTA, ts=seq * 10), 2.0)
    assert track.restarts == 1
    assert len(down) - sent >= 90
    seqs = [RtpHeader.parse(p).seq for p in down]
    assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))  # one continuous numbering


def test_a_lone_forged_jump_far_away_is_not_believed():
    tracker = SeqTracker(max_gap=256, window=1023)
    assert tracker.update(100, lambda s: True) == NEW
    for i, forged in enumerate((30000, 31000, 100 - 2000, 40000)):
        assert tracker.update(forged, lambda s: True) == DROP
        assert tracker.update(101 + i, lambda s: True) == NEW  # the real stream breaks every run
    assert [tracker.update(s, lambda s: True) for s in range(9000, 9004)] == [DROP, DROP, DROP, RESTART]


# -- defect 3: NACK state ----------------------------------------------------------------------------


def test_nack_state_stays_bounded_and_cheap_under_jumps():
    t = NackTracker(max_gap=256, max_retries=4, retry_interval=0.03)
    seq, now, asked, worst = 0, 0.0, 0, 0.0
    rnd = random.Random(3)
    for _ in range(20000):  # 2 s of a sender jumping by up to the gap at 10,000 packets/s
        seq = (seq + rnd.randrange(1, 257)) & 0xFFFF
        started = time.process_time()  # CPU time: a busy shared machine may deschedule us anywhere
        lost = t.on_packet(seq, now)
        due = t.due(now)
        worst = max(worst, time.process_time() - started)
        asked += len(lost or ()) + len(due or ())
        now += 0.0001
        assert len(t.missing) <= t.max_missing
    assert len(t.queue) <= 4 * t.max_missing + 64 + 256
    assert asked <= 2000 * 2 + 512  # the NACK rate budget, not half a million
    assert worst < 0.005, worst  # today: tens of milliseconds per packet


# -- defect 4: retransmission budget and feedback rate limits -----------------------------------------


def test_nack_floods_get_at_most_the_slots_retransmission_budget():
    up: list[bytes] = []
    down: list[bytes] = []
    track = make_track(up, history=1024)
    dt = make_down(track, down)
    payload = DELTA + bytes(1000)
    for seq in range(100):
        feed(track, rtp(seq, KEY if seq == 0 else payload), 1.0)
    forwarded = dt.octets
    first = RtpHeader.parse(down[0]).seq
    sent = len(down)
    every = [(first + i) & 0xFFFF for i in range(100)]
    for i in range(50):  # 50 NACKs of all 100 packets within 0.1 s
        dt.on_nack(every, 1.0 + i * 0.002)
    resent = sum(len(p) for p in down[sent:])
    budget = dt.retransmit_burst + 0.5 * forwarded + 0.1 * dt.retransmit_floor
    assert resent <= budget + 1400, (resent, budget)
    assert dt.over_budget > 4000  # today: 5,000 retransmissions, 5 MB


async def test_a_participants_nacks_and_keyframe_requests_are_rate_limited():
    from media.config import MediaConfig
    from media.peer import Peer
    from media.rtcp import Nack as NackPacket
    from media.rtcp import Pli

    up: list[bytes] = []
    down: list[bytes] = []
    track = make_track(up, history=1024)
    dt = make_down(track, down)
    config = MediaConfig(nack_packets_per_second=100.0, keyframe_requests_per_second=5.0)
    peer = Peer(config, lambda *a: None)
    try:
        peer.register([], [dt])
        for i in range(470):  # 470 NACKs and PLIs in one second
            now = 10.0 + i / 470
            peer._dispatch_rtcp([NackPacket(1, dt.ssrc, [1, 2, 3]), Pli(1, dt.ssrc)], now)
        assert dt.nacks_received <= 3 * (100 + 200)
        assert dt.keyframe_requests_received <= 5 + 10
        assert peer.rate_limited >= 470 - 300 + 470 - 15
    finally:
        await peer.close()


# -- the small helpers -------------------------------------------------------------------------------


def test_token_bucket_and_rate_limited_log(caplog):
    import logging

    from media.ratelimit import RateLimitedLog, TokenBucket

    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert sum(bucket.take(0.0) for _ in range(20)) == 5
    assert sum(bucket.take(1.0) for _ in range(20)) == 5  # refilled up to the burst only
    caplog.set_level(logging.WARNING)
    log = RateLimitedLog(logging.getLogger("test.ratelog"), interval=60.0)
    for i in range(1000):
        log("stun:error", i * 0.01, "junk %d", i)
        log("other", i * 0.01, "other %d", i)
    log("stun:error", 61.0, "junk again")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["junk 0", "other 0", "junk again (999 more since the last report)"]
    assert log.counts == {"stun:error": 1001, "other": 1000}


# -- defect 5: an SSRC out of range that got in anyway ------------------------------------------------


def test_a_keyframe_request_for_an_out_of_range_ssrc_costs_that_request_only():
    up: list[bytes] = []
    track = make_track(up)
    track.ssrc = 1 << 32  # media/sdp_check.py refuses such offers; this is the second line of defence
    track.request_keyframe(1.0)  # today: struct.error, mid talk-back switch, on every tick after
    assert track.wire.errors == 1 and not up


def test_playing_subscribers_pli_floods_ask_the_publisher_at_most_twice_a_second():
    up: list[bytes] = []
    track = make_track(up)
    slots = [make_down(track, [], f"class-{i}", 3000 + 10 * i) for i in range(5)]
    feed(track, rtp(10, KEY), 1.0)  # every slot plays
    before = track.keyframe_requests
    for i in range(500):  # five subscribers, 100 PLIs a second each, for one second
        slots[i % 5].on_keyframe_request(1.0 + i / 500)
    assert track.keyframe_requests - before <= 3
    held = make_down(track, [], "late", 4000)  # a slot waiting for a keyframe still asks at once
    before = track.keyframe_requests
    held.on_keyframe_request(2.3)
    assert held.hold and track.keyframe_requests == before + 1


def test_a_nack_left_packed_answers_as_the_unpacked_one_and_stops_unpacking_when_the_budget_ends():
    from media.rtcp import build_nack, nack_items

    up: list[bytes] = []
    track = make_track(up, history=1024)
    unpacked, packed = make_down(track, [], "a", 3000), make_down(track, [], "b", 4000)
    payload = DELTA + bytes(1000)
    for seq in range(300):
        feed(track, rtp(seq, KEY if seq == 0 else payload), 1.0)
    wanted = list(range(0, 300, 3)) + list(range(100, 140))
    for dt in (unpacked, packed):
        dt.retransmit_burst = dt.retransmit_credit = 40_000.0  # room for about 40 of them
    unpacked.on_nack([(unpacked.rw.seq_offset + s) & 0xFFFF for s in sorted(set(wanted))], 1.0)
    lost = [(packed.rw.seq_offset + s) & 0xFFFF for s in wanted]
    (nack,) = parse_compound(build_nack(1, packed.ssrc, lost), lambda ssrc: True)
    assert nack.admitted and not nack.lost and len(nack.items) == 2 * len(nack_items(lost))
    packed.on_nack_items(nack.items, 1.0)
    for key in ("retransmitted", "over_budget", "nacks_received", "unrepairable", "retransmitted_octets"):
        assert getattr(packed, key) == getattr(unpacked, key), key
    assert 30 <= packed.retransmitted <= 45 and packed.over_budget > 50
    # refused by the filter: nothing unpacked at all
    (refused,) = parse_compound(build_nack(1, packed.ssrc, lost), lambda ssrc: False)
    assert refused.admitted is False and not refused.lost and not refused.items


def test_the_gate_follows_a_peer_to_another_checked_ice_pair_and_nowhere_else() -> None:
    from media.ice import DatagramGate

    gate = DatagramGate(1000.0, 1000.0)
    rtp = bytes([0x80, 96]) + bytes(30)
    gate.remote = ("10.0.0.5", 5000)
    checked = {("10.0.0.5", 5000), ("192.168.1.9", 6000)}  # the browser's pairs that passed their checks
    gate.validated = lambda addr: (addr[0], addr[1]) in checked
    assert gate.admit(rtp, ("10.0.0.5", 5000))
    # the browser moved to its other checked pair: its media goes on
    assert gate.admit(rtp, ("192.168.1.9", 6000)) and gate.admit(rtp, ("192.168.1.9", 6000))
    assert gate.also == {("192.168.1.9", 6000)}
    # anyone else is refused, and counted
    assert not gate.admit(rtp, ("203.0.113.7", 6000)) and gate.wrong_address == 1
