"""What `classroom cluster` prints: the nodes in aligned columns, the lock's holder, the placement's reason."""

from __future__ import annotations

from edge.placement import ClassroomLocation
from edge.registry import InProcessRegistry, Load, Node
from edge.status import format_status, read_status, width
from tests.edge.test_registry_contract import FakeClock


async def test_status_of_an_in_process_registry_in_both_languages() -> None:
    clock = FakeClock()
    registry = InProcessRegistry(clock=clock)
    await registry.register(Node("origin-1", "宁夏", "沙坡头区", "https://o", 600), Load(120, 0.4, 300.0))
    await registry.register(Node("edge-zw", "宁夏", "中宁县", "https://e", 200, role="edge"), Load(200, 0.2, 90.0))
    status = await read_status(registry, ClassroomLocation("中宁县", "宁夏"))
    assert status.lock is None and status.placement is not None
    assert status.placement.node is not None and status.placement.node.node.id == "origin-1"
    zh = format_status(status).splitlines()
    assert zh[0].startswith("节点") and "无人持有" in zh[3] and zh[4].startswith("放置：节点 origin-1")
    # the columns line up in a terminal although the county names are Chinese
    column = [line.index("https://") if "https://" in line else line.index("地址") for line in zh[:3]]
    assert len({width(line[:at]) for line, at in zip(zh[:3], column, strict=True)}) == 1
    await registry.acquire_lease("scheduler-jobs", "origin-1/ab", 30.0)
    en = format_status(await read_status(registry), "en")
    assert "scheduler's job lock: origin-1/ab (epoch 1)" in en and "placement" not in en
    assert (await read_status(registry)).to_json()["job_lock"] == {"holder": "origin-1/ab", "epoch": 1}


async def test_empty_cluster() -> None:
    assert width("中宁县") == 6 and width("ab") == 2
    text = format_status(await read_status(InProcessRegistry()), "en")
    assert "(no live node)" in text and "held by nobody" in text


async def test_an_edge_of_a_chain_shows_where_it_takes_its_lessons_from() -> None:
    registry = InProcessRegistry(clock=FakeClock())
    await registry.register(Node("edge-nx", "宁夏", "", "https://r", 600, role="edge"), Load())
    await registry.register(Node("edge-zn", "宁夏", "中宁县", "https://c", 200, role="edge", upstream="edge-nx"),
                            Load())
    lines = format_status(await read_status(registry), "en").splitlines()
    assert any(line.startswith("edge-zn") and "edge ← edge-nx" in line for line in lines), lines
    assert (await read_status(registry)).to_json()["nodes"][1]["node"]["upstream"] == "edge-nx"


async def test_a_node_whose_loop_runs_late_shows_it() -> None:
    registry = InProcessRegistry(clock=FakeClock())
    await registry.register(Node("edge-late", "宁夏", "", "https://l", 600, role="edge"), Load(loop_lag_ms=612.4))
    await registry.register(Node("edge-fine", "宁夏", "", "https://f", 600, role="edge"), Load(loop_lag_ms=3.0))
    lines = format_status(await read_status(registry), "en").splitlines()
    assert "loop lag" in lines[0]
    assert any(line.startswith("edge-late") and " 612 ms " in line for line in lines), lines
    assert any(line.startswith("edge-fine") and " 3 ms " in line for line in lines), lines
    loads = {n["node"]["id"]: n["load"] for n in (await read_status(registry)).to_json()["nodes"]}
    assert loads["edge-late"]["loop_lag_ms"] == 612.4  # what the technicians' nodes tab reads
