"""Issue 4 acceptance: a session idle longer than the alb's idle timeout is cut by the alb, and only by it.

The lab's own alb keeps AWS's default 60 s (CONFORMANCE_LAB_ALB_IDLE_TIMEOUT changes it for a whole lab).
Waiting a minute per run is too slow, so this test starts a second alb from the same template with a
3 s idle timeout beside the lab's, on its own ports and work directory, and stops it afterwards. Every
other path (and the lab's 60 s alb) carries a session through the same idle period and must keep it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.lab import edges, network_paths
from conformance.lab.supervisor import Supervisor
from tests.conftest import RunningLab
from tests.lab.raw_upgrade import Endpoint, WebSocket, request_upgrade
from tests.lab.test_lab_paths import ALL_PATHS, endpoint, paths_up  # noqa: F401 - paths_up is a fixture

pytestmark = [pytest.mark.lab, pytest.mark.slow]
SHORT_IDLE_S = 3
# Idle this long: past the short alb's timeout with a margin, far below every other path's.
IDLE_PERIOD_S = SHORT_IDLE_S + 2.5
TARGET = "jetstack"
CAT = "command=cat&stdin=true&stdout=true"
STDIN, STDOUT = 0, 1


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@contextlib.contextmanager
def short_idle_alb(layout: Any, work: Path) -> Iterator[Endpoint]:
    ports = dict(zip(network_paths.TARGET_NAMES, _free_ports(len(network_paths.TARGET_NAMES)), strict=True))
    inst = network_paths.instance(
        layout,
        "alb",
        serving=edges.serving_cert(layout, "alb"),
        idle_timeout_s=SHORT_IDLE_S,
        listen=ports,
        work=work / "alb-short-idle",
    )
    edges.prepare_instance(inst)
    sup = Supervisor(work / "supervisor")
    rec = sup.start(
        "alb-short-idle",
        network_paths.argv(inst, layout.binaries["haproxy"]),
        port=ports["direct"],
        health=network_paths.health_url(inst),
    )
    try:
        sup.wait_ready(rec, 15, ca_file=str(layout.pki.alb_ca.cert))
        yield Endpoint(f"https://127.0.0.1:{ports[TARGET]}", str(layout.pki.alb_ca.cert))
    finally:
        sup.stop_all()


def open_cat_session(ep: Endpoint, token: str) -> WebSocket:
    resp, sock, rest = request_upgrade(ep, protocol="websocket", token=token, query=CAT)
    assert resp.status == 101, (resp.status, resp.body[:200])
    ws = WebSocket(sock, rest)
    ws.send_binary(bytes([STDIN]) + b"before\n")
    ws.read_channel(STDOUT, b"before\n", timeout=10)
    return ws


def seconds_until_closed(ws: WebSocket, limit_s: float) -> float | None:
    """Wait (receiving nothing we send for) until the peer closes; None if it is still open at limit_s."""
    start = time.monotonic()
    while (remaining := limit_s - (time.monotonic() - start)) > 0:
        try:
            opcode, _ = ws.recv_frame(remaining)
        except (EOFError, ConnectionError, ssl.SSLError):
            return time.monotonic() - start
        except TimeoutError:
            return None
        if opcode == 0x8:
            return time.monotonic() - start
    return None


def test_idle_session_is_cut_by_the_alb_and_survives_every_other_path(
    paths_up: RunningLab,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    token = paths_up.token("alice")
    sessions: dict[str, WebSocket] = {}
    with short_idle_alb(paths_up.layout, tmp_path) as short_alb:
        try:
            sessions["alb-3s"] = open_cat_session(short_alb, token)
            alb_silent_since = time.monotonic()  # its idle timer runs from its last byte, not from the loop below
            for path in ALL_PATHS:
                sessions[path] = open_cat_session(endpoint(TARGET, path), token)
            idle_started = time.monotonic()
            closed_after = seconds_until_closed(sessions["alb-3s"], IDLE_PERIOD_S)
            if closed_after is not None:
                closed_after += idle_started - alb_silent_since
            assert closed_after is not None, f"the {SHORT_IDLE_S}s alb kept an idle session for {IDLE_PERIOD_S}s"
            assert SHORT_IDLE_S - 0.5 <= closed_after <= SHORT_IDLE_S + 2, closed_after
            time.sleep(max(0.0, IDLE_PERIOD_S - (time.monotonic() - idle_started)))
            survivors = {}
            for path in ALL_PATHS:
                ws = sessions[path]
                ws.send_binary(bytes([STDIN]) + b"after\n")
                survivors[path] = ws.read_channel(STDOUT, b"after\n", timeout=10)
            assert set(survivors) == set(ALL_PATHS)
        finally:
            for ws in sessions.values():
                ws.close()
