"""pytest-xdist without losing the prefetcher: each worker runs its own share of cells ahead of its tests.

A plain `-n N` (`--dist load`) hands tests to workers one small batch at a time, so a worker cannot know
which cells it will get and would run each only when its test runs: N cells in flight instead of
`concurrency` (measured: 2.5 times slower with -n 2 than without -n). Here the cells are dealt round-robin,
in collection order, into N groups, and the controller's scheduler sends every cell of a group to one
worker. A worker deals its own (identical, as xdist requires) collection the same way, so from its first
cell it knows every cell it owns and prefetches them all with its own bounded concurrency (the run's
`concurrency`, in each worker), on its own core. Other tests are scheduled as xdist would.

Why not xdist's `--dist loadgroup`: 3.8 renames grouped items through `item._nodeid`, which pytest 9 no
longer reads, so every test ends up in a group of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

GROUP_PREFIX = "conformance-cells-"
WORKERINPUT_KEY = "conformance_cell_groups"


def groups_wanted(config: pytest.Config) -> bool:
    """A plain `-n N` (xdist's default `load`); an explicit other `--dist` is left alone."""
    option = config.option
    return bool(getattr(option, "numprocesses", None)) and getattr(option, "dist", "no") == "load"


def tell_worker(config: pytest.Config, workerinput: dict[str, Any]) -> None:
    """On the controller, per worker: workers re-parse the command line and get no options from xdist,
    so the choice travels in their workerinput."""
    if groups_wanted(config):
        workerinput[WORKERINPUT_KEY] = True


def worker_count(config: pytest.Config) -> int | None:
    """On a worker whose cells are grouped: how many workers share them; else None."""
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None or not workerinput.get(WORKERINPUT_KEY):
        return None
    return max(1, int(workerinput.get("workercount", 1)))


def group_name(index: int, workers: int) -> str:
    return f"{GROUP_PREFIX}{index % workers}"


def deal(cell_ids: Iterable[str], workers: int) -> dict[str, str]:
    """Cell (or node) id -> group, round-robin in collection order, so every group gets a like mix of
    operations (idle cells included, which otherwise would pile up on one worker)."""
    return {cell_id: group_name(i, workers) for i, cell_id in enumerate(cell_ids)}


def worker_concurrency(total: int, workers: int) -> int:
    """Each worker runs the run's whole concurrency. Split across workers (8 -> 4 + 4), -n 2 was still 1.16x
    slower than no -n (100.7 s against 86.6 s, benchmarks/xdist.py on jetstack, native and python): the cells
    wait on the network, so one process was never CPU-bound; whole, -n 2 took 82.0 s."""
    del workers  # the same for any N: each worker is its own process with its own event loop
    return max(1, total)


def make_scheduler(config: pytest.Config, log: Any, is_cell: Callable[[str], bool]) -> Any:
    """xdist's LoadScopeScheduling with one scope per group of cells; any other test is its own scope."""
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class CellGroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        _groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self._groups is None:  # the collection is known from the first call on
                cells = [n for n in self.collection or () if is_cell(n)]
                self._groups = deal(cells, len(self.nodes) or 1)
            return self._groups.get(nodeid, nodeid)

    return CellGroupScheduling(config, log)
