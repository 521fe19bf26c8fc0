"""Expectations of as-shipped kubectl cells: each version is expected to behave like the protocol it tries by
default (and its fallback), from the same rules as the forced cells, with no version named in the profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.adapters.kubectl import AS_SHIPPED, shipped_protocols
from conformance.expectations import Expectations, judge
from conformance.model import CellKey, ErrorClass, Evidence, Expectation, Observation, Outcome

LAB = Expectations.load("lab")


def shipped(target: str, path: str, operation: str, minor: int) -> Expectation:
    key = CellKey(target=target, path=path, protocol=AS_SHIPPED, operation=operation, client=f"kubectl-1.{minor}")
    return LAB.for_cell(key, shipped_protocols(minor, operation))


def forced(target: str, path: str, protocol: str, operation: str) -> Expectation:
    key = CellKey(target=target, path=path, protocol=protocol, operation=operation, client="kubectl-1.35")
    return LAB.for_cell(key)


@pytest.mark.parametrize("minor", range(24, 30))
@pytest.mark.parametrize(
    ("target", "path", "operation"),
    [
        ("direct", "alb", "exec"),
        ("jetstack", "alb", "cp-upload"),
        ("direct", "gateway", "attach"),
        ("openunison", "none", "cp-download"),
        ("openunison", "alb", "exec"),
        ("openunison", "gateway", "port-forward"),
    ],
)
def test_spdy_only_versions_fail_exactly_like_forced_spdy(target: str, path: str, operation: str, minor: int) -> None:
    got = shipped(target, path, operation, minor)
    want = forced(target, path, "spdy", operation)
    assert want.outcome == "fail"
    assert (got.outcome, got.error_class, got.status, got.refused_by) == (
        want.outcome,
        want.error_class,
        want.status,
        want.refused_by,
    )
    assert got.reason is not None and got.reason.startswith(f"as shipped, kubectl-1.{minor} tries spdy")


@pytest.mark.parametrize("minor", range(30, 38))
@pytest.mark.parametrize("target", ["direct", "openunison", "jetstack"])
@pytest.mark.parametrize("path", ["alb", "gateway", "none", "https-proxy"])
def test_websocket_exec_versions_are_expected_to_work_where_only_spdy_is_refused(
    target: str, path: str, minor: int
) -> None:
    for operation in ("exec", "cp-upload", "cp-download", "attach"):
        assert shipped(target, path, operation, minor).outcome == "pass"


def test_port_forward_moved_one_release_later() -> None:
    assert shipped("direct", "alb", "port-forward", 30).error_class == "upgrade-required"
    assert shipped("openunison", "none", "port-forward", 30).error_class == "upgrade-refused"
    assert shipped("direct", "alb", "port-forward", 31).outcome == "pass"
    assert shipped("openunison", "none", "port-forward", 31).outcome == "pass"


def test_a_version_that_should_work_and_fails_is_a_failure_not_expected() -> None:
    evidence = Evidence(status_line="HTTP/1.1 400 Bad Request", refused_by="api-server")
    observation = Observation(error_class=ErrorClass.UPGRADE_REQUIRED, evidence=evidence, message="400")
    assert judge(shipped("direct", "alb", "exec", 30), observation)[0] is Outcome.FAIL
    assert judge(shipped("direct", "alb", "exec", 29), observation)[0] is Outcome.EXPECTED_FAIL


def test_a_spdy_only_version_that_works_through_the_alb_is_an_unexpected_pass() -> None:
    observation = Observation(error_class=ErrorClass.NONE, evidence=Evidence())
    assert judge(shipped("direct", "alb", "exec", 28), observation)[0] is Outcome.UNEXPECTED_PASS


def write(tmp_path: Path, text: str) -> Expectations:
    f = tmp_path / "rules.yaml"
    f.write_text("version: 1\nrules:\n" + text)
    return Expectations.load(str(f))


KEY = CellKey(target="t", path="p", protocol=AS_SHIPPED, operation="exec", client="kubectl-1.31")


def test_where_websocket_is_refused_at_the_upgrade_the_fallback_protocol_decides(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        "  - {match: {protocol: ws}, outcome: fail, error_class: upgrade-refused}\n"
        "  - {match: {protocol: spdy}, outcome: fail, error_class: reset}\n",
    )
    got = rules.for_cell(KEY, ("ws", "spdy"))
    assert (got.outcome, got.error_class) == ("fail", "reset")
    assert got.reason is not None and "tries ws, then spdy" in got.reason
    # ...and where SPDY would work, the cell works after a fallback.
    assert write(tmp_path, "  - {match: {protocol: ws}, outcome: fail, error_class: forbidden}\n").for_cell(
        KEY, ("ws", "spdy")
    ).outcome == "pass"


def test_a_websocket_failure_kubectl_does_not_fall_back_on_stays(tmp_path: Path) -> None:
    rules = write(tmp_path, "  - {match: {protocol: ws}, outcome: fail, error_class: reset}\n")
    assert rules.for_cell(KEY, ("ws", "spdy")).error_class == "reset"


def test_a_rule_naming_as_shipped_refines_last(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        "  - {match: {protocol: as-shipped, client: kubectl-1.31}, outcome: fail, error_class: timeout}\n"
        "  - {match: {protocol: ws}, outcome: pass}\n",
    )
    assert rules.for_cell(KEY, ("ws", "spdy")).error_class == "timeout"


def test_without_shipped_protocols_the_cell_is_matched_as_it_is(tmp_path: Path) -> None:
    rules = write(tmp_path, "  - {match: {protocol: spdy}, outcome: fail, error_class: reset}\n")
    assert rules.for_cell(KEY).outcome == "pass"
