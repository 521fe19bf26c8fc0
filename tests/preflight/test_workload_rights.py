"""The workload on somebody's cluster: no cluster-scoped reads, create the probe pod only if the user may,
else an existing pod (--pod) with its tools checked; port-forward cells skipped when it has no echo listener."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from conformance.cells import Cell, CellRunner
from conformance.config import parse_config
from conformance.errors import ConfigError, WorkloadError
from conformance.expectations import Expectations
from conformance.kubeconfig_config import config_from_kubeconfig
from conformance.model import CellKey, Outcome
from conformance.plugin import OPTIONS, Settings
from conformance.pod_check import PodCheck
from conformance.suite_session import _with_pod
from conformance.workload import WorkloadManager
from tests.test_workload import BASE, FakeAuthz, FakeCore, pod

CONFIG = Path("/etc/harness.yaml")


def config(**workload: Any) -> Any:
    data = copy.deepcopy(BASE)
    data["workload"].update(workload)
    return parse_config(data, CONFIG)


class RecordingCore(FakeCore):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def __getattr__(self, attr: str) -> Any:
        if attr in ("objects", "deleted", "calls"):
            raise AttributeError(attr)
        self.calls.append(attr)
        return super().__getattr__(attr)


def test_a_user_who_may_not_create_pods_is_stopped_before_anything_with_the_rights_listed() -> None:
    core = RecordingCore()
    authz = FakeAuthz({("create", "pods"), ("delete", "pods")})
    manager = WorkloadManager(config(manage=True, manage_namespace=False), "alice", core=core, authz=authz)
    manager.kube_user = "dave"
    with pytest.raises(WorkloadError) as err:
        manager.ensure()
    text = str(err.value)
    assert "  create pods  (in namespace probes)\n" in text and "  delete pods  (in namespace probes)" in text
    assert "--pod NAME" in text and "conformance rights --manifest --user dave --namespace probes" in text
    assert core.calls == []  # not one request but the reviews
    assert {a["namespace"] for a in authz.asked} == {"probes"}


def test_without_manage_namespace_the_namespace_is_never_read_nor_reviewed() -> None:
    core = RecordingCore()
    authz = FakeAuthz()
    manager = WorkloadManager(config(manage=True, manage_namespace=False, reuse=True), "alice", core=core, authz=authz)
    manager.ensure()
    assert not [c for c in core.calls if c.endswith("_namespace")]
    assert not [a for a in authz.asked if a["resource"] == "namespaces"]
    assert "probe-0" in core.objects["namespaced_pod"]
    manager.cleanup(deadline_s=0)
    assert core.deleted == ["namespaced_pod/probe-0"]


def test_the_kubeconfig_simple_case_does_not_manage_the_namespace(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: team-a}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: abc}}]\n"
    )
    workload = config_from_kubeconfig(kc, None).workload
    assert workload.namespace == "team-a" and workload.manage and not workload.manage_namespace


def test_pod_option_uses_that_existing_pod_and_creates_nothing() -> None:
    values: dict[str, str | None] = {o.name: None for o in OPTIONS}
    values["pod"] = "my-shell"
    harness = _with_pod(config(manage=True), Settings(values, {"pod": "--pod"}))
    assert harness.workload.pods == ("my-shell",) and not harness.workload.manage
    values["pod"] = None
    assert _with_pod(config(manage=True), Settings(values, {})).workload.manage


def test_an_existing_pod_without_tar_is_refused_with_what_it_lacks() -> None:
    lacking = PodCheck(tools_missing=("tar",), tools_reason="missing: tar", echo=True, echo_reason="echoes")
    manager = WorkloadManager(config(), "alice", core=FakeCore({"probe-0": pod("Running")}), inspect=lambda: lacking)
    with pytest.raises(ConfigError, match=r"pod 'probe-0' in namespace 'probes' lacks tar: exec and cp cells need"):
        manager.ensure()


def test_an_existing_pod_the_user_may_not_read_is_still_inspected() -> None:
    class Unreadable(FakeCore):
        def read_namespaced_pod(self, *_: Any, **__: Any) -> Any:
            from kubernetes.client.rest import ApiException

            raise ApiException(status=403, reason="Forbidden")

    inspected: list[bool] = []

    def inspect() -> PodCheck:
        inspected.append(True)
        return PodCheck(tools_missing=(), tools_reason="present", echo=True, echo_reason="echoes")

    manager = WorkloadManager(config(), "alice", core=Unreadable(), inspect=inspect)
    manager.ensure()
    assert inspected == [True] and manager.pod_status.startswith("not readable")


def test_port_forward_cells_are_skipped_with_the_reason_when_told() -> None:
    from conformance.adapters.native import NativeAdapter

    runner = CellRunner(config(), {"native": NativeAdapter()}, Expectations.load(None), 5)
    runner.skip_operations["port-forward"] = "no echo listener in pod 'probe-0': nothing echoed on port 8080"
    key = CellKey(target="direct", path="none", protocol="spdy", operation="port-forward", client="native")
    result = runner.run(Cell(key, "alice"))
    assert result.outcome is Outcome.SKIP and "no echo listener" in result.message
