"""pytest -n N keeps the prefetcher: cells dealt into one group per worker, loadgroup, concurrency split."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from conformance.suite_session import _param_id
from conformance.xdist_groups import deal, groups_wanted, make_scheduler, tell_worker, worker_concurrency, worker_count


def _config(**option: Any) -> Any:
    return SimpleNamespace(option=SimpleNamespace(**option))


def test_deal_is_round_robin_in_collection_order_so_every_worker_gets_a_like_mix() -> None:
    ids = [f"c{i}" for i in range(7)]
    groups = deal(ids, 3)
    assert [groups[i] for i in ids] == [f"conformance-cells-{n}" for n in (0, 1, 2, 0, 1, 2, 0)]
    counts = {g: list(groups.values()).count(g) for g in set(groups.values())}
    assert max(counts.values()) - min(counts.values()) <= 1


def test_one_worker_gets_everything() -> None:
    assert set(deal(["a", "b", "c"], 1).values()) == {"conformance-cells-0"}


@pytest.mark.parametrize(("total", "workers"), [(8, 2), (8, 3), (1, 4)])
def test_each_worker_runs_the_whole_concurrency(total: int, workers: int) -> None:
    assert worker_concurrency(total, workers) == total


def test_only_a_plain_dash_n_is_grouped_and_workers_are_told() -> None:
    plain = _config(numprocesses=2, dist="load")
    assert groups_wanted(plain)
    workerinput: dict[str, Any] = {"workercount": 2}
    tell_worker(plain, workerinput)
    worker = _config()
    worker.workerinput = workerinput
    assert worker_count(worker) == 2
    for chosen in ("loadscope", "loadgroup", "worksteal", "each"):
        config = _config(numprocesses=2, dist=chosen)
        assert not groups_wanted(config)
        untold: dict[str, Any] = {"workercount": 2}
        tell_worker(config, untold)
        other = _config()
        other.workerinput = untold
        assert worker_count(other) is None
    assert not groups_wanted(_config(numprocesses=None, dist="no"))
    assert worker_count(_config()) is None  # the controller, or no xdist


def test_the_scheduler_puts_each_group_of_cells_in_one_scope_and_leaves_other_tests_alone() -> None:
    nodeids = [f"s.py::test_cell[c{i}]" for i in range(5)] + ["t.py::test_other"]
    sched = make_scheduler(_xdist_config(), None, lambda n: "test_cell[" in n)
    sched.collection = nodeids
    sched.node2pending = {}
    sched.assigned_work = {object(): {}, object(): {}}  # two workers
    scopes = [sched._split_scope(n) for n in nodeids]
    assert scopes == [*(f"conformance-cells-{i}" for i in (0, 1, 0, 1, 0)), "t.py::test_other"]


def _xdist_config() -> Any:
    return SimpleNamespace(
        option=SimpleNamespace(numprocesses=2, dist="load", loadscopereorder=True, maxschedchunk=None),
        getvalue=lambda name: ["2*popen"] if name == "tx" else None,
    )


@pytest.mark.parametrize(
    ("nodeid", "cell"),
    [
        ("suites/test_streaming.py::test_cell[direct-none-spdy-exec-native]", "direct-none-spdy-exec-native"),
        ("suites/test_streaming.py::test_cell[a-b]@conformance-cells-1", "a-b"),
        ("tests/test_x.py::test_plain", None),
        ("tests/test_x.py::test_p[1]x", None),
    ],
)
def test_cell_ids_are_read_from_node_ids_with_or_without_the_group_suffix(nodeid: str, cell: str | None) -> None:
    assert _param_id(nodeid) == cell
