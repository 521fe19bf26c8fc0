"""judge(), rule parsing and precedence, and the security judgements, without the lab."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conformance.cells import CellRunner
from conformance.classify import API_SERVER, Answer
from conformance.errors import ConfigError
from conformance.expectations import Expectations, judge
from conformance.identity import ExpectedIdentity, ProxyIdentity
from conformance.model import CellKey, ErrorClass, Evidence, Expectation, Identity, Observation, Outcome
from probes.security import RawResponse, _judge_identity_attempt

PASS = Expectation(outcome="pass")
ALB_SPDY = Expectation(outcome="fail", error_class="upgrade-required")


def obs(cls: ErrorClass, status: int | None = None, refused_by: str | None = None, **kw: Any) -> Observation:
    evidence = Evidence(status_line=f"HTTP/1.1 {status} X" if status else None, refused_by=refused_by)
    return Observation(error_class=cls, evidence=evidence, message=kw.pop("message", "m"), **kw)


def test_pass_expected_and_worked_passes() -> None:
    assert judge(PASS, obs(ErrorClass.NONE))[0] is Outcome.PASS


def test_pass_expected_and_failed_fails_naming_the_class() -> None:
    outcome, message = judge(PASS, obs(ErrorClass.RESET, message="closed"))
    assert outcome is Outcome.FAIL and message == "reset: closed"


def test_declared_failure_that_works_is_an_unexpected_pass() -> None:
    assert judge(ALB_SPDY, obs(ErrorClass.NONE))[0] is Outcome.UNEXPECTED_PASS


def test_declared_failure_absorbs_only_its_own_class() -> None:
    assert judge(ALB_SPDY, obs(ErrorClass.UPGRADE_REQUIRED, 400))[0] is Outcome.EXPECTED_FAIL
    for other in (ErrorClass.WRONG_IDENTITY, ErrorClass.UNAUTHORIZED, ErrorClass.FORBIDDEN,
                  ErrorClass.IDENTITY_UNVERIFIED, ErrorClass.PATH_UNAVAILABLE):
        outcome, message = judge(ALB_SPDY, obs(other))
        assert outcome is Outcome.FAIL, other
        assert message.startswith(f"expected upgrade-required, got {other.value}")


def test_declared_status_and_hop_must_match_too() -> None:
    exp = Expectation(outcome="fail", error_class="upgrade-refused", status=403, refused_by="path:gateway")
    assert judge(exp, obs(ErrorClass.UPGRADE_REFUSED, 403, "path:gateway"))[0] is Outcome.EXPECTED_FAIL
    outcome, message = judge(exp, obs(ErrorClass.UPGRADE_REFUSED, 500, "path:gateway"))
    assert outcome is Outcome.FAIL and "where 403 is declared" in message
    outcome, message = judge(exp, obs(ErrorClass.UPGRADE_REFUSED, 403, "proxy:openunison"))
    assert outcome is Outcome.FAIL and "where path:gateway is declared" in message


def test_skips_and_harness_errors() -> None:
    assert judge(PASS, obs(ErrorClass.NONE, skipped=True))[0] is Outcome.SKIP
    assert judge(ALB_SPDY, obs(ErrorClass.HARNESS))[0] is Outcome.ERROR


def write(tmp_path: Path, rules: list[dict[str, Any]], include: list[str] | None = None) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(json.dumps({"version": 1, "include": include or [], "rules": rules}))
    return str(path)


KEY = CellKey(target="jetstack", path="alb", protocol="spdy", operation="exec", client="native")


def test_last_matching_rule_wins_and_unmatched_cells_must_pass(tmp_path: Path) -> None:
    spec = write(tmp_path, [
        {"match": {"path": "alb"}, "outcome": "fail", "error_class": "upgrade-required"},
        {"match": "jetstack-alb-spdy-*", "outcome": "fail", "error_class": "reset"},
    ])
    exp = Expectations.load(spec)
    assert exp.for_cell(KEY).error_class == "reset"
    other = CellKey(target="direct", path="nlb", protocol="spdy", operation="exec", client="native")
    assert exp.for_cell(other).outcome == "pass" and exp.for_cell(other).source == "default"


def test_a_users_file_refines_an_included_profile(tmp_path: Path) -> None:
    spec = write(tmp_path, [{"match": {"path": "alb", "protocol": "spdy"}, "outcome": "pass"}], include=["lab"])
    assert Expectations.load("lab").for_cell(KEY).error_class == "upgrade-required"
    assert Expectations.load(spec).for_cell(KEY).outcome == "pass"


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"match": {"path": "alb"}, "outcome": "fail"}, "must name the `error_class`"),
        ({"match": {"path": "alb"}, "outcome": "fail", "error_class": "nope"}, "is not one of"),
        ({"match": {"path": "alb"}, "outcome": "fail", "error_class": "none"}, "cannot be declared"),
        ({"match": {"path": "alb"}, "outcome": "pass", "error_class": "reset"}, "belong to `outcome: fail`"),
        ({"match": {"path": "alb"}, "outcome": "fail", "error_class": "reset", "status": "x"}, "HTTP status"),
        ({"match": {"colour": "red"}, "outcome": "pass"}, "unknown coordinate"),
        ({"match": {"path": "alb"}, "outcome": "fail", "error_class": "reset", "why": "x"}, "unknown key"),
    ],
)
def test_bad_rules_are_config_errors(tmp_path: Path, rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Expectations.load(write(tmp_path, [rule]))


# --- security judgements ---------------------------------------------------------------------------------

CTX = SimpleNamespace(answers=(Answer("proxy:openunison", ErrorClass.UNAUTHORIZED, status=401,
                                      header='WWW-Authenticate: Bearer realm="kubernetes"'),))
STATUS_403 = json.dumps({"kind": "Status", "code": 403}).encode()


def attempt(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Observation:
    evidence = Evidence(status_line=f"HTTP/1.1 {status} X", response_headers=headers or {},
                        body_excerpt=body.decode() or None)
    resp = RawResponse(status, f"HTTP/1.1 {status} X", headers or {}, body)
    return _judge_identity_attempt(CTX, resp, evidence, "alice", "impersonate-user")  # type: ignore[arg-type]


def test_a_guard_holds_only_when_an_authn_or_authz_component_refused() -> None:
    held = attempt(403, STATUS_403)
    assert held.error_class is ErrorClass.NONE and held.evidence.refused_by == API_SERVER
    proxy = attempt(401, b"", {"WWW-Authenticate": 'Bearer realm="kubernetes",scope="auth"'})
    assert proxy.error_class is ErrorClass.NONE and proxy.evidence.refused_by == "proxy:openunison"


@pytest.mark.parametrize(
    "status, body, cls",
    [
        (404, b"default backend", ErrorClass.HOP_REFUSED),
        (400, b"Bad Request", ErrorClass.HOP_REFUSED),
        (400, b"Upgrade request required", ErrorClass.UPGRADE_REQUIRED),
        (502, b"", ErrorClass.PROXY_ERROR),
        (500, b"<html>", ErrorClass.SERVER_ERROR),
        (403, b"", ErrorClass.HOP_REFUSED),
        (401, b"Unauthorized", ErrorClass.UNAUTHORIZED),  # nobody declared this 401: untested
    ],
)
def test_other_refusals_leave_the_guard_untested(status: int, body: bytes, cls: ErrorClass) -> None:
    result = attempt(status, body)
    assert result.error_class is cls
    assert "guard untested" in result.message


def test_an_accepted_request_is_for_the_audit_event_to_decide() -> None:
    accepted = attempt(101)
    assert accepted.identity_decides and accepted.error_class is ErrorClass.NONE
    body = json.dumps({"status": {"userInfo": {"username": "system:admin"}}}).encode()
    assert attempt(201, body).error_class is ErrorClass.ELEVATED


ALICE = ExpectedIdentity.from_config({"user": "alice", "groups": ["devs"]}, "t")


def verdict(identity: Identity | None, proxy: ProxyIdentity | None = None) -> Observation:
    observation = Observation(error_class=ErrorClass.NONE, evidence=Evidence(), identity_decides=True,
                              message="impersonate-group: accepted (201)")
    CellRunner._identity_verdict(observation, identity, ALICE, proxy)
    return observation


def test_accepted_and_plain_user_in_this_requests_audit_event_is_not_elevated() -> None:
    plain = Identity(user="alice", groups=["devs", "system:authenticated"], source="audit")
    assert verdict(plain).error_class is ErrorClass.NONE


@pytest.mark.parametrize(
    "identity",
    [
        Identity(user="system:admin", groups=["system:masters", "system:authenticated"], source="audit"),
        Identity(user="alice", groups=["devs", "system:authenticated", "system:masters"], source="audit"),
        Identity(user="alice", groups=["devs", "system:authenticated"], uid="0", source="audit"),
        Identity(user="alice", groups=["devs", "system:authenticated"], extra={"scopes": ["x"]}, source="audit"),
    ],
)
def test_anything_smuggled_is_elevated(identity: Identity) -> None:
    assert verdict(identity).error_class is ErrorClass.ELEVATED


def test_accepted_without_this_requests_audit_event_is_unverified() -> None:
    assert verdict(None).error_class is ErrorClass.IDENTITY_UNVERIFIED
    ssr = Identity(user="alice", groups=["devs", "system:authenticated"], source="selfsubjectreview")
    assert verdict(ssr).error_class is ErrorClass.IDENTITY_UNVERIFIED


@pytest.mark.parametrize("op", ["impersonate-group", "impersonate-uid", "impersonate-extra"])
def test_the_cluster_profile_absorbs_only_the_api_servers_own_400(op: str) -> None:
    """`--kubeconfig` runs default to the `cluster` profile: what every API server does, nothing more."""
    exp = _cluster(op)
    assert judge(exp, obs(ErrorClass.HOP_REFUSED, 400, API_SERVER))[0] is Outcome.EXPECTED_FAIL
    for other in (obs(ErrorClass.HOP_REFUSED, 400, "path:alb"), obs(ErrorClass.HOP_REFUSED, 502, API_SERVER),
                  obs(ErrorClass.ELEVATED), obs(ErrorClass.IDENTITY_UNVERIFIED)):
        assert judge(exp, other)[0] is Outcome.FAIL
    assert judge(exp, obs(ErrorClass.NONE))[0] is Outcome.UNEXPECTED_PASS


def test_the_cluster_profile_lets_front_proxy_headers_say_unverified_never_elevated() -> None:
    exp = _cluster("front-proxy-headers")
    assert judge(exp, obs(ErrorClass.IDENTITY_UNVERIFIED))[0] is Outcome.EXPECTED_FAIL
    assert judge(exp, obs(ErrorClass.ELEVATED))[0] is Outcome.FAIL
    assert _cluster("exec", "spdy", "native").outcome == "pass"


def _cluster(op: str, protocol: str = "http", client: str = "raw") -> Expectation:
    key = CellKey(target="cluster", path="none", protocol=protocol, operation=op, client=client)
    return Expectations.load("cluster").for_cell(key)
