"""Placement rules: own county first, then the region, then the least loaded; never full, never expired."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from edge.placement import ClassroomLocation, is_expired, is_full, load_key, place, place_on, with_pending
from edge.registry import Load, Node, NodeState

HERE = ClassroomLocation(county="county-a", region="region-1")


def state(node_id: str, county: str, region: str, capacity: int, subs: int, cpu: float = 0.1,
          seen: float = 100.0) -> NodeState:
    return NodeState(Node(node_id, region, county, f"http://{node_id}", capacity, role="edge"),
                     Load(subscriptions=subs, cpu=cpu), seen)


def test_own_county_first_even_if_busier() -> None:
    nodes = [state("far", "county-z", "region-9", 100, 0), state("near", "county-a", "region-1", 100, 80),
             state("region", "county-b", "region-1", 100, 1)]
    chosen = place(HERE, nodes)
    assert chosen.node is not None and chosen.node.node.id == "near" and chosen.tier == "county"
    assert "county-a" in chosen.reason_en and "本县" in chosen.reason_zh
    assert "20 of 100" in chosen.reason_en and "20/100" in chosen.reason("zh")


def test_a_technicians_move_goes_to_the_chosen_node_even_outside_the_county() -> None:
    nodes = [state("near", "county-a", "region-1", 100, 0), state("far", "county-z", "region-9", 100, 50)]
    chosen = place_on("far", HERE, nodes, by="tech1")
    assert chosen.node is not None and chosen.node.node.id == "far" and chosen.tier == "moved"
    assert "moved there by tech1" in chosen.reason_en and "由 tech1 移到此节点" in chosen.reason_zh


def test_a_move_to_a_full_or_gone_node_falls_back_to_the_usual_rule_and_says_why() -> None:
    nodes = [state("near", "county-a", "region-1", 100, 0), state("full", "county-z", "region-9", 10, 10)]
    chosen = place_on("full", HERE, nodes, by="tech1")
    assert chosen.node is not None and chosen.node.node.id == "near" and chosen.tier == "county"
    assert chosen.reason_en.startswith("node full chosen by tech1 is full; node near:"), chosen.reason_en
    assert "已满" in chosen.reason_zh
    gone = place_on("gone", HERE, nodes, by="tech1")
    assert gone.node is not None and gone.node.node.id == "near"
    assert "node gone chosen by tech1 is not live" in gone.reason_en and "不在线" in gone.reason_zh


def test_region_when_own_county_is_full_and_says_why() -> None:
    nodes = [state("near", "county-a", "region-1", 10, 10), state("gone", "county-a", "region-1", 10, 0, seen=0),
             state("r1", "county-b", "region-1", 10, 5), state("r2", "county-c", "region-1", 10, 2)]
    chosen = place(HERE, nodes, now=100.0, expiry_s=15.0)
    assert chosen.node is not None and chosen.node.node.id == "r2" and chosen.tier == "region"
    assert "1 full, 1 expired" in chosen.reason_en
    assert "1 个已满，1 个已过期" in chosen.reason_zh and "本地区" in chosen.reason_zh


def test_elsewhere_the_least_loaded() -> None:
    nodes = [state("x", "county-x", "region-2", 100, 50), state("y", "county-y", "region-3", 10, 1),
             state("near", "county-a", "region-1", 10, 3, cpu=0.95)]  # CPU at its limit counts as full
    chosen = place(HERE, nodes)
    assert chosen.node is not None and chosen.node.node.id == "y" and chosen.tier == "any"
    assert "least loaded" in chosen.reason_en and "负载最低" in chosen.reason_zh
    assert "no node" in chosen.reason_en  # nothing else in region-1


def test_nothing_fits() -> None:
    nodes = [state("a", "county-a", "region-1", 5, 5), state("b", "county-b", "region-1", 5, 0, seen=0)]
    chosen = place(HERE, nodes, now=100.0, expiry_s=15.0)
    assert chosen.node is None and chosen.tier == "none"
    assert chosen.reason_en == "no node can take the classroom: 1 full, 1 expired"
    assert chosen.reason_zh == "无可用节点：1 个已满，1 个已过期"
    assert place(HERE, []).reason_en == "no node can take the classroom: no node"


def test_need_counts_the_classrooms_subscriptions() -> None:
    nodes = [state("near", "county-a", "region-1", 10, 8), state("r", "county-b", "region-1", 10, 0)]
    assert place(HERE, nodes, need=2).node.node.id == "near"  # type: ignore[union-attr]
    assert place(HERE, nodes, need=3).node.node.id == "r"  # type: ignore[union-attr]


COUNTIES = ["county-a", "county-b", "county-c", "county-d"]
REGION_OF = {"county-a": "region-1", "county-b": "region-1", "county-c": "region-2", "county-d": "region-3"}


@st.composite
def pictures(draw: st.DrawFn) -> list[NodeState]:
    n = draw(st.integers(0, 8))
    out = []
    for i in range(n):
        county = draw(st.sampled_from(COUNTIES))
        capacity = draw(st.integers(0, 10))
        out.append(state(f"n{i}", county, REGION_OF[county], capacity, draw(st.integers(0, 12)),
                         cpu=draw(st.sampled_from([0.0, 0.3, 0.5, 0.9, 1.0])),
                         seen=draw(st.sampled_from([100.0, 90.0, 80.0]))))
    return out


NOW, EXPIRY = 100.0, 15.0


def fits(s: NodeState, need: int) -> bool:
    return not is_full(s, need) and not is_expired(s, NOW, EXPIRY)


@settings(max_examples=300, deadline=None)
@given(pictures(), st.integers(1, 3))
def test_never_full_or_expired_and_something_when_anything_fits(nodes: list[NodeState], need: int) -> None:
    chosen = place(HERE, nodes, need=need, now=NOW, expiry_s=EXPIRY)
    if chosen.node is None:
        assert not any(fits(s, need) for s in nodes)
    else:
        assert fits(chosen.node, need)
        assert chosen.node.load.subscriptions + need <= chosen.node.node.capacity
    assert chosen.reason_zh and chosen.reason_en


@settings(max_examples=300, deadline=None)
@given(pictures(), st.integers(1, 3))
def test_prefers_own_county_then_region_and_least_loaded_within(nodes: list[NodeState], need: int) -> None:
    chosen = place(HERE, nodes, need=need, now=NOW, expiry_s=EXPIRY)
    county = [s for s in nodes if s.node.county == HERE.county and fits(s, need)]
    region = [s for s in nodes if s.node.region == HERE.region and fits(s, need)]
    if county:
        assert chosen.tier == "county" and chosen.node in county
        assert chosen.node == min(county, key=load_key)
    elif region:
        assert chosen.tier == "region" and chosen.node == min(region, key=load_key)
    elif chosen.node is not None:
        assert chosen.tier == "any" and chosen.node == min((s for s in nodes if fits(s, need)), key=load_key)


@settings(max_examples=200, deadline=None)
@given(pictures(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_order(nodes: list[NodeState], rnd: random.Random) -> None:
    first = place(HERE, nodes, now=NOW, expiry_s=EXPIRY)
    shuffled = list(nodes)
    rnd.shuffle(shuffled)
    again = place(HERE, shuffled, now=NOW, expiry_s=EXPIRY)
    assert again == first


def test_ties_go_to_the_smallest_id() -> None:
    nodes = [state("n2", "county-a", "region-1", 10, 5, cpu=0.5), state("n1", "county-a", "region-1", 10, 5, cpu=0.5)]
    assert place(HERE, nodes).node.node.id == "n1"  # type: ignore[union-attr]


def test_classrooms_just_placed_count_on_their_node_until_its_heartbeat_carries_them() -> None:
    nodes = [state("a", "county-x", "region-2", 10, 2), state("b", "county-y", "region-2", 10, 3)]
    assert place(HERE, nodes).node.node.id == "a"  # type: ignore[union-attr]
    busier = with_pending(nodes, {"a": 2, "gone": 5})
    assert [s.load.subscriptions for s in busier] == [4, 3] and busier[1] is nodes[1]
    assert place(HERE, busier).node.node.id == "b"  # type: ignore[union-attr]
    assert place(HERE, with_pending(nodes, {"a": 8})).node.node.id == "b"  # type: ignore[union-attr]
    assert place(HERE, with_pending(nodes, {"a": 8, "b": 7})).node is None  # both full with what is pending
