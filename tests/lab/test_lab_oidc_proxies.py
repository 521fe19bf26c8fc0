"""Issue 10 acceptance: kubectl 1.35 through the real kube-oidc-proxies (fork v1.0.11, JetStack v0.3.0, the
fork with --token-passthrough reached with an OIDC token and with a bound service-account token), with the
audit chain checked on each request: the user the proxy logged -> the identity the API server applied."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from conformance.identity import AuditTail, identity_from_audit_event
from conformance.lab import lab, topology
from conformance.lab.build import installed_components
from conformance.lab.network_paths import TARGET_PORT_NAMES
from conformance.lab.proxy_source import RELEASES
from conformance.proxy_audit import build_chain
from tests.conftest import RunningLab

pytestmark = pytest.mark.lab
KUBECTL_TIMEOUT_S = 60
SA_USER = f"system:serviceaccount:{topology.NAMESPACE}:{topology.LAB_SERVICE_ACCOUNT}"
# (target, lab user, the user the API server must apply, impersonated by the proxy?)
CASES = [
    ("jetstack", "alice", "alice", True),
    ("jetstack-0.3", "alice", "alice", True),
    ("jetstack-passthrough", "alice", "alice", True),
    ("jetstack-passthrough-sa", topology.LAB_SERVICE_ACCOUNT, SA_USER, False),
]
IDS = [c[0] for c in CASES]
PASSTHROUGH_GAP = "the proxy logged the request with no user (a passed-through token is not recorded)"


class Trail:
    """The API server's and the target proxy's audit logs, followed from before a request."""

    def __init__(self, lab_: RunningLab, target: str) -> None:
        layout: Any = lab_.layout
        self.api = AuditTail(lab_.audit_log)
        self.proxy = AuditTail(layout.proxy_audit_log(TARGET_PORT_NAMES[target]))

    def check(self, marker: str, subresource: str | None, user: str, impersonated: bool) -> None:
        api_event = self.api.find([marker], subresource, 10.0)
        proxy_event = self.proxy.find([marker], None, 10.0)
        assert api_event is not None, f"no API server audit event for {marker}"
        assert proxy_event is not None, f"the proxy logged no event for {marker}"
        applied = identity_from_audit_event(api_event)
        assert applied.user == user
        assert (applied.authenticated_as == "kube-oidc-proxy") is impersonated
        chain = build_chain(proxy_event, applied)
        if user == SA_USER:
            # Measured: the fork logs a passed-through request with an empty user (docs/findings.md).
            assert proxy_event.get("user") in ({}, None)
            assert chain.broken is None and chain.unverified == PASSTHROUGH_GAP
        else:
            assert chain.broken is None, chain.trail
            assert chain.proxy_identity is not None and chain.proxy_identity.user == user


def kubectl(lab_: RunningLab, target: str, user: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [str(lab_.kubectl), f"--kubeconfig={lab_.kubeconfig(target, user)}", *args],
        capture_output=True,
        timeout=KUBECTL_TIMEOUT_S,
    )


@pytest.mark.parametrize(("target", "user", "seen", "impersonated"), CASES, ids=IDS)
def test_oidc_proxy_exec_stdout_stderr_exit_code_with_audit_chain(
    running_lab: RunningLab, target: str, user: str, seen: str, impersonated: bool
) -> None:
    trail = Trail(running_lab, target)
    marker = f"m{secrets.token_hex(6)}"
    result = kubectl(
        running_lab, target, user, "exec", "probe-0", "--", "sh", "-c", f"echo out-{marker}; echo err >&2; exit 3"
    )
    assert result.stdout == f"out-{marker}\n".encode()
    assert b"err" in result.stderr
    assert result.returncode == 3, result.stderr.decode()
    trail.check(marker, "exec", seen, impersonated)


@pytest.mark.parametrize(("target", "user", "seen", "impersonated"), CASES, ids=IDS)
def test_oidc_proxy_whoami_with_audit_chain(
    running_lab: RunningLab, target: str, user: str, seen: str, impersonated: bool
) -> None:
    trail = Trail(running_lab, target)
    result = kubectl(running_lab, target, user, "auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr.decode()
    info = json.loads(result.stdout)["status"]["userInfo"]
    assert info["username"] == seen
    if user == topology.LAB_SERVICE_ACCOUNT:
        assert set(info["groups"]) == {
            "system:serviceaccounts",
            "system:serviceaccounts:conformance",
            "system:authenticated",
        }
    else:
        assert set(info["groups"]) == {"devs", "system:authenticated"}
    trail.check("selfsubjectreviews", None, seen, impersonated)


@pytest.mark.parametrize(("target", "user", "seen", "impersonated"), CASES, ids=IDS)
def test_oidc_proxy_cp_both_ways_with_audit_chain(
    running_lab: RunningLab, target: str, user: str, seen: str, impersonated: bool, tmp_path: Path
) -> None:
    payload = os.urandom(2 * 1024 * 1024)
    src = tmp_path / "up.bin"
    src.write_bytes(payload)
    remote = f"cp-{target}-{secrets.token_hex(4)}.bin"
    trail = Trail(running_lab, target)
    up = kubectl(running_lab, target, user, "cp", str(src), f"probe-0:{remote}")
    assert up.returncode == 0, up.stderr.decode()
    trail.check(remote, "exec", seen, impersonated)  # `tar xmf - -C . ` names no file: the marker is the target
    dst = tmp_path / "down.bin"
    trail = Trail(running_lab, target)
    down = kubectl(running_lab, target, user, "cp", f"probe-0:{remote}", str(dst))
    assert down.returncode == 0, down.stderr.decode()
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(payload).digest()
    trail.check(remote, "exec", seen, impersonated)
    kubectl(running_lab, target, user, "exec", "probe-0", "--", "rm", "-f", remote)


@pytest.mark.parametrize(("target", "user", "seen", "impersonated"), CASES, ids=IDS)
def test_oidc_proxy_port_forward_with_audit_chain(
    running_lab: RunningLab, target: str, user: str, seen: str, impersonated: bool
) -> None:
    trail = Trail(running_lab, target)
    proc = subprocess.Popen(
        [
            str(running_lab.kubectl),
            f"--kubeconfig={running_lab.kubeconfig(target, user)}",
            "port-forward",
            "pod/probe-0",
            ":8080",
            "--address=127.0.0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, f"unexpected port-forward output: {line!r}"
        payload = os.urandom(64 * 1024)
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=20) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            received = bytearray()
            deadline = time.monotonic() + 20
            while len(received) < len(payload) and time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        assert bytes(received) == payload
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # A port-forward request carries no marker of ours: it is the only one in these logs since `trail` began.
    trail.check("pods/probe-0/portforward", "portforward", seen, impersonated)


@pytest.mark.parametrize("component", list(RELEASES))
def test_the_proxy_under_test_is_the_real_one_built_from_a_named_source(component: str) -> None:
    manifest = installed_components()[component]
    release = RELEASES[component]
    assert not manifest.standin and manifest.version == release.version
    assert manifest.source.split()[0] in ("module", "tarball", "directory") and manifest.source_digest
    if manifest.source.startswith("tarball "):
        tarball = Path(manifest.source.split(" ", 1)[1])
        assert manifest.source_digest == "sha256:" + hashlib.sha256(tarball.read_bytes()).hexdigest()
    binary = manifest.binaries[component]
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert f'GitVersion:"{release.version}"' in version and release.commit in version
    # The lab runs exactly this binary for each proxy process built from this component.
    state = lab.load_state()
    assert state is not None
    assert state["binaries"][component] == binary
    running = {
        p.name: Path(f"/proc/{r.pid}/exe").resolve()
        for p in topology.OIDC_PROXIES
        for r in lab.Supervisor(lab.lab_dir()).records()
        if r.name == p.name and p.binary == component
    }
    assert running and all(exe == Path(binary).resolve() for exe in running.values())


def _listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp* writes them) with a socket listening on `port`."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.parametrize("proxy", [p.name for p in topology.OIDC_PROXIES])
def test_every_proxy_port_listens_on_loopback_only(running_lab: RunningLab, proxy: str) -> None:
    layout: Any = running_lab.layout
    loopback = "0100007F"  # 127.0.0.1 in /proc's little-endian hex
    for port in (layout.port(proxy), layout.port(proxy + "-ready")):
        assert _listening_addresses(port) == {loopback}, f"{proxy} port {port}"
