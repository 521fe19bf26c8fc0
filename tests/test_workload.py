"""The workload manager without a cluster: config errors, the pod it would create, and what cleanup deletes."""

from __future__ import annotations

import copy
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.rest import ApiException

from conformance.config import parse_config
from conformance.errors import ConfigError
from conformance.pod_check import PodCheck
from conformance.workload import RUN_ANNOTATION, WorkloadManager, merge, pod_manifest

CONFIG = Path("/etc/harness.yaml")
BASE: dict[str, Any] = {
    "version": 1,
    "targets": {"direct": {"server": "https://127.0.0.1:1"}},
    "users": {"alice": {"credential": {"type": "env", "name": "NOPE"}}},
    "workload": {"namespace": "probes", "pods": ["probe-0"], "port": 8080},
}


@pytest.fixture(autouse=True)
def _release_managers(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every manager made here is cleaned up, even when its test fails (it may hold SIGTERM and atexit)."""
    made: list[WorkloadManager] = []
    init = WorkloadManager.__init__

    def tracked(self: WorkloadManager, *args: Any, **kwargs: Any) -> None:
        # Unless a test says otherwise: every right is granted, and an existing pod has its tools and echo.
        kwargs.setdefault("authz", FakeAuthz())
        kwargs.setdefault("inspect", lambda: FIT_POD)
        init(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(WorkloadManager, "__init__", tracked)
    yield
    for manager in made:
        manager._owned.clear()
        manager.cleanup(deadline_s=0)


def config(**workload: Any) -> Any:
    data = copy.deepcopy(BASE)
    data["workload"].update(workload)
    return parse_config(data, CONFIG)


def pod(phase: str, annotations: dict[str, str] | None = None) -> Any:
    meta = SimpleNamespace(name="probe-0", annotations=annotations, labels={}, uid="u1", deletion_timestamp=None)
    return SimpleNamespace(metadata=meta, status=SimpleNamespace(phase=phase, conditions=[]))


FIT_POD = PodCheck(tools_missing=(), tools_reason="present", echo=True, echo_reason="port 8080 echoes")


class FakeAuthz:
    """AuthorizationV1Api.create_self_subject_access_review over a set of denied (verb, resource[/sub]) pairs;
    records every review asked."""

    def __init__(self, denied: set[tuple[str, str]] | None = None) -> None:
        self.denied = denied or set()
        self.asked: list[dict[str, Any]] = []

    def create_self_subject_access_review(self, body: dict[str, Any], **_: Any) -> Any:
        attrs = body["spec"]["resourceAttributes"]
        self.asked.append(attrs)
        resource = attrs["resource"] + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
        allowed = (attrs["verb"], resource) not in self.denied
        return SimpleNamespace(status=SimpleNamespace(allowed=allowed, reason="" if allowed else "no RBAC rule"))


class FakeCore:
    """The CoreV1Api calls the manager makes, over dicts of namespaces and pods; created pods are Ready."""

    def __init__(self, pods: dict[str, Any] | None = None, namespaces: dict[str, Any] | None = None) -> None:
        self.objects: dict[str, dict[str, Any]] = {"namespace": namespaces or {}, "namespaced_pod": pods or {}}
        self.deleted: list[str] = []

    def __getattr__(self, attr: str) -> Any:
        verb, _, kind = attr.partition("_")
        store = self.objects[kind]

        def call(*args: Any, body: Any = None, **_: Any) -> Any:
            if verb == "create":
                meta = args[-1]["metadata"]
                ready = [SimpleNamespace(type="Ready", status="True")]
                store[meta["name"]] = SimpleNamespace(
                    metadata=SimpleNamespace(**{"deletion_timestamp": None, "uid": "u", **meta}),
                    status=SimpleNamespace(phase="Running", conditions=ready),
                )
                return store[meta["name"]]
            if args[0] not in store:
                raise ApiException(status=404, reason="Not Found")
            if verb == "delete":
                self.deleted.append(f"{kind}/{args[0]}")
                return store.pop(args[0])
            return store[args[0]]

        return call


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("grant", [{"kind": "Robot", "name": "x"}], "workload.grant[0] must be a mapping with kind"),
        ("command", "sleep 1", "workload.command must be a list"),
        ("command", [], "workload.command must be a non-empty list of strings"),
        ("ready_timeout_s", -1, "workload.ready_timeout_s must be positive"),
        ("pod_overrides", ["nodeName"], "workload.pod_overrides must be a dict"),
        ("pods", [], "workload.pods must be a non-empty list"),
        ("reuse", "yes", "workload.reuse must be a bool"),
        ("manage_namespace", "no", "workload.manage_namespace must be a bool"),
    ],
)
def test_bad_workload_keys_name_file_and_key(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        config(**{key: value})
    assert str(err.value).startswith(f"{CONFIG}: ") and message in str(err.value)


def test_unmanaged_missing_pod_names_namespace_and_pod() -> None:
    manager = WorkloadManager(config(pods=["probe-0", "probe-9"]), "alice", core=FakeCore({"probe-0": pod("Running")}))
    with pytest.raises(ConfigError) as err:
        manager.ensure()
    text = str(err.value)
    assert text.startswith(f"{CONFIG}: workload.pods: pod 'probe-9' not found in namespace 'probes'")
    assert "workload.manage" in text


def test_unmanaged_pod_not_running_names_its_phase() -> None:
    manager = WorkloadManager(config(), "alice", core=FakeCore({"probe-0": pod("Pending")}))
    with pytest.raises(ConfigError, match=r"pod 'probe-0' in namespace 'probes' is Pending, not Running"):
        manager.ensure()


def test_unmanaged_running_pods_pass_and_nothing_is_held() -> None:
    core = FakeCore({"probe-0": pod("Running")})
    manager = WorkloadManager(config(), "alice", core=core)
    assert manager.ensure().namespace == "probes"
    manager.cleanup()
    assert core.deleted == []


def test_default_pod_echoes_on_the_port_ticks_and_passes_restricted() -> None:
    manifest = pod_manifest(config(port=9000).workload, "probe-0", "run-1")
    container = manifest["spec"]["containers"][0]
    assert container["image"] == "busybox:1.36" and container["name"] == "main"
    assert "nc -lk -p 9000 -e cat" in container["command"][2] and "sleep 0.2" in container["command"][2]
    assert container["readinessProbe"]["tcpSocket"]["port"] == 9000
    assert manifest["spec"]["securityContext"]["runAsNonRoot"] is True
    assert manifest["metadata"]["annotations"] == {RUN_ANNOTATION: "run-1"}
    assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "k8s-streaming-conformance"


def test_pod_overrides_merge_into_the_spec() -> None:
    overrides = {
        "nodeName": "kwok-node-0",
        "securityContext": {"runAsUser": None},
        "containers": [{"name": "main", "resources": {"limits": {"cpu": "1"}}}, {"name": "side", "image": "x"}],
    }
    workload = config(pod_overrides=overrides, command=["sleep", "9"], image="alpine:3").workload
    spec = pod_manifest(workload, "probe-0", "run-1")["spec"]
    assert spec["nodeName"] == "kwok-node-0"
    assert "runAsUser" not in spec["securityContext"] and spec["securityContext"]["runAsNonRoot"] is True
    main, side = spec["containers"]
    assert main["command"] == ["sleep", "9"] and main["image"] == "alpine:3" and main["resources"]
    assert "readinessProbe" not in main  # a custom command may not listen
    assert side == {"name": "side", "image": "x"}
    assert merge({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}


def test_managed_creates_namespace_and_pod_and_cleanup_deletes_both_pod_first() -> None:
    core = FakeCore()
    manager = WorkloadManager(config(manage=True), "alice", core=core, log=lambda m: None)
    manager.ensure()
    assert set(core.objects["namespace"]) == {"probes"} and set(core.objects["namespaced_pod"]) == {"probe-0"}
    assert core.objects["namespace"]["probes"].metadata.annotations == {RUN_ANNOTATION: manager.run_id}
    manager.cleanup(deadline_s=0)
    assert core.deleted == ["namespaced_pod/probe-0", "namespace/probes"]


def test_an_existing_namespace_is_refused_without_reuse_and_kept_with_it() -> None:
    existing = {"probes": pod("Active")}
    with pytest.raises(ConfigError, match=r"workload.namespace: namespace 'probes' already exists.*workload.reuse"):
        WorkloadManager(config(manage=True), "alice", core=FakeCore(namespaces=existing), log=print).ensure()
    core = FakeCore(namespaces=existing)
    manager = WorkloadManager(config(manage=True, reuse=True), "alice", core=core, log=lambda m: None)
    manager.ensure()
    manager.cleanup(deadline_s=0)
    assert core.deleted == ["namespaced_pod/probe-0"] and "probes" in core.objects["namespace"]


def test_cleanup_leaves_an_object_another_run_recreated_under_the_same_name() -> None:
    core = FakeCore()
    manager = WorkloadManager(config(manage=True), "alice", core=core, log=lambda m: None)
    manager.ensure()
    core.objects["namespaced_pod"]["probe-0"] = pod("Running", {RUN_ANNOTATION: "another run"})
    manager.cleanup(deadline_s=0)
    assert core.deleted == ["namespace/probes"] and "probe-0" in core.objects["namespaced_pod"]


def test_sigterm_becomes_keyboard_interrupt_while_objects_are_held() -> None:
    manager = WorkloadManager(config(manage=True), "alice", core=FakeCore(), log=lambda m: None)
    before = signal.getsignal(signal.SIGTERM)
    if before != signal.SIG_DFL:
        pytest.skip("another handler owns SIGTERM in this process")
    manager._hold()
    try:
        with pytest.raises(KeyboardInterrupt, match="SIGTERM"):
            signal.raise_signal(signal.SIGTERM)
    finally:
        manager.cleanup()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
