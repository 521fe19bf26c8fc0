"""The preflight without a cluster: the verdict from checks, the table, TLS failures in words, an unreachable
endpoint, and the workload row (may the harness create its pod, is the existing pod fit)."""

from __future__ import annotations

import asyncio
import copy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance import preflight
from conformance.config import Endpoint, parse_config
from conformance.lab.pki import Pki, ensure_pki, make_expired_serving_cert, make_serving_cert
from conformance.pod_check import PodCheck
from conformance.preflight import ALL, Check, Status, Verdict, decide
from conformance.workload import WorkloadManager
from tests.probes.test_tls_probe import _serve
from tests.test_workload import BASE, FIT_POD, FakeAuthz, FakeCore, pod

OPS = ["exec", "port-forward", "logs-follow"]


def ok(area: str, subject: str) -> Check:
    return Check(area, subject, Status.OK, "fine")


def fail(area: str, subject: str, blocks: tuple[str, ...]) -> Check:
    return Check(area, subject, Status.FAIL, "broken", blocks)


def test_all_green_is_ready() -> None:
    report = decide([ok("endpoint", "direct"), ok("identity", "SelfSubjectReview"), ok("rights", "get pods/log")], OPS)
    assert report.verdict is Verdict.READY and not report.stops


def test_no_endpoint_answering_stops() -> None:
    report = decide([fail("endpoint", "direct", (ALL,)), fail("endpoint", "jetstack", (ALL,))], OPS)
    assert report.stops and "no endpoint answers" in report.reasons[0] and "jetstack" in report.reasons[0]


def test_one_endpoint_down_of_two_is_degraded_not_stopped() -> None:
    report = decide([fail("endpoint", "direct via alb", (ALL,)), ok("endpoint", "direct")], OPS)
    assert report.verdict is Verdict.DEGRADED and "direct via alb" in report.reasons[0]


def test_a_workload_that_cannot_be_had_stops() -> None:
    report = decide([ok("endpoint", "direct"), fail("workload", "probe pod p", (ALL,))], OPS, ["use --pod"])
    assert report.stops and report.reasons == ("workload probe pod p: broken",) and report.advice == ("use --pod",)


def test_a_refused_credential_stops() -> None:
    assert decide([ok("endpoint", "direct"), fail("identity", "SelfSubjectReview", (ALL,))], OPS).stops


def test_rights_missing_for_some_operations_is_degraded_for_all_stops() -> None:
    some = [ok("endpoint", "d"), fail("rights", "create pods/exec", ("exec",))]
    assert decide(some, OPS).verdict is Verdict.DEGRADED
    every = [*some, fail("rights", "get pods/log", ("logs-follow",)), fail("rights", "x", ("port-forward",))]
    report = decide(every, OPS)
    assert report.stops and "every selected operation lacks a right" in report.reasons[-1]


def test_operations_that_need_no_right_do_not_keep_a_run_alive() -> None:
    # whoami and tls need no right: a user with none of the streaming rights still has nothing to test.
    report = decide([ok("endpoint", "d"), fail("rights", "create pods/exec", ("exec",))], ["exec", "whoami", "tls"])
    assert report.stops


def test_render_shows_every_check_and_the_verdict() -> None:
    report = decide([ok("endpoint", "direct"), fail("workload", "probe pod p", (ALL,))], OPS, ["ADVICE"])
    lines = preflight.render(report)
    assert lines[0].split() == ["AREA", "CHECK", "STATUS", "DETAIL"]
    assert any(line.split()[:2] == ["endpoint", "direct"] and "ok" in line for line in lines)
    assert any("FAIL" in line and "probe pod p" in line for line in lines)
    assert "preflight verdict: stop: nothing could work" in lines
    assert "ADVICE" in lines and "ADVICE" not in preflight.render(report, advice=False)
    assert "ADVICE" in preflight.stop_message(report)


def test_tls_failures_name_the_ca_given() -> None:
    expired = preflight.tls_detail(Exception("certificate verify failed: certificate has expired"), "/ca.pem")
    assert expired.startswith("the server's certificate has expired (checked against the CA given (/ca.pem))")
    unknown = preflight.tls_detail(Exception("certificate verify failed: unable to get local issuer certificate"),
                                   None)
    assert unknown.startswith("the server's certificate is not signed by the system trust store")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("preflight-pki"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_pki(tmp_path_factory.mktemp("other-pki")).ca.cert


@pytest.fixture(scope="module")
def good_port(pki: Pki) -> Iterator[int]:
    yield from _serve(make_serving_cert(pki.ca.cert.parent, "pf-good", hosts=["127.0.0.1"]))


@pytest.fixture(scope="module")
def expired_port(pki: Pki) -> Iterator[int]:
    yield from _serve(make_expired_serving_cert(pki.ca.cert.parent, "pf-old", hosts=["127.0.0.1"]))


def endpoint_check(port: int, ca: Path | None) -> Check:
    ep = Endpoint(server=f"https://127.0.0.1:{port}", ca_file=str(ca) if ca else None)
    return asyncio.run(preflight.check_endpoint("t", ep))


def test_an_endpoint_with_the_right_ca_is_ok(good_port: int, pki: Pki) -> None:
    check = endpoint_check(good_port, pki.ca.cert)
    assert check.status is Status.OK and "TLSv1" in check.detail and str(pki.ca.cert) in check.detail


def test_the_wrong_ca_is_a_clear_line(good_port: int, other_ca: Path) -> None:
    check = endpoint_check(good_port, other_ca)
    assert check.status is Status.FAIL and check.blocks == (ALL,)
    assert check.detail.startswith(f"the server's certificate is not signed by the CA given ({other_ca})")


def test_an_expired_certificate_is_a_clear_line(expired_port: int, pki: Pki) -> None:
    check = endpoint_check(expired_port, pki.ca.cert)
    assert check.status is Status.FAIL and check.detail.startswith("the server's certificate has expired")


def test_nothing_listening_is_connect_refused() -> None:
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check = endpoint_check(port, None)
    assert check.status is Status.FAIL and "connect-refused" in check.detail


def config(**workload: Any) -> Any:
    data = copy.deepcopy(BASE)
    data["workload"].update(workload)
    return parse_config(data, Path("/etc/harness.yaml"))


def test_the_workload_row_stops_when_the_pod_cannot_be_created_and_says_what_to_do() -> None:
    core = FakeCore()
    manager = WorkloadManager(config(manage=True), "alice", core=core, authz=FakeAuthz({("create", "pods")}))
    manager.kube_user = "dave"
    checks, advice = preflight.workload_checks(manager)
    assert [(c.status, c.blocks) for c in checks] == [(Status.FAIL, (ALL,))]
    assert "missing create pods" in checks[0].detail
    assert any("--pod NAME" in line and "dave may not create it" in line for line in advice)
    assert core.objects == {"namespace": {}, "namespaced_pod": {}}  # nothing made, nothing read


def test_the_workload_row_for_an_existing_fit_pod() -> None:
    manager = WorkloadManager(config(), "alice", core=FakeCore({"probe-0": pod("Running")}), authz=FakeAuthz(),
                              inspect=lambda: FIT_POD)
    checks, advice = preflight.workload_checks(manager)
    assert [c.status for c in checks] == [Status.OK] * 3 and advice == []


def test_an_existing_pod_without_echo_warns_that_port_forward_cells_are_skipped() -> None:
    no_echo = PodCheck(tools_missing=(), tools_reason="present", echo=False, echo_reason="nothing echoed on 8080")
    manager = WorkloadManager(config(), "alice", core=FakeCore({"probe-0": pod("Running")}), authz=FakeAuthz(),
                              inspect=lambda: no_echo)
    checks, _ = preflight.workload_checks(manager)
    assert checks[-1].status is Status.WARN and "port-forward cells will be skipped" in checks[-1].detail
    assert decide(checks, OPS).verdict is Verdict.DEGRADED


def test_a_missing_existing_pod_stops() -> None:
    manager = WorkloadManager(config(), "alice", core=FakeCore({}), authz=FakeAuthz(), inspect=lambda: FIT_POD)
    checks, _ = preflight.workload_checks(manager)
    assert checks[0].status is Status.FAIL and "not found" in checks[0].detail and decide(checks, OPS).stops
