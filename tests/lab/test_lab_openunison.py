"""Issue 13: the openunison stand-in against the running lab, row by row as OpenUnison 1.0.50 does it
(docs/paths.md, "The openunison target"). Raw requests, so each test sees exactly what the proxy answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from conformance.lab import lab, openunison
from conformance.lab.openunison_token import jti_of, request_token, write_token
from conformance.lab.supervisor import Supervisor
from conformance.openunison_access_log import AccessLogLine, find_request, read_log
from tests.conftest import RunningLab
from tests.lab.raw_upgrade import EXEC_PATH, Endpoint, WebSocket, connect, request_upgrade
from tests.lab.test_lab_identity import audit_events_matching

pytestmark = pytest.mark.lab
SSR = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SSR_BODY = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
PODS = "/api/v1/namespaces/conformance/pods"
SA_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:openunison", "system:authenticated"]
LOG_WAIT_S = 5.0


def _target() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(lab.harness_config_path().read_text())
    return dict(data["targets"]["openunison"])


def _endpoint(target: str = "openunison") -> Endpoint:
    data = yaml.safe_load(lab.harness_config_path().read_text())["targets"][target]
    return Endpoint(data["server"], data["ca_file"])


def _client(ep: Endpoint, timeout: float = 10) -> httpx.Client:
    return httpx.Client(base_url=ep.server, verify=ssl.create_default_context(cafile=ep.ca_file), timeout=timeout)


def _access_lines(path: str, start: float, end: float, sub: str | None) -> list[AccessLogLine]:
    log = Path(_target()["proxy_audit"]["path"])
    deadline = time.monotonic() + LOG_WAIT_S
    while True:
        lines, _ = read_log(log)
        found = find_request(lines, path=path, start=start, end=end, sub=sub)
        if any(line.result != "AuSuccess" for line in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _token_meta(layout: Any) -> dict[str, Any]:
    meta = openunison.workdir(layout) / f"{openunison.TOKEN_FILE}.json"
    return dict(json.loads(meta.read_text()))


def test_the_api_server_sees_the_service_account_token_and_the_groups_in_order(running_lab: RunningLab) -> None:
    marker = f"ou-{uuid.uuid4().hex[:10]}"
    ep = _endpoint()
    start = time.time()
    with _client(ep) as client:
        resp = client.post(
            f"{SSR}?marker={marker}",
            headers={"Authorization": f"Bearer {running_lab.token('alice')}", "User-Agent": f"tests/{marker}"},
            json=SSR_BODY,
        )
    assert resp.status_code == 201, resp.text
    event = audit_events_matching(running_lab.audit_log, marker)[-1]
    user = event["user"]
    # A ServiceAccount authenticated by its bound token, not a client certificate.
    assert user["username"] == openunison.PROXY_USER
    assert user["groups"] == SA_GROUPS
    jti = _token_meta(running_lab.layout)["jti"]
    assert user["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={jti}"]
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == [openunison.POD_NAME]
    assert not any("x509" in v for values in user["extra"].values() for v in values)
    declared = _target()["impersonating_proxy"]
    assert declared["user"] == user["username"] and declared["groups"] == user["groups"]
    # The proxy is checked by its credential kind (a bound token: JTI), and it adds no extra to the user it
    # impersonates (adds_extra is empty: any extra there would be a mismatch).
    assert declared["credential"] == "JTI" and declared["adds_extra"] == {}
    # system:authenticated first, then the token's groups; no uid, no extras.
    assert event["impersonatedUser"] == {"username": "alice", "groups": ["system:authenticated", "devs"]}
    lines = _access_lines(SSR, start, time.time(), "alice")
    assert [line.result for line in lines] == ["AuSuccess", "AzSuccess"], lines
    assert lines[-1].groups == ("devs",) and lines[-1].remote_ip == "127.0.0.1" and lines[-1].session_id
    assert "?" not in lines[-1].url and lines[-1].url == f"{ep.server}{SSR}"


def test_client_impersonation_headers_in_any_case_are_dropped(running_lab: RunningLab) -> None:
    marker = f"ou-{uuid.uuid4().hex[:10]}"
    with _client(_endpoint()) as client:
        resp = client.post(
            f"{SSR}?marker={marker}",
            headers={
                "Authorization": f"Bearer {running_lab.token('alice')}",
                "iMpersonate-USER": "system:admin",
                "IMPERSONATE-GROUP": "system:masters",
                "Impersonate-Uid": "0",
                "impersonate-extra-scopes": "cluster-admin",
            },
            json=SSR_BODY,
        )
    assert resp.status_code == 201, resp.text
    info = resp.json()["status"]["userInfo"]
    assert info["username"] == "alice" and info["groups"] == ["system:authenticated", "devs"]
    assert "uid" not in info and "extra" not in info
    event = audit_events_matching(running_lab.audit_log, marker)[-1]
    assert event["user"]["username"] == openunison.PROXY_USER


@pytest.mark.parametrize("kind", ["missing", "expired", "wrong_audience", "bad_signature"])
def test_missing_or_bad_token_gets_401_with_openunisons_challenge(running_lab: RunningLab, kind: str) -> None:
    headers = {} if kind == "missing" else {"Authorization": f"Bearer {running_lab.token('alice', kind)}"}
    start = time.time()
    with _client(_endpoint()) as client:
        resp = client.get(PODS, headers=headers)
    assert resp.status_code == 401, resp.text
    assert resp.headers.get_list("www-authenticate") == ['Bearer realm="kubernetes",scope="auth"']
    assert '"kind":"Status"' not in resp.text.replace(" ", "")
    lines = _access_lines(PODS, start, time.time(), None)
    assert any(line.result == "AuFail" and line.sub is None for line in lines), lines


def test_access_token_query_parameter_is_accepted_and_not_forwarded(running_lab: RunningLab) -> None:
    marker = f"ou-{uuid.uuid4().hex[:10]}"
    with _client(_endpoint()) as client:
        resp = client.get(PODS, params={"marker": marker, "access_token": running_lab.token("alice")})
    assert resp.status_code == 200, resp.text
    event = audit_events_matching(running_lab.audit_log, marker)[-1]
    assert event["impersonatedUser"]["username"] == "alice"
    assert "access_token" not in event["requestURI"] and marker in event["requestURI"]


def test_a_user_outside_the_group_rule_gets_the_proxys_own_403(running_lab: RunningLab) -> None:
    marker = f"ou-{uuid.uuid4().hex[:10]}"
    token = running_lab.token("carol")
    # The API server itself lets carol list pods: only the proxy's rule stops her.
    with _client(_endpoint("direct")) as client:
        assert client.get(PODS, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    start = time.time()
    with _client(_endpoint()) as client:
        resp = client.get(PODS, params={"marker": marker}, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403
    assert openunison.FORBIDDEN_PHRASE in resp.text and '"kind":"Status"' not in resp.text.replace(" ", "")
    assert audit_events_matching(running_lab.audit_log, marker, deadline_s=1.0) == []  # never forwarded
    lines = _access_lines(PODS, start, time.time(), "carol")
    assert [line.result for line in lines] == ["AuSuccess", "AzFail"], lines
    assert lines[-1].groups == ()


@pytest.mark.parametrize("content_type", [None, "application/json"])
def test_spdy_upgrade_gets_500_with_the_error_page(running_lab: RunningLab, content_type: str | None) -> None:
    extra = {"Content-Type": content_type} if content_type else None
    start = time.time()
    resp, sock, _ = request_upgrade(_endpoint(), protocol="spdy", token=running_lab.token("alice"), extra=extra)
    sock.close()
    assert resp.status == 500
    if content_type:
        assert resp.body == openunison.ERROR_JSON.encode()
    else:
        assert openunison.ERROR_PHRASE.encode() in resp.body
        assert resp.headers["content-type"].startswith("text/html")
    lines = _access_lines(EXEC_PATH, start, time.time(), "alice")
    assert [line.result for line in lines] == ["AuSuccess", "Error"], lines


def test_an_upgrade_without_a_websocket_key_gets_500(running_lab: RunningLab) -> None:
    ep = _endpoint()
    with connect(ep) as sock:
        host = ep.server.split("//")[1]
        sock.sendall(
            (
                f"GET {EXEC_PATH}?command=true&stdout=true HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {running_lab.token('alice')}\r\n"
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 500"), head[:200]


def test_a_websocket_the_api_server_refuses_becomes_500(running_lab: RunningLab) -> None:
    marker = f"ou{uuid.uuid4().hex[:10]}"
    start = time.time()
    # bob may only get pods: the API server refuses his exec with 403.
    resp, sock, _ = request_upgrade(
        _endpoint(), protocol="websocket", token=running_lab.token("bob"), query=f"command=echo&command={marker}"
    )
    sock.close()
    assert resp.status == 500, (resp.status, resp.body[:200])
    assert openunison.ERROR_PHRASE.encode() in resp.body
    event = audit_events_matching(running_lab.audit_log, marker)[-1]
    assert event["responseStatus"]["code"] == 403 and event["impersonatedUser"]["username"] == "bob"
    lines = _access_lines(EXEC_PATH, start, time.time(), "bob")
    assert [line.result for line in lines] == ["AuSuccess", "Error"], lines
    assert lines[-1].groups == ("viewers",)


def test_a_quiet_plain_response_is_cut_after_10s_but_an_upgraded_session_is_not(running_lab: RunningLab) -> None:
    marker = f"ou{uuid.uuid4().hex[:10]}"
    ep = _endpoint()
    token = running_lab.token("alice")
    start = time.monotonic()
    cut_after: float | None = None
    with _client(ep, timeout=20) as client:
        params = {"watch": "true", "labelSelector": f"quiet={marker}", "timeoutSeconds": "40"}
        with client.stream("GET", PODS, params=params, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status_code == 200
            try:
                for _ in resp.iter_lines():
                    break
            except httpx.HTTPError:
                pass
            cut_after = time.monotonic() - start
    assert 9.5 <= cut_after <= 13, cut_after
    # A WebSocket exec silent for 12 s (longer than the cut) still delivers its output.
    resp, sock, rest = request_upgrade(
        ep, protocol="websocket", token=token, query="command=sh&command=-c&command=sleep+12%3Becho+done&stdout=true"
    )
    assert resp.status == 101
    ws = WebSocket(sock, rest)
    try:
        assert b"done" in ws.read_channel(1, b"done", timeout=20)
    finally:
        ws.close()


def test_the_service_account_token_is_renewed_and_reread(running_lab: RunningLab, tmp_path: Path) -> None:
    layout: Any = running_lab.layout
    # The refresher renews on schedule (the API server refuses lifetimes under 10 minutes, so the test
    # shortens the schedule, not the lifetime).
    out = tmp_path / "token"
    proc = subprocess.Popen(
        [
            *(arg for arg in openunison.token_argv(layout, sys.executable) if not arg.startswith("--out=")),
            f"--out={out}",
            "--refresh-after-s=1",
        ],
        stdout=subprocess.DEVNULL,
        env={**os.environ},
    )
    jtis: set[str] = set()
    try:
        deadline = time.monotonic() + 15
        while len(jtis) < 3 and time.monotonic() < deadline:
            if out.is_file():
                jtis.add(jti_of(out.read_text()))
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(jtis) >= 3, jtis
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    meta = json.loads((tmp_path / "token.json").read_text())
    assert meta["expires_at"] - meta["issued_at"] == pytest.approx(openunison.TOKEN_LIFETIME_S, abs=5)
    assert "token" not in meta
    # The stand-in re-reads the file on every request: a new token written where the lab's refresher
    # writes it is the credential of the very next request.
    issued = request_token(
        openunison.token_api(layout),
        openunison.SA_NAMESPACE,
        openunison.SERVICE_ACCOUNT,
        openunison.POD_NAME,
        openunison.TOKEN_AUDIENCE,
        openunison.TOKEN_LIFETIME_S,
    )
    write_token(openunison.workdir(layout) / openunison.TOKEN_FILE, issued)
    marker = f"ou-{uuid.uuid4().hex[:10]}"
    with _client(_endpoint()) as client:
        auth = {"Authorization": f"Bearer {running_lab.token('alice')}"}
        resp = client.get(PODS, params={"marker": marker}, headers=auth)
    assert resp.status_code == 200
    event = audit_events_matching(running_lab.audit_log, marker)[-1]
    assert event["user"]["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={issued.jti}"]


def _free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


def test_the_pre_1_0_44_option_answers_spdy_with_undertows_page(running_lab: RunningLab, tmp_path: Path) -> None:
    """A second stand-in rendered for release 1.0.43 on its own ports, with the lab's token."""
    layout: Any = running_lab.layout
    listen, admin = _free_ports(2)
    base = openunison.standin(layout, layout.pki.make_serving_cert(openunison.NAME), "1.0.43")
    old = openunison.OpenUnisonStandin(
        **{
            **{f: getattr(base, f) for f in base.__dataclass_fields__},
            "workdir": tmp_path,
            "listen": listen,
            "admin_port": admin,
        }
    )
    for name, text in openunison.render(old).items():
        (tmp_path / name).write_text(text)
    shutil.copy(openunison.workdir(layout) / openunison.TOKEN_FILE, old.token_file)
    sup = Supervisor(tmp_path / "supervisor")
    rec = sup.start(
        "openunison-1.0.43",
        openunison.argv(old, layout.binaries["envoy"]),
        port=listen,
        health=openunison.ready_url(old),
    )
    try:
        sup.wait_ready(rec, 15)
        ep = Endpoint(f"https://127.0.0.1:{listen}", str(layout.pki.ca.cert))
        for extra in (None, {"Content-Type": "application/json"}):
            resp, sock, _ = request_upgrade(ep, protocol="spdy", token=running_lab.token("alice"), extra=extra)
            sock.close()
            assert resp.status == 500 and resp.body == openunison.UNDERTOW_500.encode(), resp
        # The WebSocket branch is the same as 1.0.50's.
        resp, sock, _ = request_upgrade(ep, protocol="websocket", token=running_lab.token("alice"))
        sock.close()
        assert resp.status == 101
    finally:
        sup.stop_all()
