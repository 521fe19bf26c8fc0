"""Issue 5 item 6 against the lab: the harness creates its own namespace and probe pod, runs cells in it, and
removes both afterwards, also after Ctrl-C and SIGTERM; with `reuse` it never deletes what existed.

The managed config is the lab's with a fresh namespace, the lab admin's kubeconfig to create and delete,
`grant` for alice's group, and the pod put on kwok's node (docs/config.md, "In the lab").
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from conformance import plugin
from conformance.adapters.native import NativeAdapter
from conformance.cells import Cell, CellRunner
from conformance.config import HarnessConfig, parse_config
from conformance.errors import ConfigError
from conformance.expectations import Expectations
from conformance.lab import lab
from conformance.model import CellKey, Outcome
from conformance.workload import MANAGED_BY, MANAGED_BY_LABEL, WorkloadManager
from tests.conftest import RunningLab

pytestmark = pytest.mark.lab
SUITES = Path(__file__).resolve().parents[2] / "suites"
POD = "probe-managed"
KWOK_NODE = {
    "nodeName": "kwok-node-0",
    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
}
SELECTION = ["--target=direct", "--path=none", "--client=native", "-p", "no:cacheprovider"]


def managed_data(running_lab: RunningLab, **workload: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(lab.harness_config_path().read_text())
    data["workload"] = {
        **data["workload"],
        "manage": True,
        "namespace": f"conformance-managed-{secrets.token_hex(4)}",
        "pods": [POD],
        "kubeconfig": str(running_lab.admin_kubeconfig),
        "grant": [{"kind": "Group", "name": "devs"}],
        "pod_overrides": KWOK_NODE,
        **workload,
    }
    return data


def quiet_manager(harness: HarnessConfig) -> WorkloadManager:
    return WorkloadManager(harness, "alice", log=lambda message: None)


@pytest.fixture
def admin(running_lab: RunningLab) -> Iterator[Any]:
    api = config.new_client_from_config(str(running_lab.admin_kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture
def leftovers(admin: Any) -> Iterator[list[str]]:
    """Namespaces a failed test may leave: deleted at teardown whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        try:
            admin.delete_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def exists(read: Any, *args: str) -> bool:
    try:
        read(*args)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_creates_namespace_and_pod_runs_cells_there_and_removes_both(
    running_lab: RunningLab, admin: Any, leftovers: list[str], tmp_path: Path
) -> None:
    harness = parse_config(managed_data(running_lab), tmp_path / "harness.yaml")
    ns = harness.workload.namespace
    leftovers.append(ns)
    manager = quiet_manager(harness)
    manager.ensure()
    try:
        assert admin.read_namespace(ns).metadata.labels[MANAGED_BY_LABEL] == MANAGED_BY
        pod = admin.read_namespaced_pod(POD, ns)
        assert pod.status.phase == "Running" and pod.spec.containers[0].image == "busybox:1.36"

        runner = CellRunner(harness, {"native": NativeAdapter()}, Expectations.load(None), 20.0)
        for protocol, operation in (("spdy", "exec"), ("ws-v5", "exec"), ("spdy", "port-forward")):
            result = runner.run(
                Cell(
                    CellKey(target="direct", path="none", protocol=protocol, operation=operation, client="native"),
                    "alice",
                )
            )
            assert result.outcome is Outcome.PASS, (result.message, result.evidence.error)
            assert result.evidence.identity is not None and result.evidence.identity.user == "alice"
    finally:
        manager.cleanup()
    assert not exists(admin.read_namespaced_pod, POD, ns)
    assert not exists(admin.read_namespace, ns)


def test_reuse_keeps_an_existing_namespace_and_deletes_only_its_pod(
    running_lab: RunningLab, admin: Any, leftovers: list[str], tmp_path: Path
) -> None:
    data = managed_data(running_lab)
    ns = data["workload"]["namespace"]
    leftovers.append(ns)
    admin.create_namespace({"metadata": {"name": ns, "labels": {"owner": "someone"}}})

    refused = quiet_manager(parse_config(data, tmp_path / "harness.yaml"))
    with pytest.raises(ConfigError, match=rf"namespace '{ns}' already exists.*workload.reuse: true"):
        refused.ensure()
    refused.cleanup()

    data["workload"]["reuse"] = True
    manager = quiet_manager(parse_config(data, tmp_path / "harness.yaml"))
    manager.ensure()
    assert exists(admin.read_namespaced_pod, POD, ns)
    manager.cleanup()
    assert not exists(admin.read_namespaced_pod, POD, ns)
    kept = admin.read_namespace(ns)
    assert kept.metadata.deletion_timestamp is None and kept.metadata.labels["owner"] == "someone"


def test_unmanaged_missing_pod_is_a_config_error_naming_namespace_and_pod(
    running_lab: RunningLab, tmp_path: Path
) -> None:
    data = yaml.safe_load(lab.harness_config_path().read_text())
    data["workload"]["pods"] = ["probe-0", "no-such-probe"]
    with pytest.raises(ConfigError) as err:
        quiet_manager(parse_config(data, tmp_path / "harness.yaml")).ensure()
    assert "pod 'no-such-probe' not found in namespace 'conformance'" in str(err.value)


def _pytest(tmp_path: Path, data: dict[str, Any], *args: str) -> subprocess.Popen[str]:
    (tmp_path / "harness.yaml").write_text(yaml.safe_dump(data))
    # Only the lab's location is inherited: a selection in the environment would change the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONFORMANCE_") or "_LAB_" in k or "CACHE" in k}
    # A terminal's foreground job takes Ctrl-C. A test run started in the background by a shell without job
    # control inherits SIGINT ignored, and so would the child (Python then never raises KeyboardInterrupt):
    # handle it here while the child starts, so that exec resets it to the default in the child.
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", f"--config={tmp_path / 'harness.yaml'}", *SELECTION, *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "xdist"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["ctrl-c", "sigterm", "ctrl-c-xdist"],
)
def test_an_interrupted_run_still_removes_its_workload(
    running_lab: RunningLab, admin: Any, leftovers: list[str], tmp_path: Path, sig: signal.Signals, xdist: bool
) -> None:
    arg = getattr(plugin, "MATRIX_ARG", "cell")  # the argument the plugin parametrizes with cells
    (tmp_path / "test_hold.py").write_text(
        f"import time\n\ndef test_hold({arg}):\n    print('CELL-RUNNING', flush=True)\n    time.sleep(120)\n"
    )
    data = managed_data(running_lab)
    ns = data["workload"]["namespace"]
    leftovers.append(ns)
    run = _pytest(tmp_path, data, "test_hold.py", "-s", "--op=exec", "--protocol=spdy", *(["-n", "2"] if xdist else []))
    assert run.stdout is not None
    seen = []
    for line in run.stdout:  # until the cell runs (xdist: workers' output is not shown, so until the pod is up)
        seen.append(line)
        if "CELL-RUNNING" in line or (xdist and "is Ready" in line):
            break
    assert exists(admin.read_namespaced_pod, POD, ns), "".join(seen)
    if xdist:
        time.sleep(3)  # let the workers start the held test
        os.killpg(run.pid, sig)  # Ctrl-C in a terminal reaches the whole foreground group
    else:
        run.send_signal(sig)
    rest, _ = run.communicate(timeout=90)
    out = "".join(seen) + rest
    assert run.returncode == pytest.ExitCode.INTERRUPTED, out
    assert f"deleting namespace '{ns}'" in out
    assert not exists(admin.read_namespace, ns), out


@pytest.mark.slow
def test_under_xdist_the_controller_alone_creates_the_workload_before_any_cell(
    running_lab: RunningLab, admin: Any, leftovers: list[str], tmp_path: Path
) -> None:
    (tmp_path / "test_matrix.py").write_text((SUITES / "test_streaming.py").read_text())
    data = managed_data(running_lab)
    ns = data["workload"]["namespace"]
    leftovers.append(ns)
    run = _pytest(tmp_path, data, "test_matrix.py", "-n", "2", "--op=exec,port-forward,attach", "-q")
    out, _ = run.communicate(timeout=180)
    assert run.returncode == 0, out
    assert out.count(f"created namespace '{ns}'") == 1 and out.count(f"created Pod '{POD}'") == 1
    assert out.index(f"Pod '{POD}' in namespace '{ns}' is Ready") < out.index("passed")
    assert not exists(admin.read_namespace, ns), out
