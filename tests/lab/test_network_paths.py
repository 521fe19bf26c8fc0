"""The network paths' configs, ports and endpoints, read without starting anything (no lab needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conformance.errors import LabError
from conformance.lab import edges, network_paths, openunison, path_software, topology
from conformance.lab.harness_config import harness_config
from conformance.lab.network_paths import PATH_NAMES, PATHS, TARGET_NAMES
from conformance.lab.pki import ensure_pki
from conformance.lab.templates import PLACEHOLDER, render_template

PORT_BASE = 20000


def _layout(tmp_path: Path, as_root: bool = True) -> topology.Layout:
    return topology.Layout(
        state=tmp_path, port_base=PORT_BASE, pki=ensure_pki(tmp_path / "pki"), binaries={}, run_as_sandbox_user=as_root
    )


def _rendered(layout: topology.Layout, name: str, **kwargs: object) -> str:
    inst = network_paths.instance(layout, name, serving=edges.serving_cert(layout, name), **kwargs)  # type: ignore[arg-type]
    (text,) = network_paths.render(inst).values()
    return text


def test_every_listener_has_its_own_port_inside_the_block(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    names = {network_paths.port_name(p, t) for p in PATH_NAMES for t in TARGET_NAMES}
    names |= {"openunison", "openunison-admin", "gateway-admin"}
    # One listener per target process (the two passthrough targets share one); the forward proxy has one port.
    assert len(network_paths.LISTENER_NAMES) == len(TARGET_NAMES) - 1
    assert len(names) == 4 * len(network_paths.LISTENER_NAMES) + 1 + 3
    assert network_paths.port_name("alb", "jetstack-passthrough-sa") == "alb-jetstack-passthrough"
    ports = [layout.port(n) for n in names]
    assert len(set(ports)) == len(names)
    offsets = {p - PORT_BASE for p in ports}
    assert all(10 <= o < topology.PORT_BLOCK for o in offsets)
    proxies = {topology.PORT_OFFSETS[n] for p in topology.OIDC_PROXIES for n in (p.name, p.name + "-ready")}
    assert offsets.isdisjoint(range(10)) and offsets.isdisjoint(proxies)


@pytest.mark.parametrize("name", PATH_NAMES)
def test_each_template_renders_fully_and_names_what_it_reproduces(tmp_path: Path, name: str) -> None:
    layout = _layout(tmp_path)
    text = _rendered(layout, name)
    assert not PLACEHOLDER.search(text)
    template = (Path(network_paths.__file__).parent / "assets" / "paths" / PATHS[name].template).read_text()
    assert "FIELD.md" in template or "LAB.md" in template, "a template says which field behaviour it reproduces"
    assert "0.0.0.0" not in text  # noqa: S104 - asserting its absence
    for target in TARGET_NAMES:
        assert str(layout.port(network_paths.TARGET_PORT_NAMES[target])) in text


def test_alb_strips_non_websocket_upgrades_and_takes_its_idle_timeout(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    text = _rendered(layout, "alb", idle_timeout_s=7)
    assert "del-header Upgrade if !websocket_upgrade" in text
    assert "del-header Connection if !websocket_upgrade" in text
    assert "alpn h2,http/1.1" in text and "verify required" in text
    assert "timeout tunnel 7s" in text and "timeout client 7s" in text
    assert str(layout.pki.serving.alb.cert) in text


def test_gateway_allows_only_websocket_upgrades_and_openunison_takes_spdy_to_its_lua(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    gateway = yaml.safe_load(_rendered(layout, "gateway"))
    hcm = gateway["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm["upgrade_configs"] == [{"upgrade_type": "websocket"}]
    ou = openunison.standin(layout, layout.pki.make_serving_cert("openunison"))
    rendered = openunison.render(ou)
    config = yaml.safe_load(rendered["envoy.yaml"])
    hcm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    # SPDY reaches the Lua step (which answers 500), instead of Envoy's own 403.
    assert {"upgrade_type": "SPDY/3.1"} in hcm["upgrade_configs"]
    assert hcm["stream_idle_timeout"] == "0s"
    upgraded, plain = hcm["route_config"]["virtual_hosts"][0]["routes"]
    assert plain["route"]["idle_timeout"] == "10s" and "idle_timeout" not in upgraded["route"]
    assert [f["name"] for f in hcm["http_filters"]] == [
        "openunison.defaults",
        "envoy.filters.http.jwt_authn",
        "openunison.apiserver",
        "envoy.filters.http.router",
    ]
    # No client certificate upstream: the credential is the ServiceAccount token.
    upstream_tls = config["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
    assert "tls_certificates" not in upstream_tls["common_tls_context"]
    lua = rendered["openunison.lua"]
    assert openunison.ERROR_PHRASE in lua and str(ou.token_file) in lua
    assert "{{" not in lua and "{{" not in rendered["envoy.yaml"]


def test_openunison_release_option_selects_the_spdy_answer(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    serving = layout.pki.make_serving_cert("openunison")
    new = openunison.render(openunison.standin(layout, serving))["openunison.lua"]
    old = openunison.render(openunison.standin(layout, serving, "1.0.43"))["openunison.lua"]
    assert f"local SPDY_HTML = {json.dumps(openunison.ERROR_PAGE)}" in new
    assert f"local SPDY_JSON = {json.dumps(openunison.ERROR_JSON)}" in new
    assert f"local SPDY_HTML = {json.dumps(openunison.UNDERTOW_500)}" in old
    assert f"local SPDY_JSON = {json.dumps(openunison.UNDERTOW_500)}" in old
    assert openunison.release_from_env({}) == "1.0.50"
    assert openunison.release_from_env({openunison.RELEASE_ENV: "1.0.43"}) == "1.0.43"
    with pytest.raises(LabError, match="mirrors one of"):
        openunison.release_from_env({openunison.RELEASE_ENV: "2.0"})
    answers = {a["means"] for a in openunison.proxy_answers("1.0.43")}
    assert answers == {"unauthorized", "forbidden", "upgrade-refused"}


def test_ingress_passes_every_upgrade_with_ingress_nginx_defaults(tmp_path: Path) -> None:
    text = _rendered(_layout(tmp_path), "ingress")
    assert "proxy_http_version 1.1;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "proxy_read_timeout 60s;" in text and "proxy_send_timeout 60s;" in text
    assert "user root root;" in text  # as root, so its workers can reach a state dir under a 0700 home
    assert "user root" not in _rendered(_layout(tmp_path / "user", as_root=False), "ingress")


def test_squid_as_root_writes_outside_the_state_dir_under_its_own_service_name(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    inst = network_paths.instance(layout, "https-proxy", serving=None)
    assert inst.rundir != inst.workdir and str(PORT_BASE) in inst.rundir.name
    argv = network_paths.argv(inst, "/usr/sbin/squid")
    assert argv[:4] == ["/usr/sbin/squid", "-N", "-n", f"conformancelab{layout.port('https-proxy')}"]
    text = network_paths.render(inst)["squid.conf"]
    assert "cache_effective_user nobody" in text and f"pid_filename {inst.rundir}/squid.pid" in text
    assert "dns_nameservers 127.0.0.1" in text
    not_root = network_paths.instance(_layout(tmp_path / "u", as_root=False), "https-proxy", serving=None)
    assert not_root.rundir == not_root.workdir


def test_endpoints_name_the_ca_each_path_presents(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    for target in TARGET_NAMES:
        direct = network_paths.endpoint(layout, target, "none")
        assert network_paths.endpoint(layout, target, "alb")["ca_file"] == str(layout.pki.alb_ca.cert)
        for path in ("nlb", "ingress", "gateway"):
            ep = network_paths.endpoint(layout, target, path)
            assert ep["ca_file"] == str(layout.pki.ca.cert) and ep["server"] != direct["server"]
        proxied = network_paths.endpoint(layout, target, "https-proxy")
        assert proxied["server"] == direct["server"]
        assert proxied["proxy_url"] == f"http://127.0.0.1:{layout.port('https-proxy')}"


def test_alb_idle_timeout_from_the_environment() -> None:
    assert network_paths.alb_idle_timeout_s({}) == 60
    assert network_paths.alb_idle_timeout_s({network_paths.ALB_IDLE_TIMEOUT_ENV: "5"}) == 5
    for bad in ("0", "-1", "1.5", "soon", "999999"):
        with pytest.raises(LabError, match=network_paths.ALB_IDLE_TIMEOUT_ENV):
            network_paths.alb_idle_timeout_s({network_paths.ALB_IDLE_TIMEOUT_ENV: bad})


def test_path_lists() -> None:
    assert network_paths.parse_path_list(None) == PATH_NAMES
    assert network_paths.parse_path_list("all") == PATH_NAMES
    assert network_paths.parse_path_list("none") == ()
    assert network_paths.parse_path_list("alb, nlb") == ("nlb", "alb")
    with pytest.raises(LabError, match="unknown network path 'elb'"):
        network_paths.parse_path_list("nlb,elb")


def test_harness_config_marks_dead_processes_unavailable(tmp_path: Path) -> None:
    layout = _layout(tmp_path)
    alive = {"kube-apiserver": True, "kube-oidc-proxy": True, "openunison": False, "alb": True, "gateway": False}
    config = harness_config(layout, versions={"haproxy": "2.6"}, paths=("alb", "gateway"), alive=alive)
    assert set(config["paths"]) == {"none", "alb", "gateway"}
    assert config["paths"]["alb"] | {"available": True} == config["paths"]["alb"]
    assert config["paths"]["alb"]["version"] == "2.6"
    assert config["paths"]["gateway"]["available"] is False
    assert config["targets"]["openunison"]["available"] is False
    assert config["targets"]["jetstack"]["via"]["alb"]["available"] is True
    assert config["targets"]["jetstack"]["via"]["gateway"]["available"] is False
    assert config["targets"]["openunison"]["via"]["alb"]["available"] is False
    ou = config["targets"]["openunison"]
    assert ou["impersonating_proxy"]["user"] == "system:serviceaccount:openunison:openunison-orchestra"
    assert ou["impersonating_proxy"]["groups"][-1] == "system:authenticated"
    assert ou["mirrors"] == "OpenUnison 1.0.50"
    assert ou["proxy_audit"] == {
        "type": "file",
        "path": str(tmp_path / "targets" / "openunison" / "access.log"),
        "format": "openunison-access-log",
    }
    challenge = 'WWW-Authenticate: Bearer realm="kubernetes",scope="auth"'
    assert {"status": 401, "header": challenge, "means": "unauthorized"} in ou["proxy_answers"]


def test_template_placeholders_must_all_be_filled(tmp_path: Path) -> None:
    template = tmp_path / "t.tmpl"
    template.write_text("listen {{port}} {{ host }}\n")
    assert render_template(template, {"port": 1, "host": "127.0.0.1"}) == "listen 1 127.0.0.1\n"
    with pytest.raises(LabError, match="host"):
        render_template(template, {"port": 1})


@pytest.mark.parametrize("name", sorted(path_software.SOFTWARE))
def test_installed_path_software_reports_a_version(name: str) -> None:
    if path_software.find_binary(name) is None:
        pytest.skip(f"{name} is not installed here (scripts/setup.sh installs it)")
    manifest = path_software.probe(name)
    assert manifest.version and manifest.version[0].isdigit()


@pytest.mark.parametrize("name", PATH_NAMES)
def test_rendered_configs_pass_the_programs_own_check(tmp_path: Path, name: str) -> None:
    software = PATHS[name].software
    binary = path_software.find_binary(software)
    if binary is None:
        pytest.skip(f"{software} is not installed here")
    layout = _layout(tmp_path, as_root=False)
    inst = network_paths.instance(layout, name, serving=edges.serving_cert(layout, name))
    edges.prepare_instance(inst)
    check = {
        "haproxy": [binary, "-c", "-f", str(inst.config_path)],
        "nginx": [binary, "-t", "-p", f"{inst.workdir}/", "-c", str(inst.config_path), "-e", "stderr"],
        "envoy": [binary, "--mode", "validate", "-c", str(inst.config_path), "--disable-hot-restart"],
        "squid": [binary, "-k", "parse", "-f", str(inst.config_path)],
    }[software]
    result = subprocess.run(check, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
