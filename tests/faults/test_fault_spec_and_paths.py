"""Fault texts, and fault hops as lab paths (names, ports, argv, harness config): pure, no lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.config import parse_config
from conformance.errors import ConfigError, LabError
from conformance.lab import fault_paths
from conformance.lab.fault_spec import MAX_BYTES, Fault, FaultKind, parse_fault
from conformance.lab.harness_config import harness_config
from conformance.lab.pki import ensure_pki
from conformance.lab.topology import Layout


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("none", Fault(kind=FaultKind.NONE)),
        ("corrupt:0", Fault(kind=FaultKind.CORRUPT, count=0)),
        (f"truncate:{MAX_BYTES}", Fault(kind=FaultKind.TRUNCATE, count=MAX_BYTES)),
        ("corrupt-c2s:65536", Fault(kind=FaultKind.CORRUPT_C2S, count=65536)),
        ("idle-cut:2.5", Fault(kind=FaultKind.IDLE_CUT, seconds=2.5)),
        ("latency:1", Fault(kind=FaultKind.LATENCY, millis=1)),
        ("swap-credential:bob", Fault(kind=FaultKind.SWAP_CREDENTIAL, user="bob")),
        ("anonymous-as:alice", Fault(kind=FaultKind.ANONYMOUS_AS, user="alice")),
        ("extra-group:system:masters", Fault(kind=FaultKind.EXTRA_GROUP, group="system:masters")),
        ("swallow-eof", Fault(kind=FaultKind.SWALLOW_EOF)),
        ("pass-impersonation", Fault(kind=FaultKind.PASS_IMPERSONATION)),
    ],
)
def test_fault_texts_parse_and_print_back(text: str, fault: Fault) -> None:
    assert parse_fault(text) == fault
    assert parse_fault(str(fault)) == fault


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("explode", "unknown fault 'explode'"),
        ("corrupt", "needs bytes"),
        ("corrupt:-1", "not a byte count"),
        (f"truncate:{MAX_BYTES + 1}", "not a byte count"),
        ("idle-cut:0.09", "seconds from 0.1 to 3600"),
        ("idle-cut:abc", "seconds"),
        ("latency:0", "milliseconds from 1 to 10000"),
        ("latency:10001", "milliseconds"),
        ("swap-credential:eve", "not a lab user"),
        ("extra-group:a b", "printable"),
        ("none:1", "takes no argument"),
    ],
)
def test_bad_fault_texts_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_fault(text)


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Layout:
    state = tmp_path_factory.mktemp("lab")
    return Layout(state=state, port_base=17400, pki=ensure_pki(state / "pki"), binaries={}, run_as_sandbox_user=False)


def test_names_ports_and_targets(layout: Layout) -> None:
    assert fault_paths.path_name("x") == "fault-x" and fault_paths.is_fault_process("fault-x")
    assert fault_paths.default_name("jetstack", parse_fault("corrupt:5")) == "jetstack-corrupt"
    with pytest.raises(LabError, match="lowercase"):
        fault_paths.check_name("Bad_Name")
    with pytest.raises(LabError, match="--target direct"):
        fault_paths.check_target("jetstack", parse_fault("pass-impersonation"))
    with pytest.raises(LabError, match="unknown lab target"):
        fault_paths.check_target("nowhere", parse_fault("none"))
    assert fault_paths.free_port(layout, set()) == 17438
    assert fault_paths.free_port(layout, {17438, 17439}) == 17440
    every = {17400 + o for o in fault_paths.FAULT_PORT_OFFSETS}
    with pytest.raises(LabError, match="every fault hop port"):
        fault_paths.free_port(layout, every)


def test_argv_carries_credentials_only_where_needed(layout: Layout) -> None:
    plain = fault_paths.argv(layout, "jetstack", parse_fault("corrupt:7"), 17438)
    assert "--fault=corrupt:7" in plain and f"--upstream-port={layout.port('kube-oidc-proxy')}" in plain
    assert not any(a.startswith(("--signing-key", "--client-cert")) for a in plain)
    swap = fault_paths.argv(layout, "direct", parse_fault("swap-credential:bob"), 17438)
    assert f"--signing-key={layout.pki.oidc_signing_key}" in swap
    assert not any(a.startswith("--client-cert") for a in swap)
    imp = fault_paths.argv(layout, "direct", parse_fault("pass-impersonation"), 17438)
    assert f"--client-cert={layout.pki.clients.kube_oidc_proxy.cert}" in imp
    assert f"--upstream-port={layout.port('kube-apiserver')}" in imp


def test_the_harness_config_gets_the_path_for_its_target_only(layout: Layout, tmp_path: Path) -> None:
    faults = {"j1": {"target": "jetstack", "fault": "truncate:100", "port": 17438}}
    alive = {"kube-apiserver": True, "kube-oidc-proxy": True, "openunison": True, "fault-j1": True}
    config = harness_config(layout, versions={}, paths=(), alive=alive, faults=faults)
    assert config["targets"]["jetstack"]["via"]["fault-j1"] == {
        "server": "https://127.0.0.1:17438",
        "ca_file": str(layout.pki.ca.cert),
        "available": True,
    }
    assert "fault-j1" not in config["targets"]["direct"]["via"]
    entry = config["paths"]["fault-j1"]
    assert entry["kind"] == "fault-hop" and entry["fault"] == "truncate:100" and "idle_timeout_s" not in entry
    parsed = parse_config(config, tmp_path / "harness.yaml")
    assert parsed.targets["jetstack"].endpoints["fault-j1"].server == "https://127.0.0.1:17438"
    assert parsed.paths["fault-j1"].idle_timeout_s is None
    # A dead hop is unavailable.
    config = harness_config(layout, versions={}, alive={**alive, "fault-j1": False}, faults=faults)
    assert config["targets"]["jetstack"]["via"]["fault-j1"]["available"] is False
    assert config["paths"]["fault-j1"]["available"] is False
