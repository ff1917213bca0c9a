"""What a Prometheus scrape of `/metrics` shows, from room snapshots of a known shape: names, labels and
values per node and lesson kind; counters that never go back when classrooms leave or rooms close; no
label that names a subscriber; every media worker's load in one scrape (real worker processes)."""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from media.api import EventKind, MediaEvent, TrackKind
from media.config import MediaConfig
from media.workers import WorkerMediaPlane
from monitoring.config import MonitoringConfig
from monitoring.metrics import Metrics, RoomFacts, room_gauges
from scheduler.db import Database
from signaling.store import AccessStore

START = 1_800_000_000.0  # the lesson's start, epoch seconds
ALLOWED_LABELS = {"node", "kind", "track", "role", "side", "direction", "reason", "stage", "process", "rule",
                  "severity", "le"}


class Clock:
    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self.wall, self.mono = wall, mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def _track(packets: int, *, ssrc: int, on_air: bool = True, subscribers: int = 2) -> dict[str, Any]:
    return {"mid": "0", "ssrc": ssrc, "on_air": on_air, "packets": packets, "bytes": packets * 1000,
            "packets_lost": 3, "jitter_ms": 4.0, "nacks_sent": 2, "retransmissions_received": 1, "keyframes": 1,
            "keyframe_requests": 2, "dropped": 0, "oversized": 0, "restarts": 0, "subscribers": subscribers,
            "fanout_us_per_packet": 12.5, "keyframe_packets": 10}


def _slot(slot: str, packets: int, *, ssrc: int, loss: float = 0.0, rtt: float | None = 40.0,
          source: str | None = "lead-1") -> dict[str, Any]:
    return {"slot": slot, "kind": "audio" if slot.endswith("audio") else "video", "ssrc": ssrc,
            "source": None if source is None else {"participant_id": source, "track": slot},
            "source_on_air": source is not None, "waiting_for_keyframe": False, "codec_mismatch": False,
            "packets_sent": packets, "bytes_sent": packets * 1000, "switches": 1, "nacks_received": 5,
            "retransmitted": 4, "unrepairable": 1, "over_budget": 0, "keyframe_requests_received": 1,
            "fraction_lost": loss, "packets_lost": 7, "jitter_ms": 2.0, "rtt_ms": rtt, "remb_bps": None}


def _receiver(packets: int, ssrc: int, loss: float, rtt: float) -> dict[str, Any]:
    return {"role": "receiver", "connection": "connected", "published": {},
            "slots": {"0": _slot("camera", packets, ssrc=ssrc, loss=loss, rtt=rtt),
                      "1": _slot("audio", packets // 2, ssrc=ssrc + 1, loss=0.0, rtt=rtt)},
            "heard_ago_s": 0.1}


def snapshot(packets: int = 100, *, receivers: tuple[int, ...] = (11, 12), talkback: str | None = None) -> dict:
    """A lesson with the lead on air (camera and audio) and receiving classrooms watching."""
    participants: dict[str, Any] = {
        "lead-1": {"role": "lead", "connection": "connected",
                   "published": {"camera": _track(packets, ssrc=1), "audio": _track(packets // 2, ssrc=2)},
                   "slots": {"5": _slot("talkback_camera", 0, ssrc=3, source=None)}, "heard_ago_s": 0.1},
    }
    for i, cid in enumerate(receivers):
        participants[f"classroom-{cid}"] = _receiver(packets, 100 + 10 * i, loss=0.02 * (i + 1), rtt=40.0 * (i + 1))
    return {"room_id": "lesson-7", "lead_id": "lead-1", "lead_on_air": True,
            "talkback": {"participant_id": talkback, "to_all": False}, "preview": [], "refused_joins": 0,
            "participants": participants}


FACTS = RoomFacts("specialised", START, START + 2400, (11, 12, 13))


def scrape(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {sorted labels -> value} of the text a scrape returns."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    want = {"node": "node-a", **labels}
    hits = [v for k, v in samples[name].items() if want.items() <= dict(k).items()]
    assert len(hits) == 1, (name, labels, samples.get(name))
    return hits[0]


def make(clock: Clock, **kw: Any) -> Metrics:
    return Metrics(MonitoringConfig(node_name="node-a"), clock=lambda: clock.wall, monotonic=lambda: clock.mono, **kw)


def test_a_scrape_shows_a_lessons_figures_by_node_and_kind() -> None:
    clock = Clock(START + 60)
    m = make(clock)
    m.observe("lesson-7", FACTS, snapshot(100))
    clock.advance(1.0)
    m.observe("lesson-7", FACTS, snapshot(400, talkback="classroom-11"))
    s = scrape(m)
    assert value(s, "classroom_lessons_live", kind="specialised") == 1
    assert value(s, "classroom_lessons_live", kind="master") == 0  # every kind is there, zero when idle
    assert value(s, "classroom_lessons_lead_on_air", kind="specialised") == 1
    assert value(s, "classroom_talkback_active", kind="specialised") == 1
    assert value(s, "classroom_publishers", kind="specialised", track="camera") == 1
    assert value(s, "classroom_publishers", kind="specialised", track="audio") == 1
    assert value(s, "classroom_subscriptions", kind="specialised", role="receiver") == 2
    # counters: everything the snapshots' counters say (the first snapshot counts from zero)
    assert value(s, "classroom_received_packets_total", kind="specialised") == 400 + 200
    assert value(s, "classroom_sent_packets_total", kind="specialised") == 2 * (400 + 200)
    # five slots (the lead's talk-back slot too), each with its counters as they stand
    assert value(s, "classroom_nacks_received_total", kind="specialised") == 5 * 5
    assert value(s, "classroom_retransmissions_sent_total", kind="specialised") == 5 * 4
    assert value(s, "classroom_keyframe_requests_received_total", kind="specialised") == 5
    # bit rates over the one second between the snapshots: (300 + 150) packets of 1000 bytes came in
    assert value(s, "classroom_bitrate_bits_per_second", kind="specialised", direction="in") == 450 * 1000 * 8
    assert value(s, "classroom_bitrate_bits_per_second", kind="specialised", direction="out") == 2 * 450 * 8000
    # quality across subscribers (each its worst slot): losses 0.02 and 0.04, RTTs 40 and 80 ms
    assert abs(value(s, "classroom_subscriber_loss_ratio_mean", kind="specialised") - 0.03) < 1e-9
    assert value(s, "classroom_subscriber_loss_ratio_max", kind="specialised") == 0.04
    assert abs(value(s, "classroom_subscriber_rtt_seconds_max", kind="specialised") - 0.08) < 1e-9
    assert value(s, "classroom_fanout_seconds_per_packet_max", kind="specialised") == 12.5e-6
    assert value(s, "classroom_publisher_jitter_seconds_max", kind="specialised") == 0.004
    # classroom 13 never came, but the lesson started only a minute ago
    assert value(s, "classroom_receivers_absent", kind="specialised") == 0
    assert value(s, "classroom_lessons_lead_missing", kind="specialised") == 0


def test_counters_never_go_back_when_classrooms_leave_rooms_close_or_peers_reconnect() -> None:
    clock = Clock(START + 60)
    m = make(clock)
    names = ("classroom_sent_packets_total", "classroom_received_packets_total", "classroom_nacks_received_total")
    seen: list[dict[str, float]] = []

    def record() -> None:
        s = scrape(m)
        seen.append({n: value(s, n, kind="specialised") for n in names})

    m.observe("lesson-7", FACTS, snapshot(100))
    record()
    clock.advance(1)
    m.observe("lesson-7", FACTS, snapshot(200, receivers=(11,)))  # classroom 12 left
    record()
    clock.advance(1)
    again = snapshot(50)  # classroom 12 back on a new connection: new SSRCs, counters from zero
    again["participants"]["classroom-12"] = _receiver(50, 900, 0.0, 10.0)
    m.observe("lesson-7", FACTS, again)
    record()
    clock.advance(1)
    m.on_event(MediaEvent(EventKind.ROOM_CLOSED, "lesson-7"))
    record()
    m.observe("lesson-8", FACTS, snapshot(10))  # another lesson of the same kind
    record()
    for before, after in itertools.pairwise(seen):
        assert all(after[n] >= before[n] for n in names), (before, after)
    s = scrape(m)
    assert value(s, "classroom_lessons_live", kind="specialised") == 1  # the closed room's gauges went


def test_no_label_names_a_subscriber() -> None:
    clock = Clock(START + 600)
    m = make(clock, alerts_firing=lambda: {("lead_missing", "critical"): 1})
    big = snapshot(100, receivers=tuple(range(20, 60)))
    m.observe("lesson-7", FACTS, big)
    m.on_event(MediaEvent(EventKind.FIRST_KEYFRAME, "lesson-7", "classroom-20", TrackKind.CAMERA, 0.0,
                          {"mid": "0", "slot": "camera", "wait_ms": 120}))
    text = m.render().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
    assert "classroom-2" not in text and "lesson-7" not in text and "lead-1" not in text
    s = scrape(m)
    assert value(s, "classroom_alerts_firing", rule="lead_missing", severity="critical") == 1
    assert value(s, "classroom_keyframe_wait_seconds_count", kind="specialised") == 1
    # 40 classrooms watching, but none of the lesson's own three, ten minutes after its start
    assert value(s, "classroom_receivers_absent", kind="specialised") == 3


def test_lead_missing_receivers_absent_and_frozen_streams() -> None:
    snap = snapshot(100, receivers=(11,))
    snap["lead_on_air"] = False
    for at, lead_missing, absent in ((START + 30, 0, 0), (START + 121, 1, 0), (START + 301, 1, 2),
                                     (START + 2401, 0, 0)):
        g = room_gauges(snap, FACTS, at)
        assert (g.lead_missing, g.receivers_absent) == (lead_missing, absent), at
    clock = Clock(START + 60)
    m = make(clock)
    m.observe("lesson-7", FACTS, snapshot(100))
    for _ in range(4):  # the lead's camera stops growing; audio goes on
        clock.advance(1)
        snap = snapshot(100)
        snap["participants"]["lead-1"]["published"]["audio"]["packets"] += int(clock.mono)
        m.observe("lesson-7", FACTS, snap)
    s = scrape(m)
    assert value(s, "classroom_streams_frozen", kind="specialised", side="lead") == 1
    assert value(s, "classroom_streams_frozen", kind="specialised", side="subscriber") == 2
    clock.advance(1)
    m.observe("lesson-7", FACTS, snapshot(200))
    s = scrape(m)
    assert value(s, "classroom_streams_frozen", kind="specialised", side="lead") == 0


def test_a_malformed_snapshot_is_logged_counted_and_loses_nothing(caplog: Any) -> None:
    clock = Clock(START + 60)
    m = make(clock)
    m.observe("lesson-7", FACTS, snapshot(100))
    bad = copy.deepcopy(snapshot(500))
    bad["participants"]["classroom-11"]["slots"] = ["not", "a", "mapping"]
    with caplog.at_level(logging.WARNING):
        m.observe("lesson-7", FACTS, bad)
        m.observe("lesson-7", FACTS, "junk")  # type: ignore[arg-type]
    assert "malformed" in caplog.text
    s = scrape(m)
    assert value(s, "classroom_monitoring_bad_snapshots_total") == 2
    assert value(s, "classroom_received_packets_total", kind="specialised") == 150  # the good snapshot's
    assert value(s, "classroom_lessons_live", kind="specialised") == 1


def test_join_to_first_frame_counts_from_the_later_of_join_and_the_lead_on_air() -> None:
    clock = Clock(START + 60)
    joined = {("lesson-7", "classroom-11"): clock.mono}
    m = make(clock, joined_at=lambda room, pid: joined.get((room, pid)))
    m.observe("lesson-7", FACTS, snapshot(100))
    clock.advance(4.0)  # the classroom waited for the teacher
    m.on_event(MediaEvent(EventKind.PUBLISHER_UP, "lesson-7", "lead-1", TrackKind.CAMERA))
    clock.advance(0.7)
    first = MediaEvent(EventKind.FIRST_KEYFRAME, "lesson-7", "classroom-11", TrackKind.CAMERA, 0.0,
                       {"mid": "0", "slot": "camera", "wait_ms": 300})
    m.on_event(first)
    m.on_event(first)  # the screen slot's first keyframe of the same join: not a second join
    s = scrape(m)
    assert value(s, "classroom_join_to_first_frame_seconds_count", kind="specialised") == 1
    assert value(s, "classroom_join_to_first_frame_seconds_bucket", kind="specialised", le="0.5") == 0
    assert value(s, "classroom_join_to_first_frame_seconds_bucket", kind="specialised", le="1.0") == 1


def test_refused_joins_come_from_the_audit_trail_by_reason_stage_and_kind(tmp_path: Path) -> None:
    db = Database(tmp_path / "db.sqlite3")
    store = AccessStore(db)
    store.audit("x", "receiver", "join", "refused", lesson_id=None, reason="before_old")  # before the start
    clock = Clock(START)
    m = make(clock, db=db, kind_of=lambda lesson_id: "master" if lesson_id == 5 else None)
    m._init_audit()
    store.audit("classroom:1", "receiver", "join", "refused", lesson_id=5, reason="outside_window")
    store.audit("classroom:1", "receiver", "join", "refused", lesson_id=5, reason="outside_window")
    store.audit("t", "lead", "join_token", "refused", lesson_id=99, reason="not_entitled")
    store.audit("t", "lead", "join", "admitted", lesson_id=5)
    store.audit("?", "", "join", "refused", reason="DROP TABLE audit; --")
    assert m.read_refusals() == 4
    m.observe("lesson-5", RoomFacts("master", START, START + 60), {**snapshot(1), "refused_joins": 3})
    s = scrape(m)
    assert value(s, "classroom_refused_joins_total", kind="master", reason="outside_window", stage="join") == 2
    assert value(s, "classroom_refused_joins_total", kind="unknown", reason="not_entitled", stage="token") == 1
    assert value(s, "classroom_refused_joins_total", kind="unknown", reason="other", stage="join") == 1
    assert value(s, "classroom_refused_joins_total", kind="master", reason="capacity", stage="media") == 3
    assert m.read_refusals() == 0


def test_who_may_scrape() -> None:
    open_ = Metrics(MonitoringConfig(node_name="n"))
    assert open_.scrape_allowed("127.0.0.1", "") is None
    assert open_.scrape_allowed("192.168.3.4", "") is None
    assert open_.scrape_allowed("::ffff:10.0.0.7", "") is None
    assert "metrics_allow" in (open_.scrape_allowed("8.8.8.8", "") or "")
    token = Metrics(MonitoringConfig(node_name="n", metrics_allow=(), metrics_token="s3cret-abc"))
    assert token.scrape_allowed("8.8.8.8", "Bearer s3cret-abc") is None
    assert "token" in (token.scrape_allowed("8.8.8.8", "Bearer wrong") or "")
    off = Metrics(MonitoringConfig(node_name="n", metrics_enabled=False))
    assert off.scrape_allowed("127.0.0.1", "") is not None


async def test_one_scrape_sees_every_media_worker() -> None:
    plane = WorkerMediaPlane(MediaConfig(workers=2, announced_addresses=("127.0.0.1",)))
    await plane.start()
    try:
        await plane.open_room("lesson-1")
        m = Metrics(MonitoringConfig(node_name="node-a"))
        m.set_processes(await plane.worker_stats())
        s = scrape(m)
        cpu = {dict(k)["process"]: v for k, v in s["classroom_process_cpu_seconds_total"].items()}
        assert set(cpu) == {"control", "worker-0", "worker-1"} and all(v > 0 for v in cpu.values())
        lag = {dict(k)["process"] for k in s["classroom_event_loop_lag_seconds"]}
        assert lag == {"control", "worker-0", "worker-1"}
        assert sum(v for v in s["classroom_worker_rooms"].values()) == 1
        everything = await plane.stats()  # the operators' aggregate carries the same figures
        assert all(w["cpu_seconds"] and w["loop_lag_s"] is not None for w in everything["workers"])
        await asyncio.sleep(0)
    finally:
        await plane.stop()
