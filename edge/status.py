"""What `classroom cluster` shows an operator: the live nodes, the job lock's holder, and where a classroom
would be placed and why (the reading is thin I/O; the table is a pure function of it)."""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass
from typing import Any

from edge.joblock import JOB_LOCK
from edge.placement import ClassroomLocation, Placement, place
from edge.registry import NodeState, Registry


@dataclass(frozen=True)
class ClusterStatus:
    nodes: list[NodeState]
    lock: tuple[str, int] | None  # holder, epoch
    placement: Placement | None
    at: float  # wall-clock time of the reading (the nodes' `seen` on Redis is wall-clock too)

    def to_json(self) -> dict[str, Any]:
        p = self.placement
        return {
            "nodes": [s.to_json() for s in self.nodes],
            "job_lock": {"holder": self.lock[0], "epoch": self.lock[1]} if self.lock else None,
            "placement": None if p is None else {
                "node": p.node.node.id if p.node else None, "tier": p.tier, "reason_zh": p.reason_zh,
                "reason_en": p.reason_en,
            },
        }


async def read_status(registry: Registry, where: ClassroomLocation | None = None) -> ClusterStatus:
    nodes = await registry.nodes()
    lock = await registry.lease_holder(JOB_LOCK)
    return ClusterStatus(nodes, lock, place(where, nodes) if where is not None else None, time.time())


def width(text: str) -> int:
    """Columns a terminal gives the text: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def format_status(status: ClusterStatus, lang: str = "zh") -> str:
    zh = lang != "en"
    head = ("节点", "角色", "地区", "区县", "地址", "订阅/容量", "CPU", "出口 Mbit/s", "循环延迟", "心跳") if zh else (
        "node", "role", "region", "county", "address", "subs/capacity", "CPU", "egress Mbit/s", "loop lag", "heartbeat")
    rows = [head]
    for s in status.nodes:
        ago = max(0.0, status.at - s.seen)
        role = s.node.role + (f" ← {s.node.upstream}" if s.node.upstream else "")
        rows.append((s.node.id, role, s.node.region or "-", s.node.county or "-", s.node.address,
                     f"{s.load.subscriptions}/{s.node.capacity}", f"{round(s.load.cpu * 100)}%",
                     f"{s.load.egress_mbps:.1f}", f"{round(s.load.loop_lag_ms)} ms",
                     f"{ago:.1f}s" + (" 前" if zh else " ago")))
    widths = [max(width(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell + " " * (w - width(cell)) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    if not status.nodes:
        lines.append("（没有在线节点）" if zh else "(no live node)")
    if status.lock is None:
        lines.append("调度任务锁：无人持有（任务暂停，直到某个节点取得）" if zh
                     else "scheduler's job lock: held by nobody (timed jobs wait until a node takes it)")
    else:
        holder, epoch = status.lock
        lines.append(f"调度任务锁：{holder}（第 {epoch} 代）" if zh
                     else f"scheduler's job lock: {holder} (epoch {epoch})")
    if status.placement is not None:
        lines.append(("放置：" if zh else "placement: ") + status.placement.reason("zh" if zh else "en"))
    return "\n".join(lines)
