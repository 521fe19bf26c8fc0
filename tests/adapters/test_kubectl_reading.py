"""kubectl as a cell client without the lab: each mode's environment, and what its -v=6 log says.

The logs under kubectl_logs/ are real runs of the lab's kubectl binaries against the lab (the port rewritten
to 6443, the discovery lines dropped): SPDY-only versions, WebSocket exec (1.30) and port-forward (1.31), the
old and the structured log formats, refusals, and fallbacks (bob may only get pods: the API server refuses
his WebSocket upgrade, kubectl falls back to SPDY and is refused again).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.adapters.kubectl import (
    AS_SHIPPED,
    KubectlAdapter,
    read_protocol_evidence,
    shipped_protocols,
    split_klog,
)
from conformance.model import Evidence

LOGS = Path(__file__).parent / "kubectl_logs"


def evidence_of(name: str) -> Evidence:
    _, log = split_klog((LOGS / f"{name}.log").read_bytes())
    evidence = Evidence(protocol_requested=AS_SHIPPED)
    read_protocol_evidence(log, evidence)
    return evidence


@pytest.mark.parametrize(
    ("name", "negotiated", "status"),
    [
        ("exec-1.24-direct", "spdy", "HTTP/1.1 101 Switching Protocols"),
        ("exec-1.29-direct", "spdy", "HTTP/1.1 101 Switching Protocols"),
        ("exec-1.30-direct", "websocket (v5.channel.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
        ("exec-1.31-direct", "websocket (v5.channel.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
        ("exec-1.35-direct", "websocket (v5.channel.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
        ("exec-1.37-direct", "websocket (v5.channel.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
        ("exec-1.35-alb", "websocket (v5.channel.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
        ("pf-1.24-direct", "spdy", "HTTP/1.1 101 Switching Protocols"),
        ("pf-1.30-direct", "spdy", "HTTP/1.1 101 Switching Protocols"),
        ("pf-1.31-direct", "websocket (portforward.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
        ("pf-1.35-direct", "websocket (portforward.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
        ("pf-1.37-direct", "websocket (portforward.k8s.io)", "HTTP/1.1 101 Switching Protocols"),
    ],
)
def test_what_each_version_spoke_without_a_fallback(name: str, negotiated: str, status: str) -> None:
    evidence = evidence_of(name)
    assert evidence.protocol_negotiated == negotiated
    assert evidence.status_line == status
    assert evidence.fallback is None


@pytest.mark.parametrize(
    ("name", "negotiated", "status"),
    [
        ("exec-1.29-alb", "spdy (not upgraded: 400 Bad Request)", "HTTP/1.1 400 Bad Request"),
        (
            "exec-1.24-openunison",
            "spdy (not upgraded: 500 Internal Server Error)",
            "HTTP/1.1 500 Internal Server Error",
        ),
        ("pf-1.30-gateway", "spdy (not upgraded: 403 Forbidden)", "HTTP/1.1 403 Forbidden"),
    ],
)
def test_a_refused_upgrade_still_says_which_protocol_was_spoken(name: str, negotiated: str, status: str) -> None:
    evidence = evidence_of(name)
    assert evidence.protocol_negotiated == negotiated
    assert evidence.status_line == status
    assert evidence.fallback is None


@pytest.mark.parametrize(
    "name",
    [
        "exec-1.31-fallback-forbidden",  # old format, fallback reason "bad handshake (403 Forbidden)"
        "exec-1.35-fallback-forbidden",  # structured Response lines, unstructured fallback line
        "exec-1.37-fallback-forbidden",  # structured fallback line too
        "pf-1.31-fallback-forbidden",  # port-forward's fallback dialer, URL without a query
        "pf-1.37-fallback-forbidden",
    ],
)
def test_fallback_to_spdy_is_recorded_with_both_attempts(name: str) -> None:
    evidence = evidence_of(name)
    assert evidence.fallback == "websocket->spdy"
    assert evidence.protocol_negotiated == "spdy (not upgraded: 403 Forbidden)"
    assert evidence.status_line == "HTTP/1.1 403 Forbidden"  # the WebSocket attempt's empty status is not it
    assert evidence.transcript == ["websocket: not upgraded (no status logged)", "spdy: 403 Forbidden"]
    assert any("fallback" in note.lower() for note in evidence.notes)


def test_two_attempts_without_a_fallback_line_are_still_a_fallback() -> None:
    lines = (LOGS / "exec-1.35-fallback-forbidden.log").read_text().splitlines()
    _, log = split_klog("\n".join(x for x in lines if "fallback" not in x).encode())
    evidence = Evidence()
    read_protocol_evidence(log, evidence)
    assert evidence.fallback == "websocket->spdy"


def test_discovery_and_other_requests_are_not_streaming_attempts() -> None:
    evidence = Evidence()
    read_protocol_evidence(
        [
            "GET https://127.0.0.1:6443/api?timeout=32s 200 OK in 65 milliseconds",
            '"Response" verb="GET" url="https://127.0.0.1:6443/api/v1/namespaces/c/pods/p" status="200 OK" ms=5',
        ],
        evidence,
    )
    assert evidence.protocol_negotiated is None and evidence.status_line is None and not evidence.transcript


@pytest.mark.parametrize(
    ("minor", "operation", "expected"),
    [
        (24, "exec", ("spdy",)),
        (29, "cp-upload", ("spdy",)),  # the gate exists in 1.29 but is off
        (30, "exec", ("ws", "spdy")),
        (30, "attach", ("ws", "spdy")),
        (30, "port-forward", ("spdy",)),  # port-forward waited one more release
        (31, "port-forward", ("ws-tunnel", "spdy")),
        (37, "cp-download", ("ws", "spdy")),
        (37, "logs-follow", ()),
    ],
)
def test_what_each_version_tries_as_shipped(minor: int, operation: str, expected: tuple[str, ...]) -> None:
    assert shipped_protocols(minor, operation) == expected


def adapter(minor: int, *modes: str) -> KubectlAdapter:
    return KubectlAdapter(Path("/nonexistent/kubectl"), f"v1.{minor}.0", minor, frozenset(modes))


def test_as_shipped_cells_only_for_the_operations_kep_4006_moved() -> None:
    a = adapter(28, AS_SHIPPED)
    assert [op for op in ("exec", "cp-upload", "cp-download", "attach", "port-forward") if a.protocols(op)] == [
        "exec",
        "cp-upload",
        "cp-download",
        "attach",
        "port-forward",
    ]
    for op in ("exec-stdin", "port-forward-concurrent", "logs-follow", "exec-idle", "whoami"):
        assert a.protocols(op) == ()


def test_forced_and_as_shipped_together() -> None:
    a = adapter(35, "forced", AS_SHIPPED)
    assert a.protocols("exec") == ("spdy", "ws", AS_SHIPPED)
    assert a.protocols("port-forward") == ("spdy", "ws-tunnel", AS_SHIPPED)
    assert a.protocols("exec-stdin") == ("spdy", "ws")
    assert a.protocols("logs-follow") == ("http",)


def test_no_forced_websocket_cell_for_a_version_whose_gate_does_not_exist() -> None:
    # 1.28 ignores KUBECTL_REMOTE_COMMAND_WEBSOCKETS, 1.29 ignores KUBECTL_PORT_FORWARD_WEBSOCKETS (measured).
    assert adapter(28, "forced").protocols("exec") == ("spdy",)
    assert adapter(29, "forced").protocols("exec") == ("spdy", "ws")
    assert adapter(29, "forced").protocols("port-forward") == ("spdy",)
    assert adapter(30, "forced").protocols("port-forward") == ("spdy", "ws-tunnel")


INHERITED = {
    "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false",
    "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false",
    "KUBECTL_EXTERNAL_DIFF": "x",
    "KUBECONFIG": "/elsewhere",
    "HTTPS_PROXY": "http://127.0.0.9:1",
    "PATH": "/usr/bin",
}


def test_as_shipped_removes_every_inherited_kubectl_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in INHERITED.items():
        monkeypatch.setenv(key, value)
    env = KubectlAdapter._env(AS_SHIPPED)
    assert not [k for k in env if k.startswith("KUBECTL_") or k.startswith("KUBECONFIG")]
    assert "HTTPS_PROXY" not in env
    assert env["PATH"] == "/usr/bin"


@pytest.mark.parametrize(("protocol", "value"), [("spdy", "false"), ("ws", "true"), ("ws-tunnel", "true")])
def test_forced_sets_both_gates_over_inherited_ones(monkeypatch: pytest.MonkeyPatch, protocol: str, value: str) -> None:
    for key, inherited in INHERITED.items():
        monkeypatch.setenv(key, inherited)
    env = KubectlAdapter._env(protocol)
    assert env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] == value
    assert env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] == value
    assert "KUBECTL_EXTERNAL_DIFF" not in env and "KUBECONFIG" not in env


@pytest.mark.parametrize(
    ("verb", "agent", "note"),
    [
        ("get", "kubectl/v1.30.0 (linux/amd64) k/7c48", "api server saw: get (websocket) from kubectl/v1.30.0"),
        ("create", "kubectl/v1.24.0 (linux/amd64) k/4ce5", "api server saw: create (spdy) from kubectl/v1.24.0"),
    ],
)
def test_the_audit_event_says_which_protocol_reached_the_api_server(verb: str, agent: str, note: str) -> None:
    from conformance.adapters.kubectl import audit_note

    assert audit_note({"verb": verb, "userAgent": agent}) == note


@pytest.mark.parametrize(
    ("marker", "in_url"),
    [
        ("123456789012ns", "timeout=2m3.456789012s"),  # what kubectl 1.24, 1.30 and 1.37 put in the URL
        ("120000000100ns", "timeout=2m0.0000001s"),
        ("120000000000ns", "timeout=2m0s"),
        ("123.450s", "timeout=2m3.45s"),
        ("59.5s", "timeout=59.5s"),
    ],
)
def test_the_request_timeout_marker_as_go_prints_it(marker: str, in_url: str) -> None:
    assert KubectlAdapter.url_marker(marker) == in_url


def test_markers_are_drawn_from_a_space_a_full_matrix_does_not_exhaust() -> None:
    markers = {KubectlAdapter.marker() for _ in range(5000)}
    assert len(markers) == 5000
    assert all(120 * 10**9 <= int(m.removesuffix("ns")) < 180 * 10**9 for m in markers)
