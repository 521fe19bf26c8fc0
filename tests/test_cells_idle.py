"""Idle cells on every path (declared timeout or not), --no-idle, the silence each path gets, and the
prefetcher starting idle cells first under their own bound."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from conformance.adapters.native import NativeAdapter
from conformance.cells import IDLE_OPERATIONS, OPERATIONS, Cell, enumerate_cells
from conformance.config import parse_config
from conformance.model import CellKey, CellResult
from conformance.prefetch import IDLE_CONCURRENCY, Prefetcher
from probes.idle import DEFAULT_IDLE_S, idle_silence

DATA: dict[str, Any] = {
    "version": 1,
    "targets": {
        "direct": {
            "server": "https://127.0.0.1:1",
            "via": {"alb": {"server": "https://127.0.0.1:2"}, "nlb": {"server": "https://127.0.0.1:3"},
                    "plain": {"server": "https://127.0.0.1:4"}},
        }
    },
    "paths": {"alb": {"idle_timeout_s": 60}, "nlb": {"idle_timeout_s": 350}, "plain": {}},
    "users": {"alice": {"credential": {"type": "env", "name": "NOPE"}}},
    "workload": {"namespace": "probes", "pods": ["probe-0"], "port": 8080},
}


def _cells(idle: bool = True) -> list[Cell]:
    config = parse_config(DATA, Path("/etc/harness.yaml"))
    return enumerate_cells(config, {"native": NativeAdapter()}, targets=["direct"], paths=list(config.paths),
                           protocols=None, operations=list(OPERATIONS), user="alice", idle=idle)


def test_every_path_gets_idle_cells_declared_or_not() -> None:
    cells = _cells()
    for path in ("none", "alb", "nlb", "plain"):
        ops = {(c.key.operation, c.key.protocol) for c in cells if c.key.path == path}
        assert {("port-forward-idle", "spdy"), ("port-forward-idle", "ws-tunnel"), ("exec-idle", "spdy"),
                ("exec-idle", "ws-v5")} <= ops, path


def test_no_idle_leaves_them_out() -> None:
    assert not [c for c in _cells(idle=False) if c.key.operation in IDLE_OPERATIONS]
    assert len(_cells(idle=False)) == len(_cells()) - 4 * 4


def test_silence_per_path() -> None:
    assert idle_silence(60) == 65 and idle_silence(350) == DEFAULT_IDLE_S and idle_silence(None) == DEFAULT_IDLE_S


class _Runner:
    """Records the order cells start in and how many idle cells run at once (they wait on an event)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running_idle = 0
        self.peak_idle = 0
        self.release = threading.Event()

    async def run_async(self, cell: Cell) -> CellResult:
        self.started.append(cell.key.operation)
        if cell.key.operation in IDLE_OPERATIONS:
            self.running_idle += 1
            self.peak_idle = max(self.peak_idle, self.running_idle)
            while not self.release.is_set():
                await asyncio.sleep(0.01)
            self.running_idle -= 1
        return None  # type: ignore[return-value]


def _cell(op: str, i: int) -> Cell:
    return Cell(CellKey(target="t", path=f"p{i}", protocol="spdy", operation=op, client="native"), "alice")


def test_prefetch_starts_idle_cells_first_outside_the_concurrency_bound(monkeypatch: Any) -> None:
    cells = [_cell("exec", i) for i in range(5)] + [_cell("exec-idle", i) for i in range(20)]
    runner = _Runner()
    prefetch = Prefetcher(runner, cells, concurrency=2)  # type: ignore[arg-type]
    monkeypatch.setattr("conformance.prefetch.IDLE_STAGGER_S", 0.0)  # order, not timing, is under test
    try:
        prefetch.result(cells[0])  # the plain cells finish while every idle cell is still waiting
        assert runner.started[:20] == ["exec-idle"] * 20
        assert runner.peak_idle == 20 <= IDLE_CONCURRENCY
    finally:
        runner.release.set()
        for cell in cells:
            prefetch.result(cell)
        prefetch.close()


def test_a_target_can_declare_an_idle_timeout_and_bad_values_are_config_errors() -> None:
    import copy

    import pytest

    from conformance.errors import ConfigError

    data = copy.deepcopy(DATA)
    data["targets"]["direct"]["idle_timeout_s"] = 30
    assert parse_config(data, Path("/etc/h.yaml")).targets["direct"].idle_timeout_s == 30
    data["targets"]["direct"]["idle_timeout_s"] = "soon"
    with pytest.raises(ConfigError, match=r"targets.direct.idle_timeout_s must be a positive number"):
        parse_config(data, Path("/etc/h.yaml"))
