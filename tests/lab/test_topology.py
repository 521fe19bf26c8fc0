"""The lab's command lines and config files, read without starting anything."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from conformance.lab import topology
from conformance.lab.harness_config import harness_config
from conformance.lab.pki import ensure_pki

BINARIES = {
    n: f"/opt/{n}"
    for n in (
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "kube-oidc-proxy",
        "kube-oidc-proxy-0.3",
    )
}


def _layout(tmp_path: Path) -> topology.Layout:
    return topology.Layout(
        state=tmp_path, port_base=20000, pki=ensure_pki(tmp_path / "pki"), binaries=BINARIES, run_as_sandbox_user=True
    )


def test_every_component_listens_on_loopback_only(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    argvs = [
        topology.etcd_argv(layout),
        topology.apiserver_argv(layout),
        topology.kwok_argv(layout),
        topology.controller_manager_argv(layout),
        topology.scheduler_argv(layout),
        *(topology.kube_oidc_proxy_argv(layout, proxy) for proxy in topology.OIDC_PROXIES),
        topology.issuer_argv(layout),
        topology.workload_argv(layout),
    ]
    text = " ".join(" ".join(a) for a in argvs)
    assert "0.0.0.0" not in text  # noqa: S104 - asserting its absence
    for argv in argvs:
        for arg in argv:
            if arg.startswith(("--bind-address=", "--advertise-address=", "--node-ip=")):
                assert arg.endswith("=127.0.0.1"), arg


def test_ports_are_distinct_and_inside_the_block(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    ports = [layout.port(n) for n in topology.PORT_OFFSETS]
    assert len(set(ports)) == len(ports)
    assert all(20000 <= p < 20000 + topology.PORT_BLOCK for p in ports)


def test_port_base_skips_a_busy_block() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        busy = holder.getsockname()[1]
        base = topology.choose_port_base(busy - 3)
    # The next block may be busy too (the ephemeral range is crowded while a lab runs): any later block will do.
    assert base > busy - 3 and (base - (busy - 3)) % topology.PORT_BLOCK == 0


def test_config_files(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    topology.write_config_files(layout, [])
    authn = yaml.safe_load((layout.config_dir / "authentication.yaml").read_text())
    issuer = authn["jwt"][0]["issuer"]
    assert issuer["url"] == f"https://127.0.0.1:{layout.port('issuer')}"
    assert issuer["audiences"] == [topology.OIDC_AUDIENCE]
    kinds = [d["kind"] for d in yaml.safe_load_all((layout.config_dir / "kwok.yaml").read_text())]
    assert {"ClusterExec", "ClusterPortForward", "ClusterAttach", "ClusterLogs"} <= set(kinds)
    kwok = {d["kind"]: d for d in yaml.safe_load_all((layout.config_dir / "kwok.yaml").read_text())}
    local = kwok["ClusterExec"]["spec"]["execs"][0]["local"]
    assert local["securityContext"]["runAsUser"] == topology.SANDBOX_UID
    assert local["workDir"] == str(layout.sandbox)
    for name in ("admin", "kube-oidc-proxy"):
        assert (layout.component_kubeconfig(name).stat().st_mode & 0o777) == 0o600


def test_harness_config_names_targets_and_holds_no_secret(tmp_path: Path) -> None:
    config = harness_config(_layout(tmp_path), versions={"kubernetes": "v1.36.3"}, service_account_uid="u-1")
    assert set(config["targets"]) == {
        "direct",
        "jetstack",
        "jetstack-0.3",
        "jetstack-passthrough",
        "jetstack-passthrough-sa",
        "openunison",
    }
    assert config["targets"]["jetstack"]["impersonating_proxy"]["user"] == "kube-oidc-proxy"
    # No kube-oidc-proxy target is a stand-in any more; each names its own audit log.
    for name in ("jetstack", "jetstack-0.3", "jetstack-passthrough", "jetstack-passthrough-sa"):
        assert "standin" not in config["targets"][name]
        assert config["targets"][name]["proxy_audit"]["format"] == "k8s-audit"
    sa = config["targets"]["jetstack-passthrough-sa"]
    assert sa["user"] == "sa-alice" and sa["impersonating_proxy"] is None
    assert sa["proxy_audit"] == config["targets"]["jetstack-passthrough"]["proxy_audit"]
    assert config["users"]["sa-alice"]["credential"]["type"] == "lab-serviceaccount"
    assert config["users"]["sa-alice"]["expect"]["user"] == "system:serviceaccount:conformance:sa-alice"
    assert config["users"]["sa-alice"]["expect"]["uid"] == "u-1"
    assert config["users"]["alice"]["expect"] == {"user": "alice", "groups": ["devs", "system:authenticated"]}
    text = yaml.safe_dump(config)
    assert "eyJ" not in text and "PRIVATE KEY" not in text


def test_each_kube_oidc_proxy_logs_its_own_audit_and_only_one_passes_tokens_through(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    argvs = {p.name: topology.kube_oidc_proxy_argv(layout, p) for p in topology.OIDC_PROXIES}
    assert set(argvs) == {"kube-oidc-proxy", "kube-oidc-proxy-0.3", "kube-oidc-proxy-passthrough"}
    logs = {next(a for a in argv if a.startswith("--audit-log-path=")) for argv in argvs.values()}
    assert len(logs) == 3
    assert [n for n, argv in argvs.items() if "--token-passthrough" in argv] == ["kube-oidc-proxy-passthrough"]
    assert argvs["kube-oidc-proxy-0.3"][0] == layout.binaries["kube-oidc-proxy-0.3"]
