"""Which node carries a receiving classroom: pure rules, and the reason for the technicians.

The classroom goes to a node of its own county if one is live and has room; else to one of its region;
else to the least loaded node anywhere. Within a tier the least loaded node wins (by share of capacity in
use, then CPU, then egress), ties broken by node id, so the same picture always gives the same answer
whatever order the nodes came in. A node is never chosen when it is full (its subscriptions plus the
classroom's would pass its capacity, or its CPU is at `max_cpu`) or expired (no heartbeat for
`expiry_s`, when `now` is given). Every answer carries a reason in Chinese and English.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from edge.registry import NodeState

TIERS = ("county", "region", "any")


@dataclass(frozen=True)
class ClassroomLocation:
    """Where a receiving classroom is: its county and region (as the nodes register theirs)."""

    county: str
    region: str


@dataclass(frozen=True)
class Placement:
    """The node chosen (None: no node can take the classroom), the tier it came from, and why."""

    node: NodeState | None
    tier: str  # county, region, any; "none" when nothing fits
    reason_zh: str
    reason_en: str

    def reason(self, lang: str = "zh") -> str:
        return self.reason_en if lang == "en" else self.reason_zh


def is_full(state: NodeState, need: int = 1, max_cpu: float = 0.9) -> bool:
    return state.load.subscriptions + need > state.node.capacity or state.load.cpu >= max_cpu


def is_expired(state: NodeState, now: float | None, expiry_s: float | None) -> bool:
    return now is not None and expiry_s is not None and now - state.seen >= expiry_s


def load_key(state: NodeState) -> tuple[float, float, float, str]:
    """Smaller is less loaded; the id last, so ties are always broken the same way."""
    capacity = state.node.capacity
    share = state.load.subscriptions / capacity if capacity > 0 else 1.0
    return (share, state.load.cpu, state.load.egress_mbps, state.node.id)


def with_pending(nodes: Sequence[NodeState], pending: Mapping[str, int]) -> list[NodeState]:
    """The nodes with the classrooms just placed on them and not yet in their heartbeats added to their
    subscriptions: a burst of joins (a lesson's classrooms all coming in at its start) spreads over the
    nodes instead of all going to the one that was least loaded at the last heartbeat."""
    out = []
    for state in nodes:
        extra = pending.get(state.node.id, 0)
        if extra > 0:
            state = replace(state, load=replace(state.load, subscriptions=state.load.subscriptions + extra))
        out.append(state)
    return out


def _in_tier(state: NodeState, tier: str, where: ClassroomLocation) -> bool:
    if tier == "county":
        return state.node.county == where.county
    if tier == "region":
        return state.node.region == where.region
    return True


def _why_not(states: Sequence[NodeState], need: int, max_cpu: float, now: float | None,
             expiry_s: float | None) -> tuple[str, str]:
    """Why none of these nodes could take it, e.g. ('2 个已满，1 个已过期', '2 full, 1 expired')."""
    if not states:
        return "没有节点", "no node"
    expired = sum(1 for s in states if is_expired(s, now, expiry_s))
    full = sum(1 for s in states if not is_expired(s, now, expiry_s) and is_full(s, need, max_cpu))
    zh = [f"{n} 个{w}" for n, w in ((full, "已满"), (expired, "已过期")) if n]
    en = [f"{n} {w}" for n, w in ((full, "full"), (expired, "expired")) if n]
    return "，".join(zh), ", ".join(en)


def _room(state: NodeState) -> tuple[str, str]:
    free, capacity = state.free, state.node.capacity
    cpu = round(state.load.cpu * 100)
    return f"尚余 {free}/{capacity} 路，CPU {cpu}%", f"{free} of {capacity} subscriptions free, CPU {cpu}%"


def place(
    where: ClassroomLocation,
    nodes: Sequence[NodeState],
    *,
    need: int = 1,
    max_cpu: float = 0.9,
    now: float | None = None,
    expiry_s: float | None = None,
) -> Placement:
    """Choose the node for a classroom that needs `need` subscriptions (see the module's docstring)."""
    usable = [s for s in nodes if not is_expired(s, now, expiry_s) and not is_full(s, need, max_cpu)]
    county_nodes = [s for s in nodes if _in_tier(s, "county", where)]
    region_nodes = [s for s in nodes if _in_tier(s, "region", where) and not _in_tier(s, "county", where)]
    county_zh, county_en = _why_not(county_nodes, need, max_cpu, now, expiry_s)
    region_zh, region_en = _why_not(region_nodes, need, max_cpu, now, expiry_s)
    for tier in TIERS:
        fits = [s for s in usable if _in_tier(s, tier, where)]
        if not fits:
            continue
        chosen = min(fits, key=load_key)
        room_zh, room_en = _room(chosen)
        nid = chosen.node.id
        if tier == "county":
            zh = f"节点 {nid}：本县（{where.county}）节点，{room_zh}"
            en = f"node {nid}: in the classroom's own county {where.county}, {room_en}"
        elif tier == "region":
            zh = (f"节点 {nid}：本县（{where.county}）无可用节点（{county_zh}），"
                  f"改用本地区（{where.region}）节点，{room_zh}")
            en = (f"node {nid}: nothing in county {where.county} can take it ({county_en}); "
                  f"in region {where.region}, {room_en}")
        else:
            zh = (f"节点 {nid}：本县（{where.county}）无可用节点（{county_zh}），本地区（{where.region}）也无"
                  f"（{region_zh}），改用负载最低的外地节点（{chosen.node.county}），{room_zh}")
            en = (f"node {nid}: nothing in county {where.county} ({county_en}) or region {where.region} "
                  f"({region_en}) can take it; the least loaded node elsewhere ({chosen.node.county}), {room_en}")
        return Placement(chosen, tier, zh, en)
    all_zh, all_en = _why_not(nodes, need, max_cpu, now, expiry_s)
    return Placement(None, "none", f"无可用节点：{all_zh}", f"no node can take the classroom: {all_en}")


def place_on(
    node_id: str,
    where: ClassroomLocation,
    nodes: Sequence[NodeState],
    *,
    by: str,
    need: int = 1,
    max_cpu: float = 0.9,
    now: float | None = None,
    expiry_s: float | None = None,
) -> Placement:
    """A technician's move: node `node_id` if it is live and has room (tier `moved`), else the usual rule,
    with why the chosen node could not take it first in the reason."""
    chosen = next((s for s in nodes if s.node.id == node_id), None)
    if chosen is not None and not is_expired(chosen, now, expiry_s) and not is_full(chosen, need, max_cpu):
        room_zh, room_en = _room(chosen)
        return Placement(chosen, "moved", f"节点 {node_id}：由 {by} 移到此节点，{room_zh}",
                         f"node {node_id}: moved there by {by}, {room_en}")
    if chosen is None:
        zh, en = f"{by} 指定的节点 {node_id} 不在线", f"node {node_id} chosen by {by} is not live"
    else:
        why_zh, why_en = _why_not([chosen], need, max_cpu, now, expiry_s)
        zh, en = f"{by} 指定的节点 {node_id} {why_zh}", f"node {node_id} chosen by {by} is {why_en.split(' ', 1)[1]}"
    usual = place(where, nodes, need=need, max_cpu=max_cpu, now=now, expiry_s=expiry_s)
    return Placement(usual.node, usual.tier, f"{zh}；{usual.reason_zh}", f"{en}; {usual.reason_en}")
