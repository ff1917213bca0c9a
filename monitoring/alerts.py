"""Stream-health alerts: pure rules over the county's live state, and the firing/clearing state machine.

`conditions()` says which problems hold right now (one `Condition` per problem and subject); the
`AlertEngine` turns that into alerts the way Prometheus's `for:` does: a condition must hold for its
rule's `for_s` before the alert fires, and an alert clears by itself once its condition has been gone
for `clear_after_s` (so a flapping link does not page the team twice a minute). Acknowledging says who
is on it; it does not silence a new alert of the same kind later. The I/O (the alert log in SQLite,
pushing to `/tech`, webhooks) lives in `monitoring/monitor.py` and `monitoring/webhooks.py`.

The rules and their thresholds (the `[alerts]` section) are listed in docs/monitoring.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from monitoring.observation import LessonSample


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY_ORDER = {Severity.WARNING: 1, Severity.CRITICAL: 2}


@dataclass(frozen=True)
class AlertConfig:
    """The `[alerts]` section: when each rule fires, and where alerts are sent."""

    enabled: bool = True
    lead_absent_after_s: float = 120.0
    classroom_absent_after_s: float = 300.0
    classroom_lost_for_s: float = 30.0
    freeze_after_s: float = 3.0
    picture_frozen_for_s: float = 5.0
    loss_fraction: float = 0.05
    loss_for_s: float = 20.0
    loop_lag_ms: float = 250.0
    loop_lag_for_s: float = 10.0
    cpu_percent: float = 90.0
    cpu_for_s: float = 60.0
    disk_free_fraction: float = 0.05
    disk_free_bytes: float = 1024**3
    clear_after_s: float = 5.0  # a condition gone this long clears its alert
    # chat robots and other receivers, one per entry: "FORMAT URL [SECRET]", FORMAT json, wecom or dingtalk
    # (a DingTalk robot with signing takes its SEC... secret as the third word)
    alert_webhooks: tuple[str, ...] = ()
    webhook_min_severity: str = "warning"  # warning: every alert; critical: only critical ones
    webhook_timeout_s: float = 5.0
    evaluate_every_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("lead_absent_after_s", "classroom_absent_after_s", "classroom_lost_for_s", "freeze_after_s",
                     "picture_frozen_for_s", "loss_for_s", "loop_lag_ms", "loop_lag_for_s", "cpu_for_s",
                     "clear_after_s", "webhook_timeout_s", "evaluate_every_s", "disk_free_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"alerts.{name} must not be negative")
        if not 0 < self.loss_fraction < 1:
            raise ValueError("alerts.loss_fraction must be between 0 and 1")
        if not 0 <= self.disk_free_fraction < 1:
            raise ValueError("alerts.disk_free_fraction must be between 0 and 1")
        if self.webhook_min_severity not in ("warning", "critical"):
            raise ValueError("alerts.webhook_min_severity must be warning or critical")
        from monitoring.webhooks import parse_webhooks

        parse_webhooks(self.alert_webhooks)  # a broken receiver line stops the start with its reason


@dataclass(frozen=True, slots=True)
class ProcessHealth:
    name: str  # "control" or "worker <pid>"
    cpu_percent: float | None
    loop_lag_ms: float | None


@dataclass(frozen=True, slots=True)
class DiskHealth:
    path: str
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class Condition:
    """One problem that holds now."""

    rule: str
    key: str  # unique per rule and subject: the identity of the alert
    severity: Severity
    for_s: float  # how long it must hold before the alert fires
    lesson_id: int | None
    subject: str  # who or what: a participant id, a process, a path
    subject_name: str
    summary_zh: str
    summary_en: str
    value: float | None = None
    county_ids: frozenset[int] = frozenset()
    region_ids: frozenset[int] = frozenset()


def lesson_conditions(s: LessonSample, cfg: AlertConfig) -> list[Condition]:
    """The problems of one live lesson now."""
    out: list[Condition] = []
    late_s = s.wall - s.starts_at
    title = f"#{s.lesson_id} {s.subject}"
    scope = {"county_ids": s.county_ids, "region_ids": s.region_ids}
    ended = s.wall >= s.ends_at
    if not ended and late_s >= cfg.lead_absent_after_s and s.lead_state != "on_air":
        out.append(Condition(
            "lead_not_on_air", f"lead_not_on_air:{s.lesson_id}", Severity.CRITICAL, 0.0, s.lesson_id,
            f"lesson-{s.lesson_id}", s.lead_name,
            f"{title}：已开课 {int(late_s // 60)} 分钟，主讲端 {s.lead_name} 仍未开播",
            f"{title}: started {int(late_s // 60)} min ago and the lead {s.lead_name} is not on air",
            late_s, **scope))
    for pid, state in sorted(s.absent.items()):
        name = s.receivers.get(pid, pid)
        if ended:
            break
        if state == "absent" and late_s >= cfg.classroom_absent_after_s:
            wait = 0.0
            zh, en = f"{title}：接收端 {name} 开课后仍未进入", f"{title}: receiving classroom {name} has not joined"
        elif state in ("lost", "left"):
            wait = cfg.classroom_lost_for_s
            zh, en = f"{title}：接收端 {name} 已断线", f"{title}: receiving classroom {name} dropped out"
        else:
            continue
        out.append(Condition("classroom_absent", f"classroom_absent:{s.lesson_id}:{pid}", Severity.WARNING, wait,
                             s.lesson_id, pid, name, zh, en, None, **scope))
    for pid_state in s.participants:
        if pid_state.role == "receiver" and pid_state.link == "lost" and pid_state.participant_id not in s.absent:
            name = pid_state.name
            out.append(Condition(
                "classroom_absent", f"classroom_absent:{s.lesson_id}:{pid_state.participant_id}", Severity.WARNING,
                cfg.classroom_lost_for_s, s.lesson_id, pid_state.participant_id, name,
                f"{title}：接收端 {name} 已断线", f"{title}: receiving classroom {name} dropped out", None, **scope))
    if s.lead_state != "off_air" or s.lead_expected:
        for track in sorted(s.lead_expected - s.lead_live):
            if track not in ("camera", "screen"):
                continue
            what_zh = "摄像头" if track == "camera" else "课件"
            out.append(Condition(
                "stream_frozen", f"stream_frozen:{s.lesson_id}:{track}", Severity.CRITICAL, cfg.freeze_after_s,
                s.lesson_id, f"lead:{track}", s.lead_name,
                f"{title}：主讲端 {s.lead_name} 的{what_zh}画面中断", f"{title}: the lead's {track} stopped sending",
                None, **scope))
    return out


def recording_stopped_condition(lesson_id: int, subject: str, lead_name: str, error: str,
                                county_ids: frozenset[int], region_ids: frozenset[int]) -> Condition:
    """A live lesson's recording stopped (a full or failing disk): the lesson goes on unrecorded from then."""
    title = f"#{lesson_id} {subject}"
    return Condition(
        "recording_stopped", f"recording_stopped:{lesson_id}", Severity.WARNING, 0.0, lesson_id,
        f"lesson-{lesson_id}", lead_name,
        f"{title}：{lead_name} 的录制已停止（{error}），直播不受影响",
        f"{title}: the recording of {lead_name} stopped ({error}); the live lesson goes on",
        None, county_ids=county_ids, region_ids=region_ids)


def quality_conditions(s: LessonSample, quality: Mapping[str, Mapping[str, Any]], cfg: AlertConfig) -> list[Condition]:
    """Freezes and loss, from each participant's computed quality (`monitoring.quality`)."""
    out: list[Condition] = []
    title = f"#{s.lesson_id} {s.subject}"
    scope = {"county_ids": s.county_ids, "region_ids": s.region_ids}
    camera_live = "camera" in s.lead_live
    for p in s.participants:
        q = quality.get(p.participant_id)
        if q is None or p.link != "ok":
            continue
        reasons = q.get("reasons") or ()
        if p.role == "receiver" and camera_live and ("freeze" in reasons or "waiting_for_keyframe" in reasons):
            out.append(Condition(
                "picture_frozen", f"picture_frozen:{s.lesson_id}:{p.participant_id}", Severity.WARNING,
                cfg.picture_frozen_for_s, s.lesson_id, p.participant_id, p.name,
                f"{title}：接收端 {p.name} 画面卡住", f"{title}: the picture is frozen at {p.name}", None, **scope))
        loss = q.get("loss")
        if loss is not None and loss > cfg.loss_fraction:
            who_zh = "主讲端" if p.role == "lead" else "接收端"
            out.append(Condition(
                "high_loss", f"high_loss:{s.lesson_id}:{p.participant_id}", Severity.WARNING, cfg.loss_for_s,
                s.lesson_id, p.participant_id, p.name,
                f"{title}：{who_zh} {p.name} 丢包 {loss:.0%}", f"{title}: {p.name} loses {loss:.0%} of packets",
                float(loss), **scope))
    return out


def system_conditions(processes: Iterable[ProcessHealth], disks: Iterable[DiskHealth],
                      cfg: AlertConfig) -> list[Condition]:
    out: list[Condition] = []
    for p in processes:
        if p.loop_lag_ms is not None and p.loop_lag_ms > cfg.loop_lag_ms:
            out.append(Condition("loop_lag", f"loop_lag:{p.name}", Severity.WARNING, cfg.loop_lag_for_s, None,
                                 p.name, p.name, f"{p.name} 事件循环延迟 {p.loop_lag_ms:.0f} ms",
                                 f"{p.name}: event loop lags {p.loop_lag_ms:.0f} ms", p.loop_lag_ms))
        if p.cpu_percent is not None and p.cpu_percent > cfg.cpu_percent:
            out.append(Condition("cpu_hot", f"cpu_hot:{p.name}", Severity.WARNING, cfg.cpu_for_s, None, p.name,
                                 p.name, f"{p.name} CPU 占用 {p.cpu_percent:.0f}%",
                                 f"{p.name}: CPU at {p.cpu_percent:.0f}%", p.cpu_percent))
    for d in disks:
        fraction = d.free_bytes / d.total_bytes if d.total_bytes else 1.0
        if fraction < cfg.disk_free_fraction or d.free_bytes < cfg.disk_free_bytes:
            gib = d.free_bytes / 1024**3
            out.append(Condition("disk_full", f"disk_full:{d.path}", Severity.CRITICAL, 0.0, None, d.path, d.path,
                                 f"数据目录 {d.path} 磁盘将满：剩余 {gib:.1f} GiB（{fraction:.0%}）",
                                 f"data folder {d.path} is filling: {gib:.1f} GiB ({fraction:.0%}) free",
                                 float(d.free_bytes)))
    return out


@dataclass
class Alert:
    """One alert: firing (cleared_at None) or cleared. Persisted by the monitor; `id` is the log's row."""

    id: int | None
    rule: str
    key: str
    severity: Severity
    lesson_id: int | None
    subject: str
    subject_name: str
    summary_zh: str
    summary_en: str
    value: float | None
    fired_at: float  # wall clock
    cleared_at: float | None = None
    acked_by: str | None = None
    acked_at: float | None = None
    county_ids: frozenset[int] = frozenset()
    region_ids: frozenset[int] = frozenset()

    @property
    def firing(self) -> bool:
        return self.cleared_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "key": self.key, "severity": str(self.severity),
            "lesson_id": self.lesson_id, "subject": self.subject, "subject_name": self.subject_name,
            "summary_zh": self.summary_zh, "summary_en": self.summary_en, "value": self.value,
            "fired_at": self.fired_at, "cleared_at": self.cleared_at, "acked_by": self.acked_by,
            "acked_at": self.acked_at, "firing": self.firing,
        }


@dataclass(frozen=True, slots=True)
class Change:
    kind: str  # fired | cleared | acked
    alert: Alert


@dataclass
class _Pending:
    since: float  # monotonic: when the condition began to hold
    condition: Condition


@dataclass
class AlertEngine:
    """Conditions in, fired and cleared alerts out. Times: `mono` for durations, `wall` for the log."""

    clear_after_s: float
    firing: dict[str, Alert] = field(default_factory=dict)
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _missing_since: dict[str, float] = field(default_factory=dict)

    def restore(self, alerts: Iterable[Alert]) -> None:
        """Alerts still firing in the log (after a restart): they clear by themselves once their cause is gone."""
        for a in alerts:
            if a.firing:
                self.firing[a.key] = a

    def evaluate(self, conditions: Sequence[Condition], mono: float, wall: float) -> list[Change]:
        changes: list[Change] = []
        now_keys = {c.key: c for c in conditions}
        for key, c in now_keys.items():
            self._missing_since.pop(key, None)
            if key in self.firing:
                continue  # it keeps what it said when it fired; the live view shows the figures of now
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(mono, c)
            else:
                pending.condition = c
            if mono - pending.since >= c.for_s:
                del self._pending[key]
                alert = Alert(None, c.rule, key, c.severity, c.lesson_id, c.subject, c.subject_name, c.summary_zh,
                              c.summary_en, c.value, wall, county_ids=c.county_ids, region_ids=c.region_ids)
                self.firing[key] = alert
                changes.append(Change("fired", alert))
        for key in list(self._pending):
            if key not in now_keys:
                del self._pending[key]  # it did not hold long enough to fire
        for key, alert in list(self.firing.items()):
            if key in now_keys:
                continue
            gone = self._missing_since.setdefault(key, mono)
            if mono - gone >= self.clear_after_s:
                del self.firing[key]
                del self._missing_since[key]
                alert.cleared_at = wall
                changes.append(Change("cleared", alert))
        return changes

    def forget_lesson(self, lesson_id: int, wall: float) -> list[Change]:
        """A lesson that closed: its alerts clear (their cause went with it)."""
        changes = []
        for key, alert in list(self.firing.items()):
            if alert.lesson_id == lesson_id:
                del self.firing[key]
                self._missing_since.pop(key, None)
                alert.cleared_at = wall
                changes.append(Change("cleared", alert))
        for key in [k for k, p in self._pending.items() if p.condition.lesson_id == lesson_id]:
            del self._pending[key]
        return changes
