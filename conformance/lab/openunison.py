"""The `openunison` target: a stand-in for OpenUnison's built-in impersonating proxy, built from Envoy.

OpenUnison is a Java application that needs its operator, a database-backed configuration and container
images, none of which the lab can fetch; what clients and the API server see of its proxy is small and
documented (shared/reference/FIELD.md), so Envoy's real jwt_authn, Lua and router filters reproduce it:
OIDC bearer auth against the lab issuer's JWKS, Impersonate-User and one Impersonate-Group per group under
its own client certificate (CN=openunison-proxy), WebSocket upgrades passed, SPDY answered 500 with
OpenUnison's HTML error page, and quiet `logs -f` / `get -w` cut. The template says which FIELD.md row
each part reproduces; docs/paths.md has the table.

Pure: renders the config and builds the command line; `lab.py` writes and runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conformance.lab.network_paths import envoy_argv
from conformance.lab.paths import assets_dir
from conformance.lab.pki import CertKeyPair
from conformance.lab.templates import render_template
from conformance.lab.topology import LOOPBACK, OIDC_AUDIENCE, Layout

NAME = "openunison"
TEMPLATE_DIR = "paths/openunison"
CONFIG_FILE = "envoy.yaml"
LUA_FILE = "impersonate.lua"
# openunison-k8s-login-oidc#27: `logs -f` and `get -w` cut after 20-40 s.
STREAM_IDLE_TIMEOUT_S = 30
# The identity the API server authenticates for proxied requests (the `openunison` client cert).
PROXY_USER = "openunison-proxy"
PROXY_GROUPS = ("lab:proxies",)
SPDY_ERROR_BODY = "<html><head><title>Error</title></head><body>Internal Server Error</body></html>"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenUnisonStandin:
    workdir: Path
    listen: int
    admin_port: int
    apiserver_port: int
    issuer_url: str
    issuer_port: int
    lab_ca: Path
    serving: CertKeyPair
    client: CertKeyPair

    @property
    def config_path(self) -> Path:
        return self.workdir / CONFIG_FILE


def standin(layout: Layout, serving: CertKeyPair) -> OpenUnisonStandin:
    return OpenUnisonStandin(
        workdir=layout.state / "targets" / NAME,
        listen=layout.port(NAME),
        admin_port=layout.port(f"{NAME}-admin"),
        apiserver_port=layout.port("kube-apiserver"),
        issuer_url=layout.issuer_url,
        issuer_port=layout.port("issuer"),
        lab_ca=layout.pki.ca.cert,
        serving=serving,
        client=layout.pki.clients.openunison,
    )


def render(ou: OpenUnisonStandin) -> dict[str, str]:
    """{file name: text} for the stand-in's work directory: the Envoy config and its Lua identity step."""
    lua = ou.workdir / LUA_FILE
    values: dict[str, object] = {
        "workdir": ou.workdir,
        "listen": ou.listen,
        "admin_port": ou.admin_port,
        "apiserver_port": ou.apiserver_port,
        "issuer_url": ou.issuer_url,
        "issuer_port": ou.issuer_port,
        "audience": OIDC_AUDIENCE,
        "lab_ca": ou.lab_ca,
        "cert": ou.serving.cert,
        "key": ou.serving.key,
        "client_cert": ou.client.cert,
        "client_key": ou.client.key,
        "lua_file": lua,
        "stream_idle_timeout_s": STREAM_IDLE_TIMEOUT_S,
    }
    templates = assets_dir() / TEMPLATE_DIR
    return {
        CONFIG_FILE: render_template(templates / f"{CONFIG_FILE}.tmpl", values),
        LUA_FILE: (templates / LUA_FILE).read_text(),
    }


def argv(ou: OpenUnisonStandin, envoy: str) -> list[str]:
    return envoy_argv(envoy, ou.config_path)


def ready_url(ou: OpenUnisonStandin) -> str:
    """Envoy's admin /ready: 200 once its listener is up (every API request itself needs a token)."""
    return f"http://{LOOPBACK}:{ou.admin_port}/ready"
