"""Issue 4 acceptance, on a throwaway second lab (CONFORMANCE_LAB_DIR, its own port block): the memory of a
lab with every path, and what happens when an edge process (a path, the openunison target) dies.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.lab import lab, topology
from conformance.lab.edges import EDGE_NAMES
from conformance.lab.network_paths import PATH_NAMES, TARGET_NAMES
from conformance.lab.supervisor import Supervisor, pid_alive
from tests.conftest import RunningLab

pytestmark = [pytest.mark.lab, pytest.mark.slow]
MEMORY_BUDGET_KIB = 1024 * 1024  # 1 GiB for the whole lab with every path
CORE_PROCESSES = 8 + len(topology.OIDC_PROXIES)  # with the openunison stand-in's token refresher


def _config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(lab.harness_config_path().read_text())
    return data


def _pids(state_dir: Path) -> dict[str, int]:
    return {r.name: r.pid for r in Supervisor(state_dir).records()}


def test_a_dead_path_is_reported_marked_unavailable_refused_fast_and_restarted_alone(
    running_lab: RunningLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_testsuite_property: Any
) -> None:
    state_dir = tmp_path / "lab-faults"
    monkeypatch.setenv("CONFORMANCE_LAB_DIR", str(state_dir))
    lines: list[str] = []
    try:
        state = lab.up(emit=lines.append)
        assert state["port_base"] != running_lab.layout.port_base  # type: ignore[attr-defined]
        pids = _pids(state_dir)
        assert set(EDGE_NAMES) <= set(pids) and len(pids) == CORE_PROCESSES + len(EDGE_NAMES)

        rows = lab.status()
        assert all(r.healthy for r in rows), [r for r in rows if not r.healthy]
        total_kib = sum(r.rss_kib for r in rows)
        record_testsuite_property("lab_rss_mib", round(total_kib / 1024, 1))  # xunit2 has no case properties
        assert total_kib < MEMORY_BUDGET_KIB, {r.name: r.rss_kib for r in rows}

        # One path and one target die, as a crashed proxy would.
        for victim in ("nlb", "openunison"):
            os.kill(pids[victim], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (pid_alive(pids["nlb"]) or pid_alive(pids["openunison"])):
            time.sleep(0.05)

        by_name = {r.name: r for r in lab.status()}
        assert not by_name["nlb"].alive and not by_name["nlb"].healthy
        assert not by_name["openunison"].alive
        assert all(by_name[n].alive for n in by_name if n not in ("nlb", "openunison"))
        assert lab.is_up(), "the core lab still runs: an edge process dying must not count as the lab down"

        config = _config()
        assert config["paths"]["nlb"]["available"] is False
        assert config["paths"]["alb"]["available"] is True
        assert config["targets"]["openunison"]["available"] is False
        for target in TARGET_NAMES:
            assert config["targets"][target]["via"]["nlb"]["available"] is False
            assert config["targets"][target]["via"]["alb"]["available"] is (target != "openunison")

        # A client of the dead path is refused at once instead of hanging.
        nlb_port = int(config["targets"]["direct"]["via"]["nlb"]["server"].rsplit(":", 1)[1])
        started = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", nlb_port), timeout=5).close()
        assert time.monotonic() - started < 1

        # `up` on the running lab starts exactly what died and leaves the rest alone.
        lines.clear()
        lab.up(emit=lines.append)
        after = _pids(state_dir)
        assert {n for n in after if after[n] != pids[n]} == {"nlb", "openunison"}
        assert any("core already up; starting openunison, nlb" in line for line in lines), lines
        assert all(r.healthy for r in lab.status())
        config = _config()
        assert config["paths"]["nlb"]["available"] is True
        assert config["targets"]["openunison"]["via"]["nlb"]["available"] is True
    finally:
        lab.down(emit=lines.append)
    assert not lab.is_up()


def test_up_with_a_subset_of_paths_then_adding_one(
    running_lab: RunningLab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state_dir = tmp_path / "lab-subset"
    monkeypatch.setenv("CONFORMANCE_LAB_DIR", str(state_dir))
    lines: list[str] = []
    try:
        lab.up(emit=lines.append, paths=("alb",))
        assert set(_pids(state_dir)) & set(PATH_NAMES) == {"alb"}
        config = _config()
        assert set(config["paths"]) == {"none", "alb"}
        assert set(config["targets"]["jetstack"]["via"]) == {"alb"}
        with pytest.raises(Exception, match="not running in this lab"):
            lab.kubeconfig("jetstack", "alice", path="gateway")

        lab.up(emit=lines.append, paths=("gateway",))
        assert set(_pids(state_dir)) & set(PATH_NAMES) == {"alb", "gateway"}
        assert set(_config()["targets"]["jetstack"]["via"]) == {"alb", "gateway"}
        assert Path(lab.kubeconfig("jetstack", "alice", path="gateway")).is_file()
    finally:
        lab.down(emit=lines.append)
