"""Process supervision without the lab: failures name the component and carry its log tail."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from conformance.errors import ComponentError
from conformance.lab.supervisor import Supervisor, pid_alive


def test_component_that_exits_on_start_reports_its_log(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    rec = sup.start(
        "broken",
        [sys.executable, "-c", "print('listen failed: bad flag --nope'); raise SystemExit(3)"],
        health="tcp://127.0.0.1:1",
    )
    with pytest.raises(ComponentError) as err:
        sup.wait_ready(rec, deadline_s=10)
    assert err.value.component == "broken"
    assert "exited during start-up" in str(err.value)
    assert "bad flag --nope" in str(err.value)
    sup.stop_all()


def test_port_in_use_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ComponentError, match=f"port {port} on 127.0.0.1 is already in use"):
            Supervisor(tmp_path).start("etcd", [sys.executable, "-c", "pass"], port=port)


def test_unhealthy_component_times_out_with_detail(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    rec = sup.start(
        "silent", [sys.executable, "-c", "import time; print('starting'); time.sleep(60)"], health="tcp://127.0.0.1:1"
    )
    with pytest.raises(ComponentError, match="not healthy after 1s"):
        sup.wait_ready(rec, deadline_s=1)
    sup.stop_all()
    assert not pid_alive(rec.pid)


def test_stop_all_kills_children_and_ignores_term(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path)
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    rec = sup.start("stubborn", [sys.executable, "-c", code])
    log = Path(rec.log)
    for _ in range(100):
        if log.read_text().strip():
            break
        import time

        time.sleep(0.05)
    child = int(log.read_text().split()[0])
    killed = sup.stop_all(grace_s=0.5)
    assert killed == ["stubborn"]
    assert not pid_alive(rec.pid)
    assert not pid_alive(child)
    assert sup.records() == []
