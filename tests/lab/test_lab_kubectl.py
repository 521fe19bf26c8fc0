"""Issue 2 acceptance: real kubectl 1.35 with lab users' OIDC tokens, directly and through kube-oidc-proxy."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import RunningLab

pytestmark = pytest.mark.lab
TARGETS = ("direct", "jetstack")
KUBECTL_TIMEOUT_S = 60


def kubectl(
    lab: RunningLab, target: str, user: str, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    kubeconfig = lab.kubeconfig(target, user)
    return subprocess.run(
        [str(lab.kubectl), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        timeout=KUBECTL_TIMEOUT_S,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("target", TARGETS)
def test_exec_stdout_stderr_and_exit_code(running_lab: RunningLab, target: str) -> None:
    result = kubectl(
        running_lab,
        target,
        "alice",
        "exec",
        "probe-0",
        "--",
        "sh",
        "-c",
        "echo out-$((6*7)); echo err-line >&2; exit 3",
    )
    assert result.stdout == b"out-42\n"
    assert b"err-line" in result.stderr
    assert result.returncode == 3, result.stderr.decode()


@pytest.mark.parametrize("target", TARGETS)
def test_whoami_is_alice_with_group_devs(running_lab: RunningLab, target: str) -> None:
    result = kubectl(running_lab, target, "alice", "auth", "whoami", "-o", "json")
    assert result.returncode == 0, result.stderr.decode()
    info = json.loads(result.stdout)["status"]["userInfo"]
    assert info["username"] == "alice"
    assert "devs" in info["groups"]


@pytest.mark.parametrize("target", TARGETS)
def test_cp_both_ways_16_mib_byte_exact(running_lab: RunningLab, target: str, tmp_path: Path) -> None:
    payload = os.urandom(16 * 1024 * 1024)
    src = tmp_path / "upload.bin"
    src.write_bytes(payload)
    remote = f"cp-{target}-{os.getpid()}.bin"
    up = kubectl(running_lab, target, "alice", "cp", str(src), f"probe-0:{remote}")
    assert up.returncode == 0, up.stderr.decode()
    # The upload landed byte-exact in the pod's sandbox: check its checksum inside the "container".
    sums = kubectl(running_lab, target, "alice", "exec", "probe-0", "--", "sha256sum", remote)
    assert sums.stdout.split()[0].decode() == hashlib.sha256(payload).hexdigest()
    dst = tmp_path / "download.bin"
    down = kubectl(running_lab, target, "alice", "cp", f"probe-0:{remote}", str(dst))
    assert down.returncode == 0, down.stderr.decode()
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(payload).digest()
    kubectl(running_lab, target, "alice", "exec", "probe-0", "--", "rm", "-f", remote)


@pytest.mark.parametrize("target", TARGETS)
def test_port_forward_64_kib_echoed_byte_exact(running_lab: RunningLab, target: str) -> None:
    kubeconfig = running_lab.kubeconfig(target, "alice")
    proc = subprocess.Popen(
        [
            str(running_lab.kubectl),
            f"--kubeconfig={kubeconfig}",
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
        line = proc.stdout.readline().decode()  # "Forwarding from 127.0.0.1:NNNNN -> 8080"
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


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("user", ["bob", "mallory"])
def test_exec_forbidden_for_users_without_rights(running_lab: RunningLab, target: str, user: str) -> None:
    result = kubectl(running_lab, target, user, "exec", "probe-0", "--", "true")
    assert result.returncode != 0
    assert b"Forbidden" in result.stderr or b"forbidden" in result.stderr, result.stderr.decode()


def test_bob_may_get_pods(running_lab: RunningLab) -> None:
    result = kubectl(running_lab, "jetstack", "bob", "get", "pod", "probe-0", "-o", "name")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip() == b"pod/probe-0"
