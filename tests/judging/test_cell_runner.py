"""The cell runner end to end without the lab: a fake client 'runs' exec and writes the audit event the API
server would have written for that very request, so each identity verdict can be provoked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conformance.adapters.base import OpResult, Session
from conformance.cells import Cell, CellRunner
from conformance.config import HarnessConfig, parse_config
from conformance.errors import ConfigError
from conformance.expectations import Expectations
from conformance.model import CellKey, ErrorClass, Evidence, Outcome


class FakeExec:
    """Answers like a pod running `sh -c 'echo out-M; echo err-M >&2; exit 3'`; logs an audit event."""

    name = "native"
    version = "fake"

    def __init__(self, audit: Path, event: dict[str, Any] | None, *, refuse: tuple[int, str] | None = None) -> None:
        self.audit, self.event, self.refuse = audit, event, refuse

    def protocols(self, operation: str) -> tuple[str, ...]:
        return ("spdy",)

    async def exec(self, s: Session, pod: str, container: str, command: list[str], **kw: Any) -> OpResult:
        if self.event is not None:
            event = {**self.event, "userAgent": s.user_agent, "objectRef": {"subresource": "exec"},
                     "requestURI": f"/api/v1/namespaces/ns/pods/{pod}/exec"}
            with open(self.audit, "a") as f:
                f.write(json.dumps(event) + "\n")
        if self.refuse:
            status, body = self.refuse
            ev = Evidence(status_line=f"HTTP/1.1 {status} X", body_excerpt=body, error=f"{status}")
            return OpResult(ErrorClass.UPGRADE_REFUSED, ev, "refused")
        marker = s.user_agent.rsplit("/", 1)[-1]
        return OpResult(ErrorClass.NONE, Evidence(), stdout=f"out-{marker}\n".encode(),
                        stderr=f"err-{marker}".encode(), exit_code=3)


def config(tmp_path: Path, **over: Any) -> HarnessConfig:
    audit = tmp_path / "audit.log"
    audit.touch()
    data: dict[str, Any] = {
        "version": 1,
        "targets": {
            "direct": {"server": "https://127.0.0.1:1"},
            "proxy": {"server": "https://127.0.0.1:2", "impersonating_proxy": {"user": "kube-oidc-proxy"},
                      "proxy_answers": [{"status": 401, "header": "X-Proxy: yes", "means": "unauthorized"}]},
        },
        "users": {"alice": {"credential": {"type": "env", "name": "FAKE_TOKEN"},
                            "expect": {"user": "alice", "groups": ["devs"]}}},
        "identity": {"audit": {"type": "file", "path": str(audit)}, "require": "audit"},
        "workload": {"namespace": "ns", "pods": ["p"]},
    }
    data.update(over)
    return parse_config(data, tmp_path / "config.yaml")


def run(cfg: HarnessConfig, client: FakeExec, target: str = "direct", **kw: Any) -> Any:
    runner = CellRunner(cfg, {"native": client}, Expectations([]), 5.0, **kw)  # type: ignore[dict-item]
    key = CellKey(target=target, path="none", protocol="spdy", operation="exec", client="native")
    return runner.run(Cell(key, "alice"))


ALICE = {"user": {"username": "alice", "groups": ["devs", "system:authenticated"]}}
VIA_PROXY = {"user": {"username": "kube-oidc-proxy", "groups": ["system:authenticated"]},
             "impersonatedUser": {"username": "alice", "groups": ["devs", "system:authenticated"]}}


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_TOKEN", "not-a-real-token")


def test_exact_identity_from_this_requests_audit_event_passes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    result = run(cfg, FakeExec(cfg.audit_log, ALICE))  # type: ignore[arg-type]
    assert result.outcome is Outcome.PASS, result.message
    assert result.evidence.identity_source == "audit"


def test_an_added_group_fails_the_cell(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    masters = {"user": {"username": "alice", "groups": ["devs", "system:authenticated", "system:masters"]}}
    result = run(cfg, FakeExec(cfg.audit_log, masters))  # type: ignore[arg-type]
    assert result.outcome is Outcome.FAIL and result.error_class is ErrorClass.WRONG_IDENTITY
    assert "system:masters" in result.message


def test_a_worked_cell_without_its_audit_event_is_identity_unverified(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    result = run(cfg, FakeExec(cfg.audit_log, None))  # type: ignore[arg-type]
    assert result.error_class is ErrorClass.IDENTITY_UNVERIFIED and result.outcome is Outcome.FAIL
    assert result.evidence.identity_source == "none"


def test_through_the_proxy_the_request_must_be_impersonated(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    assert run(cfg, FakeExec(cfg.audit_log, VIA_PROXY), "proxy").outcome is Outcome.PASS  # type: ignore[arg-type]
    direct = run(cfg, FakeExec(cfg.audit_log, ALICE), "proxy")  # type: ignore[arg-type]
    assert direct.error_class is ErrorClass.WRONG_IDENTITY and "not impersonated" in direct.message


def test_an_unavailable_target_fails_unless_allowed(tmp_path: Path) -> None:
    cfg = config(tmp_path, targets={"direct": {"server": "https://127.0.0.1:1", "available": False}})
    failed = run(cfg, FakeExec(cfg.audit_log, ALICE))  # type: ignore[arg-type]
    assert failed.outcome is Outcome.FAIL and failed.error_class is ErrorClass.PATH_UNAVAILABLE
    skipped = run(cfg, FakeExec(cfg.audit_log, ALICE), allow_unavailable=True)  # type: ignore[arg-type]
    assert skipped.outcome is Outcome.SKIP
    strict = run(cfg, FakeExec(cfg.audit_log, ALICE), allow_unavailable=True, strict=True)  # type: ignore[arg-type]
    assert strict.outcome is Outcome.FAIL and "--strict" in strict.message


def test_a_refusal_is_attributed_to_the_declared_hop(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    client = FakeExec(cfg.audit_log, None, refuse=(401, ""))
    client.refuse = (401, "")
    result = run(cfg, client, "proxy")
    assert result.error_class is ErrorClass.UNAUTHORIZED and result.evidence.refused_by == "unknown"
    status = json.dumps({"kind": "Status", "code": 403})
    result = run(cfg, FakeExec(cfg.audit_log, None, refuse=(403, status)), "proxy")  # type: ignore[arg-type]
    assert result.error_class is ErrorClass.FORBIDDEN and result.evidence.refused_by == "api-server"


def test_a_via_path_missing_from_paths_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"targets.direct.via.alb: no path 'alb' under `paths:`"):
        config(tmp_path, targets={"direct": {"server": "https://x", "via": {"alb": {"server": "https://y"}}}})


def test_require_audit_without_an_audit_log_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"identity\.require is `audit`"):
        config(tmp_path, identity={"require": "audit"})
