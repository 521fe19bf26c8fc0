"""A second, throwaway lab beside the main one: up, up again, down, and no process left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.lab import lab, topology
from conformance.lab.edges import EDGE_NAMES
from conformance.lab.supervisor import Supervisor, pid_alive
from tests.conftest import RunningLab

pytestmark = [pytest.mark.lab, pytest.mark.slow]
# The core (etcd, API server, controller-manager, scheduler, issuer, workload, kwok, the three
# kube-oidc-proxies, the openunison stand-in's token refresher) plus the edge processes: the openunison
# target and every network path.
PROCESSES = 8 + len(topology.OIDC_PROXIES) + len(EDGE_NAMES)


def test_second_lab_up_twice_then_down_leaves_no_process(
    running_lab: RunningLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONFORMANCE_LAB_DIR", str(tmp_path / "lab2"))
    lines: list[str] = []
    try:
        state = lab.up(emit=lines.append)
        # The main lab holds the first block of ports: this one must have moved to another block.
        assert state["port_base"] != running_lab.layout.port_base  # type: ignore[attr-defined]
        pids = [r.pid for r in Supervisor(tmp_path / "lab2").records()]
        assert len(pids) == PROCESSES and all(pid_alive(p) for p in pids)
        assert all(c.healthy for c in lab.status()), lab.status()

        again = lab.up(emit=lines.append)
        assert again["started"] == state["started"]
        assert any("already up" in line for line in lines)
        assert [r.pid for r in Supervisor(tmp_path / "lab2").records()] == pids
    finally:
        stopped = lab.down(emit=lines.append)
    assert len(stopped) == PROCESSES
    assert not any(pid_alive(p) for p in pids)
    assert not lab.is_up()
