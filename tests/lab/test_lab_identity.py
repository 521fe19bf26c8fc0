"""Issue 2 acceptance: what the API server records, and who is refused with which status."""

from __future__ import annotations

import json
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningLab
from tests.lab.test_lab_kubectl import kubectl

pytestmark = pytest.mark.lab
AUDIT_WAIT_S = 10.0


def audit_events_matching(audit_log: Path, needle: str, deadline_s: float = AUDIT_WAIT_S) -> list[dict[str, Any]]:
    end = time.monotonic() + deadline_s
    while True:
        found = [json.loads(line) for line in audit_log.read_text().splitlines() if needle in line]
        if found or time.monotonic() > end:
            return found
        time.sleep(0.2)


def test_audit_records_proxy_identity_impersonating_alice(running_lab: RunningLab) -> None:
    marker = f"audit-{uuid.uuid4().hex[:12]}"
    result = kubectl(running_lab, "jetstack", "alice", "exec", "probe-0", "--", "echo", marker)
    assert result.returncode == 0, result.stderr.decode()
    events = audit_events_matching(running_lab.audit_log, marker)
    assert events, f"no audit event mentions {marker}"
    event = events[-1]
    assert event["objectRef"]["subresource"] == "exec"
    assert event["user"]["username"] == "kube-oidc-proxy"
    assert "lab:proxies" in event["user"]["groups"]
    assert event["impersonatedUser"]["username"] == "alice"
    assert "devs" in event["impersonatedUser"]["groups"]


def test_audit_records_alice_directly_without_impersonation(running_lab: RunningLab) -> None:
    marker = f"audit-{uuid.uuid4().hex[:12]}"
    result = kubectl(running_lab, "direct", "alice", "exec", "probe-0", "--", "echo", marker)
    assert result.returncode == 0, result.stderr.decode()
    event = audit_events_matching(running_lab.audit_log, marker)[-1]
    assert event["user"]["username"] == "alice"
    assert "devs" in event["user"]["groups"]
    assert "impersonatedUser" not in event


def _server(running_lab: RunningLab, target: str) -> str:
    from conformance.lab.lab import target_url

    return target_url(running_lab.layout, target)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["direct", "jetstack"])
@pytest.mark.parametrize("kind", ["expired", "wrong_audience", "wrong_issuer", "bad_signature"])
def test_bad_tokens_get_401(running_lab: RunningLab, target: str, kind: str) -> None:
    token = running_lab.token("alice", kind)
    ca = ssl.create_default_context(cafile=str(running_lab.layout.pki.ca.cert))  # type: ignore[attr-defined]
    with httpx.Client(verify=ca, timeout=10) as client:
        resp = client.get(
            f"{_server(running_lab, target)}/api/v1/namespaces/conformance/pods",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 401, resp.text


@pytest.mark.parametrize("target", ["direct", "jetstack"])
@pytest.mark.parametrize("user", ["bob", "mallory"])
def test_exec_post_without_rights_gets_403(running_lab: RunningLab, target: str, user: str) -> None:
    token = running_lab.token(user)
    ca = ssl.create_default_context(cafile=str(running_lab.layout.pki.ca.cert))  # type: ignore[attr-defined]
    with httpx.Client(verify=ca, timeout=10) as client:
        resp = client.post(
            f"{_server(running_lab, target)}/api/v1/namespaces/conformance/pods/probe-0/exec?command=true&stdout=true",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert resp.status_code == 403, resp.text
