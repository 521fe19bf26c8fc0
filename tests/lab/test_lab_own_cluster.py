"""The lab as somebody's own cluster: the README's simple case, `pytest suites/ --kubeconfig=K`, with kubeconfigs
written the way platform teams hand them out (`conformance lab kubeconfig --credential ...`), every client.

- a token user, straight to the API server (the current context: nothing else on the command line);
- an exec-plugin user whose tokens live 6 s, straight and through kube-oidc-proxy behind the alb path, two
  contexts in one run (`--context all`): two targets, and the harness must refresh the token mid-run;
- a client-certificate user (signed by the lab CA), straight to the API server;
- the config `conformance config init` writes from a kubeconfig's contexts, run as written.

The user is dana (alice's rights in `conformance`, plus her own probe pod there). A small selection keeps each
run short: exec, port-forward and whoami; through the alb path the WebSocket protocols only (the alb, like
AWS's, does not carry SPDY: that is the matrix's finding, not this test's subject).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.lab import lab
from conformance.lab.build import REFERENCE_KUBECTL_MINOR
from tests.conftest import RunningLab

pytestmark = pytest.mark.lab
REPO = Path(__file__).resolve().parents[2]
KUBECTL = f"kubectl-1.{REFERENCE_KUBECTL_MINOR}"
CLIENTS = {"native", KUBECTL, "python"}
SELECTION = [f"--client=native,{KUBECTL},python", "--op=exec,port-forward,whoami", "--no-idle",
             "-p", "no:cacheprovider", "-q"]
WEBSOCKET = ["--protocol=ws-v5,ws-v4,ws,ws-tunnel,ws-legacy,http"]
EXEC_LIFETIME_S = 6  # the harness refreshes at half the lifetime: a run of a few seconds needs a second token


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], dict[str, Any]]:
    """`pytest suites/test_streaming.py ARGS` as a new user would run it; its results file's cells and meta."""
    results = tmp_path / f"results-{len(list(tmp_path.glob('results-*')))}.json"
    # Only the lab's location is inherited: a selection or config in the environment would change the run.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CONFORMANCE_") or "_LAB_" in k or "CACHE" in k or "SHARED" in k}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "suites" / "test_streaming.py"), *SELECTION,
         f"--results={results}", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads(results.read_text())
    return proc, doc["cells"], doc["meta"]


def assert_green_as_dana(cells: list[dict[str, Any]], targets: set[str]) -> None:
    assert cells, "no cells ran"
    assert {c["key"]["target"] for c in cells} == targets
    assert {c["key"]["client"] for c in cells} == CLIENTS
    for target in targets:  # every client, on every target
        assert {c["key"]["client"] for c in cells if c["key"]["target"] == target} == CLIENTS, target
    failed = [(c["key"], c["message"]) for c in cells if c["outcome"] != "pass"]
    assert not failed, failed
    # A pass needs the identity: the API server saw dana, whatever the credential.
    assert all(c["evidence"]["identity"]["user"] == "dana" for c in cells)


def test_token_user_the_simple_case(running_lab: RunningLab, tmp_path: Path) -> None:
    kubeconfig = lab.own_cluster_kubeconfig([("direct", "none")], "dana", "token", tmp_path / "token.kubeconfig")
    _, cells, meta = run(tmp_path, f"--kubeconfig={kubeconfig}")
    assert_green_as_dana(cells, {"direct"})
    assert meta["expected_identity"]["user"] == "dana"  # learned from the kubeconfig's user, not declared


def test_exec_plugin_user_two_contexts_with_a_refresh_mid_run(running_lab: RunningLab, tmp_path: Path) -> None:
    log = tmp_path / "exec.log"
    kubeconfig = lab.own_cluster_kubeconfig([("direct", "none"), ("jetstack", "alb")], "dana", "exec",
                                            tmp_path / "exec.kubeconfig", exec_lifetime_s=EXEC_LIFETIME_S,
                                            exec_log=log)
    _, cells, _ = run(tmp_path, f"--kubeconfig={kubeconfig}", "--context=all", *WEBSOCKET)
    assert_green_as_dana(cells, {"direct", "jetstack-via-alb"})
    runs = [line.split() for line in log.read_text().splitlines()]
    # The harness's own runs (its runner starts the plugin in a session of its own; kubectl and the kubernetes
    # client do not): the first token, and at least one more because the first died during the run.
    harness = [r for r in runs if r[3] == "own-session"]
    span = float(runs[-1][0]) - float(runs[0][0])
    assert span >= EXEC_LIFETIME_S / 2, f"the run's plugin calls ({span:.1f} s) never reached the refresh point"
    # Cached to half its lifetime, the first token cannot have served the whole run: a second run proves it.
    assert len(harness) >= 2, runs
    assert any(r[3] == "shared-session" for r in runs), "kubectl ran the user's exec plugin itself"


def test_client_certificate_user_straight_to_the_api_server(running_lab: RunningLab, tmp_path: Path) -> None:
    kubeconfig = lab.own_cluster_kubeconfig([("direct", "none")], "dana", "client-cert", tmp_path / "cert.kubeconfig")
    _, cells, _ = run(tmp_path, f"--kubeconfig={kubeconfig}")
    assert_green_as_dana(cells, {"direct"})
    whoami = [c for c in cells if c["key"]["operation"] == "whoami"]
    assert whoami and all(c["evidence"]["identity"]["credential_id"] == "X509SHA256" for c in whoami)


def test_config_init_output_runs(running_lab: RunningLab, tmp_path: Path) -> None:
    kubeconfig = lab.own_cluster_kubeconfig([("direct", "none"), ("jetstack", "alb")], "dana", "token",
                                            tmp_path / "token.kubeconfig")
    written = subprocess.run([sys.executable, "-m", "conformance.cli", "config", "init", f"--kubeconfig={kubeconfig}",
                              "--context=all"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    assert "FILL IN" in written.stdout and token not in written.stdout  # the credential stays in the kubeconfig
    config = tmp_path / "harness.yaml"
    config.write_text(written.stdout)
    _, cells, _ = run(tmp_path, f"--config={config}", *WEBSOCKET)
    assert_green_as_dana(cells, {"direct", "jetstack-via-alb"})
