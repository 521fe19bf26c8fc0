"""The lab as somebody's cluster: dave may exec, cp, attach and port-forward in `conformance`, but may neither
read namespaces nor create pods. With an existing pod (--pod probe-0) the suites are green; without it the
preflight stops the run before the matrix, naming the missing rights and printing the manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import RunningLab

pytestmark = pytest.mark.lab
ROOT = Path(__file__).parents[2]
OPS = "exec,cp-upload,port-forward,attach,logs-follow"


def _env() -> dict[str, str]:
    # Only the lab's location is inherited: a selection in the environment would change the run.
    return {k: v for k, v in os.environ.items() if not k.startswith("CONFORMANCE_") or "_LAB_" in k or "SHARED" in k}


def _run(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def dave(running_lab: RunningLab) -> Path:
    return running_lab.kubeconfig("direct", "dave")


def test_dave_may_not_read_namespaces_nor_create_pods(running_lab: RunningLab, dave: Path) -> None:
    # The premise, asked of the API server itself: what makes him a namespace-scoped user.
    for verb, resource in (("get", "namespaces"), ("create", "pods")):
        out = subprocess.run(
            [str(running_lab.kubectl), f"--kubeconfig={dave}", "auth", "can-i", verb, resource, "-n", "conformance"],
            capture_output=True, text=True, timeout=30,
        )
        assert out.stdout.strip() == "no", (verb, resource, out.stdout, out.stderr)


def test_with_an_existing_pod_the_suites_are_green(dave: Path, tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    run = _run(
        "pytest", "suites/test_streaming.py", "-p", "no:cacheprovider", f"--kubeconfig={dave}",
        "--pod=probe-0", f"--op={OPS}", "--client=native", f"--results={results}",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "conformance preflight: ready" in run.stdout
    cells = json.loads(results.read_text())["cells"]
    assert {c["key"]["operation"] for c in cells} == set(OPS.split(","))
    assert {c["outcome"] for c in cells} == {"pass"}
    assert {c["evidence"]["identity"]["user"] for c in cells} == {"dave"}


def test_without_the_pod_the_preflight_names_the_missing_rights_and_prints_the_manifest(dave: Path) -> None:
    run = _run(
        "pytest", "suites/test_streaming.py", "-p", "no:cacheprovider", f"--kubeconfig={dave}",
        "--op=exec", "--client=native",
    )
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout[-3000:] + run.stderr[-2000:]
    assert "no tests ran" in run.stdout
    err = run.stderr
    assert "preflight: nothing could work" in err
    assert "Missing rights, verb by verb: create pods, delete pods (in 'conformance')." in err
    assert "conformance rights --manifest --user dave --namespace conformance --op exec" in err
    assert "--pod NAME" in err
    manifest = "\n".join(line[4:] for line in err.splitlines() if line.startswith("    "))
    role, binding = yaml.safe_load_all(manifest)
    assert {"create", "delete", "get"} <= {v for r in role["rules"] if r["resources"] == ["pods"] for v in r["verbs"]}
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"}]


def test_the_preflight_command_prints_the_table(dave: Path) -> None:
    run = _run("conformance.cli", "preflight", f"--kubeconfig={dave}", "--pod=probe-0", "--op=exec,port-forward")
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["AREA", "CHECK", "STATUS", "DETAIL"]
    assert any(line.startswith("identity") and "user 'dave'" in line for line in lines)
    assert any(line.startswith("rights") and "create pods/exec" in line and " ok " in line for line in lines)
    assert any(line.startswith("workload") and "echo listener :8080" in line and "echoes" in line for line in lines)
    assert lines[-1] == "preflight verdict: ready: every check passed"
    stopped = _run("conformance.cli", "preflight", f"--kubeconfig={dave}", "--op=exec")
    assert stopped.returncode == 4 and "FAIL" in stopped.stdout and "missing create pods" in stopped.stdout


def test_an_existing_pod_without_an_echo_listener_skips_port_forward_with_the_reason(
    dave: Path, tmp_path: Path
) -> None:
    # probe-mute: kwok dials a port where nothing listens, so its port-forward reaches nothing.
    results = tmp_path / "results.json"
    run = _run(
        "pytest", "suites/test_streaming.py", "-p", "no:cacheprovider", f"--kubeconfig={dave}",
        "--pod=probe-mute", "--op=exec,port-forward", "--client=native", f"--results={results}",
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "preflight verdict: degraded" in run.stdout and "port-forward cells will be skipped" in run.stdout
    cells = json.loads(results.read_text())["cells"]
    by_op = {op: {c["outcome"] for c in cells if c["key"]["operation"] == op} for op in ("exec", "port-forward")}
    assert by_op == {"exec": {"pass"}, "port-forward": {"skip"}}
    skipped = [c["message"] for c in cells if c["outcome"] == "skip"]
    assert all(m.startswith("no echo listener in pod 'probe-mute'") and "connection refused" in m for m in skipped)
    strict = _run(
        "pytest", "suites/test_streaming.py", "-p", "no:cacheprovider", f"--kubeconfig={dave}",
        "--pod=probe-mute", "--op=port-forward", "--client=native", "--protocol=spdy", "--strict",
    )
    assert strict.returncode == pytest.ExitCode.TESTS_FAILED  # a gate that must run everything fails the skip
