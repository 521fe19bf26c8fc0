"""Issue 4 acceptance: every network path in front of every target, with raw upgrades and real kubectl 1.35.

The signatures asserted here are the ones users report (shared/reference/FIELD.md); docs/paths.md lists
which path reproduces which.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.lab import lab, network_paths
from conformance.lab.issuer import mint_token
from conformance.lab.network_paths import PATH_NAMES, TARGET_NAMES
from conformance.lab.openunison import ERROR_PAGE, PROXY_USER
from tests.conftest import RunningLab
from tests.lab.raw_upgrade import Endpoint, upgrade
from tests.lab.test_lab_identity import audit_events_matching

pytestmark = pytest.mark.lab
ALL_PATHS = ("none", *PATH_NAMES)
KUBECTL_TIMEOUT_S = 60
ALB_SPDY_ERROR = "Error from server (BadRequest): Upgrade request required"
OPENUNISON_SPDY_ERROR = f"error: unable to upgrade connection: {ERROR_PAGE}"
# kubectl's message for the gateway's empty 403 (Envoy's local reply to an upgrade it was not configured for).
GATEWAY_SPDY_ERROR = "Error from server:"


def harness() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(lab.harness_config_path().read_text())
    return data


def endpoint(target: str, path: str) -> Endpoint:
    """How a client reaches target through path, read from the harness config as any client would."""
    t = harness()["targets"][target]
    ep = t if path == "none" else t["via"][path]
    return Endpoint(ep["server"], ep["ca_file"], ep.get("proxy_url"))


def expected_spdy_status(target: str, path: str) -> int:
    if path == "gateway":
        return 403  # Envoy refuses the upgrade itself
    if path == "alb":
        return 400  # the alb dropped Upgrade: the API server (or the proxy's upstream) saw a plain POST
    if target == "openunison":
        return 500  # OpenUnison's own answer to SPDY
    return 101


@pytest.fixture(scope="module")
def paths_up(running_lab: RunningLab) -> RunningLab:
    running = harness()["paths"]
    missing = [p for p in PATH_NAMES if not running.get(p, {}).get("available")]
    if missing:
        pytest.fail(f"paths not running in the lab: {missing}; start them with `conformance lab up`", pytrace=False)
    return running_lab


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_raw_spdy_upgrade_signature(paths_up: RunningLab, target: str, path: str) -> None:
    agent = f"conformance-tests/{uuid.uuid4().hex[:12]}"
    resp = upgrade(endpoint(target, path), protocol="spdy", token=paths_up.token("alice"), user_agent=agent)
    expected = expected_spdy_status(target, path)
    assert resp.status == expected, (resp.status, resp.reason, resp.headers, resp.body[:300])
    if expected == 400:
        body = json.loads(resp.body)
        assert body["kind"] == "Status" and body["message"] == "Upgrade request required", body
    if expected == 403:
        assert resp.headers.get("server") == "envoy" and resp.body == b"", resp
        access_log = network_paths.workdir(paths_up.layout, "gateway") / "access.log"  # type: ignore[arg-type]
        line = _access_log_line(access_log, agent)
        assert '" 403 ' in line and " upgrade_failed " in line, line
    if expected == 500:
        assert resp.body.decode() == ERROR_PAGE
        assert resp.headers["content-type"].startswith("text/html")
    if expected == 101:
        assert resp.headers["upgrade"].lower() == "spdy/3.1"
        assert resp.headers.get("x-stream-protocol-version") == "v4.channel.k8s.io"


def _access_log_line(log: Path, needle: str, deadline_s: float = 5.0) -> str:
    """Envoy writes its access log asynchronously (the lab flushes it every half second)."""
    end = time.monotonic() + deadline_s
    while True:
        found = [line for line in log.read_text().splitlines() if needle in line]
        if found or time.monotonic() > end:
            assert found, f"no line with {needle!r} in {log}"
            return found[-1]
        time.sleep(0.2)


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_raw_websocket_upgrade_passes(paths_up: RunningLab, target: str, path: str) -> None:
    resp = upgrade(endpoint(target, path), protocol="websocket", token=paths_up.token("alice"))
    assert resp.status == 101, (resp.status, resp.reason, resp.body[:300])
    assert resp.headers.get("sec-websocket-protocol") == "v5.channel.k8s.io"


def kubectl_exec(lab_: RunningLab, target: str, path: str, *, websocket: bool) -> subprocess.CompletedProcess[str]:
    kubeconfig = lab.kubeconfig(target, "alice", path=path)
    marker = f"paths-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true" if websocket else "false"}
    result = subprocess.run(
        [str(lab_.kubectl), f"--kubeconfig={kubeconfig}", "exec", "probe-0", "--", "echo", marker],
        capture_output=True,
        text=True,
        timeout=KUBECTL_TIMEOUT_S,
        env=env,
    )
    result.args = marker  # the marker, for the caller's checks
    return result


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_kubectl_exec_over_websocket_works_through_every_path(paths_up: RunningLab, target: str, path: str) -> None:
    result = kubectl_exec(paths_up, target, path, websocket=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{result.args}\n"


@pytest.mark.parametrize("path", ALL_PATHS)
@pytest.mark.parametrize("target", TARGET_NAMES)
def test_kubectl_exec_over_spdy_only_fails_as_users_report(paths_up: RunningLab, target: str, path: str) -> None:
    result = kubectl_exec(paths_up, target, path, websocket=False)
    expected = expected_spdy_status(target, path)
    if expected == 101:
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{result.args}\n"
        return
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    message = {400: ALB_SPDY_ERROR, 403: GATEWAY_SPDY_ERROR, 500: OPENUNISON_SPDY_ERROR}[expected]
    assert result.stderr.strip() == message


def test_https_proxy_carries_kubectl_through_connect(paths_up: RunningLab) -> None:
    access_log = network_paths.rundir(paths_up.layout, "https-proxy") / "access.log"  # type: ignore[arg-type]
    before = access_log.read_text().count("CONNECT") if access_log.exists() else 0
    result = kubectl_exec(paths_up, "jetstack", "https-proxy", websocket=True)
    assert result.returncode == 0, result.stderr
    port = harness()["targets"]["jetstack"]["server"].rsplit(":", 1)[1]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = access_log.read_text().splitlines()
        tunnels = [line for line in lines if f"CONNECT 127.0.0.1:{port}" in line]
        if len(lines) > before and tunnels:
            break
        time.sleep(0.2)
    assert any("TCP_TUNNEL/200" in line for line in tunnels), lines[-5:]


def test_alb_presents_a_certificate_the_cluster_ca_does_not_sign(paths_up: RunningLab) -> None:
    alb = endpoint("jetstack", "alb")
    assert alb.ca_file.endswith("alb-ca.crt")
    lab_ca = harness()["targets"]["jetstack"]["ca_file"]
    with pytest.raises(ssl.SSLCertVerificationError):
        upgrade(Endpoint(alb.server, lab_ca), protocol="websocket", token=paths_up.token("alice"))


@pytest.mark.parametrize("path", ["alb", "ingress", "gateway"])
def test_l7_paths_offer_http2_and_http1(paths_up: RunningLab, path: str) -> None:
    from tests.lab.raw_upgrade import connect

    ep = endpoint("direct", path)
    for offered, wanted in ((("h2", "http/1.1"), "h2"), (("http/1.1",), "http/1.1")):
        with connect(ep, alpn=offered) as sock:
            assert sock.selected_alpn_protocol() == wanted


def test_openunison_impersonates_with_one_header_per_group_and_drops_client_impersonation(
    paths_up: RunningLab,
) -> None:
    layout: Any = paths_up.layout
    marker = f"ou-{uuid.uuid4().hex[:10]}"
    groups = ["devs", "ops", "a,b"]  # a comma inside a group must stay one group
    token = mint_token(
        layout.pki.oidc_signing_key, layout.issuer_url, user="alice", groups=groups, audience="conformance-lab"
    )
    import httpx

    ep = endpoint("openunison", "none")
    with httpx.Client(verify=ssl.create_default_context(cafile=ep.ca_file), timeout=10) as client:
        resp = client.post(
            f"{ep.server}/apis/authentication.k8s.io/v1/selfsubjectreviews?marker={marker}",
            headers={
                "Authorization": f"Bearer {token}",
                "Impersonate-User": "system:admin",
                "Impersonate-Group": "system:masters",
                "User-Agent": f"conformance-tests/{marker}",
            },
            json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
    assert resp.status_code == 201, resp.text
    info = resp.json()["status"]["userInfo"]
    assert info["username"] == "alice"
    assert info["groups"] == ["system:authenticated", *groups]
    event = audit_events_matching(paths_up.audit_log, marker)[-1]
    assert event["user"]["username"] == PROXY_USER
    assert event["impersonatedUser"]["username"] == "alice"
    assert event["impersonatedUser"]["groups"] == ["system:authenticated", *groups]


@pytest.mark.parametrize("token_kind", ["none", "expired", "wrong_audience", "bad_signature"])
def test_openunison_refuses_missing_and_bad_tokens_with_401(paths_up: RunningLab, token_kind: str) -> None:
    import httpx

    ep = endpoint("openunison", "none")
    headers = {} if token_kind == "none" else {"Authorization": f"Bearer {paths_up.token('alice', token_kind)}"}
    with httpx.Client(verify=ssl.create_default_context(cafile=ep.ca_file), timeout=10) as client:
        resp = client.get(f"{ep.server}/api/v1/namespaces/conformance/pods", headers=headers)
    assert resp.status_code == 401, resp.text


def test_kubeconfig_per_path_names_its_server_ca_and_proxy(paths_up: RunningLab) -> None:
    for path in ALL_PATHS:
        config = yaml.safe_load(Path(lab.kubeconfig("openunison", "alice", path=path)).read_text())
        cluster = config["clusters"][0]["cluster"]
        ep = endpoint("openunison", path)
        assert cluster["server"] == ep.server
        assert cluster["certificate-authority"] == ep.ca_file
        assert cluster.get("proxy-url") == ep.proxy_url
        assert (path == "https-proxy") == ("proxy-url" in cluster)


def test_harness_config_lists_every_path_and_endpoint(paths_up: RunningLab) -> None:
    config = harness()
    assert set(config["paths"]) == {"none", *PATH_NAMES}
    for name in PATH_NAMES:
        entry = config["paths"][name]
        assert entry["available"] is True
        assert entry["version"], entry
        assert Path(entry["template"]).name.endswith((".tmpl", ".lua"))
        assert isinstance(entry["idle_timeout_s"], int)
    assert config["paths"]["alb"]["idle_timeout_s"] == 60
    for target in TARGET_NAMES:
        assert set(config["targets"][target]["via"]) == set(PATH_NAMES)
        for ep in config["targets"][target]["via"].values():
            assert ep["server"].startswith("https://127.0.0.1:") and ep["available"] is True
    env = "\n".join(lab.env_lines())
    assert "CONFORMANCE_LAB_ALB_JETSTACK=https://127.0.0.1:" in env
    assert "CONFORMANCE_LAB_HTTPS_PROXY_URL=http://127.0.0.1:" in env


def test_status_reports_every_path_with_its_memory(paths_up: RunningLab) -> None:
    rows = {row.name: row for row in lab.status()}
    for name in (*PATH_NAMES, "openunison"):
        assert rows[name].alive and rows[name].healthy, rows[name]
        assert rows[name].rss_kib > 0


def test_paths_listen_on_loopback_only(paths_up: RunningLab) -> None:
    layout: Any = paths_up.layout
    for name in network_paths.PATH_NAMES:
        for target in TARGET_NAMES:
            port = layout.port(network_paths.port_name(name, target))
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
    listening = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    block = range(layout.port_base, layout.port_base + 50)
    for line in listening.splitlines():
        local = line.split()[3]
        host, _, port = local.rpartition(":")
        if port.isdigit() and int(port) in block:
            assert host in ("127.0.0.1", "[::1]"), line
