"""The `openunison` target: a stand-in for OpenUnison's built-in impersonating proxy, built from Envoy.

OpenUnison is a Java (Undertow) application that needs its operator, a database-backed configuration and
container images, none of which the lab can fetch. What clients and the API server see of its `apiserver`
application is reproduced with Envoy's real jwt_authn, Lua and router filters, row by row as OpenUnison
MIRRORS_RELEASE does it (docs/paths.md has the table with each row's evidence in OpenUnison's source):

- to the API server it presents a bound ServiceAccount token (TokenRequest, audience `api`, 600 s), which
  `openunison_token.py` (the lab's stand-in for the kubelet's projected volume) keeps fresh in a file that
  the Lua filter re-reads on every request; the API server sees system:serviceaccount:openunison:openunison-orchestra;
- Impersonate-User = `sub`, Impersonate-Group `system:authenticated` first, then one per `groups` value;
- client Impersonate-* headers (any case) and Authorization are dropped; `access_token` in the query is
  accepted like the bearer header and removed before forwarding;
- 401 with `WWW-Authenticate: Bearer realm="kubernetes",scope="auth"`; the application's group rule
  answers users outside it 403 itself; SPDY (any upgrade without Sec-WebSocket-Key) 500 with its error
  page; a WebSocket the API server refuses becomes 500; quiet plain responses are cut after 10 s;
- one access-log line per request in OpenUnison's AccessLog format (`conformance/openunison_access_log.py`).

Pure: renders the config and builds the command lines; `lab.py` writes and runs them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.errors import LabError
from conformance.lab.network_paths import envoy_argv
from conformance.lab.openunison_token import ApiServer
from conformance.lab.paths import assets_dir
from conformance.lab.pki import CertKeyPair
from conformance.lab.templates import render_template
from conformance.lab.topology import LOOPBACK, OIDC_AUDIENCE, OPENUNISON_TOKEN_AUDIENCE, Layout

NAME = "openunison"
TOKEN_PROCESS = "openunison-token"  # noqa: S105 - a process name
TEMPLATE_DIR = "paths/openunison"
CONFIG_FILE = "envoy.yaml"
LUA_FILE = "openunison.lua"
TOKEN_FILE = "ou-token"  # noqa: S105 - the projected volume's file name in the OpenUnison chart
ACCESS_LOG = "access.log"  # the container's stdout, which the cluster's log pipeline keeps
# The OpenUnison release whose behaviour the stand-in reproduces, and the one option it has: releases
# before 1.0.44 answered a SPDY upgrade with Undertow's bare error page.
MIRRORS_RELEASE = "1.0.50"
RELEASES = ("1.0.50", "1.0.43")
RELEASE_ENV = "CONFORMANCE_LAB_OPENUNISON_RELEASE"
# The helm release and namespace of the OpenUnison chart (`orchestra` in its docs).
HELM_RELEASE = "orchestra"
SA_NAMESPACE = "openunison"
SERVICE_ACCOUNT = f"openunison-{HELM_RELEASE}"
POD_NAME = f"{SERVICE_ACCOUNT}-0"
PROXY_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SERVICE_ACCOUNT}"
PROXY_GROUPS = ("system:serviceaccounts", f"system:serviceaccounts:{SA_NAMESPACE}", "system:authenticated")
# The chart's TokenRequest defaults (enable_tokenrequest): audience `api`, 600 s.
TOKEN_AUDIENCE = OPENUNISON_TOKEN_AUDIENCE
TOKEN_LIFETIME_S = 600
# The upstream HTTP client's socket timeout: a plain response silent this long is cut.
UPSTREAM_SOCKET_TIMEOUT_S = 10
# The `apiserver` application's authorization rule: a user in one of these groups (or named here). alice
# (devs) and the security suite's get-only bob (viewers) pass, so the API server's RBAC still decides for
# them; carol (outsiders, with alice's RBAC rights) is the lab user only this rule stops.
ALLOWED_GROUPS = ("devs", "viewers")
ALLOWED_USERS: tuple[str, ...] = ()
REALM = 'Bearer realm="kubernetes",scope="auth"'
ERROR_PHRASE = "An error occurred while processing this request"
ERROR_JSON = '{"error":"generic error, see logs"}'
UNDERTOW_500 = "<html><head><title>Error</title></head><body>Internal Server Error</body></html>"
UNDERTOW_401 = "<html><head><title>Error</title></head><body>Unauthorized</body></html>"
FORBIDDEN_PHRASE = "You are not authorized to access this resource"
ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>OpenUnison - Error</title></head><body>"
    f"<h1>Error</h1><p>{ERROR_PHRASE}</p></body></html>"
)
FORBIDDEN_PAGE = (
    "<!DOCTYPE html><html><head><title>OpenUnison - Unauthorized</title></head><body>"
    f"<h1>Unauthorized</h1><p>{FORBIDDEN_PHRASE}</p></body></html>"
)


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
    release: str = MIRRORS_RELEASE
    allowed_groups: tuple[str, ...] = ALLOWED_GROUPS
    allowed_users: tuple[str, ...] = ALLOWED_USERS
    socket_timeout_s: int = UPSTREAM_SOCKET_TIMEOUT_S

    @property
    def config_path(self) -> Path:
        return self.workdir / CONFIG_FILE

    @property
    def token_file(self) -> Path:
        return self.workdir / TOKEN_FILE

    @property
    def access_log(self) -> Path:
        return self.workdir / ACCESS_LOG


def release_from_env(env: Mapping[str, str]) -> str:
    release = env.get(RELEASE_ENV, MIRRORS_RELEASE)
    if release not in RELEASES:
        raise LabError(f"{RELEASE_ENV}={release!r}: the stand-in mirrors one of {', '.join(RELEASES)}")
    return release


def workdir(layout: Layout) -> Path:
    return layout.state / "targets" / NAME


def standin(layout: Layout, serving: CertKeyPair, release: str = MIRRORS_RELEASE) -> OpenUnisonStandin:
    return OpenUnisonStandin(
        workdir=workdir(layout),
        listen=layout.port(NAME),
        admin_port=layout.port(f"{NAME}-admin"),
        apiserver_port=layout.port("kube-apiserver"),
        issuer_url=layout.issuer_url,
        issuer_port=layout.port("issuer"),
        lab_ca=layout.pki.ca.cert,
        serving=serving,
        release=release,
    )


def spdy_answers(release: str) -> tuple[str, str]:
    """(HTML body, JSON body) of the 500 a SPDY upgrade gets: before 1.0.44 Undertow's bare page for both."""
    if release == MIRRORS_RELEASE:
        return ERROR_PAGE, ERROR_JSON
    return UNDERTOW_500, UNDERTOW_500


def _lua_string(value: str) -> str:
    text = json.dumps(value)  # a valid Lua string literal for ASCII text
    if "\\u" in text:
        raise LabError(f"the openunison stand-in takes ASCII names only, got {value!r}")
    return text


def _lua_set(values: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"[{_lua_string(v)}] = true" for v in values) + "}"


def render(ou: OpenUnisonStandin) -> dict[str, str]:
    """{file name: text} for the stand-in's work directory: the Envoy config and its Lua steps."""
    spdy_html, spdy_json = spdy_answers(ou.release)
    templates = assets_dir() / TEMPLATE_DIR
    lua_values: dict[str, object] = {
        "release": ou.release,
        "token_file": _lua_string(str(ou.token_file)),
        "audience": _lua_string(OIDC_AUDIENCE),
        "allowed_groups": _lua_set(ou.allowed_groups),
        "allowed_users": _lua_set(ou.allowed_users),
        "realm": _lua_string(REALM),
        "unauthorized_page": _lua_string(UNDERTOW_401),
        "forbidden_page": _lua_string(FORBIDDEN_PAGE),
        "error_page": _lua_string(ERROR_PAGE),
        "spdy_html": _lua_string(spdy_html),
        "spdy_json": _lua_string(spdy_json),
    }
    values: dict[str, object] = {
        "release": ou.release,
        "workdir": ou.workdir,
        "listen": ou.listen,
        "admin_port": ou.admin_port,
        "apiserver_port": ou.apiserver_port,
        "issuer_url": ou.issuer_url,
        "issuer_port": ou.issuer_port,
        "lab_ca": ou.lab_ca,
        "cert": ou.serving.cert,
        "key": ou.serving.key,
        "lua_file": ou.workdir / LUA_FILE,
        "access_log": ou.access_log,
        "socket_timeout_s": ou.socket_timeout_s,
        "realm_yaml": json.dumps(REALM),
        "unauthorized_page_yaml": json.dumps(UNDERTOW_401),
    }
    return {
        CONFIG_FILE: render_template(templates / f"{CONFIG_FILE}.tmpl", values),
        LUA_FILE: render_template(templates / f"{LUA_FILE}.tmpl", lua_values),
    }


def argv(ou: OpenUnisonStandin, envoy: str) -> list[str]:
    return envoy_argv(envoy, ou.config_path)


def ready_url(ou: OpenUnisonStandin) -> str:
    """Envoy's admin /ready: 200 once its listener is up (every API request itself needs a token)."""
    return f"http://{LOOPBACK}:{ou.admin_port}/ready"


def token_api(layout: Layout) -> ApiServer:
    admin = layout.pki.clients.admin
    return ApiServer(layout.url("kube-apiserver"), layout.pki.ca.cert, admin.cert, admin.key)


def token_argv(layout: Layout, python: str) -> list[str]:
    """The lab's token refresher: what the kubelet does for the chart's projected token volume."""
    return [
        python,
        "-m",
        "conformance.lab.openunison_token",
        f"--server={layout.url('kube-apiserver')}",
        f"--ca={layout.pki.ca.cert}",
        f"--client-cert={layout.pki.clients.admin.cert}",
        f"--client-key={layout.pki.clients.admin.key}",
        f"--namespace={SA_NAMESPACE}",
        f"--service-account={SERVICE_ACCOUNT}",
        f"--pod={POD_NAME}",
        f"--audience={TOKEN_AUDIENCE}",
        f"--lifetime-s={TOKEN_LIFETIME_S}",
        f"--out={workdir(layout) / TOKEN_FILE}",
    ]


def proxy_answers(release: str) -> list[dict[str, Any]]:
    """The stand-in's own documented answers, so a classifier can attribute a refusal to it (docs/config.md).

    500 with the error page: a SPDY upgrade (1.0.50) and a WebSocket the API server refused (both releases)."""
    answers: list[dict[str, Any]] = [
        {"status": 401, "header": f"WWW-Authenticate: {REALM}", "means": "unauthorized"},
        {"status": 403, "body_contains": FORBIDDEN_PHRASE, "means": "forbidden"},
        {"status": 500, "body_contains": ERROR_PHRASE, "means": "upgrade-refused"},
    ]
    if release == MIRRORS_RELEASE:
        answers.append({"status": 500, "body_contains": ERROR_JSON, "means": "upgrade-refused"})
    else:
        answers.append({"status": 500, "body_contains": "Internal Server Error", "means": "upgrade-refused"})
    return answers


def impersonating_proxy() -> dict[str, Any]:
    """What the API server records as the authenticated user of every proxied request: the ServiceAccount,
    authenticated by a bound token (credential kind JTI, not a certificate). OpenUnison adds no extras and
    no uid to the impersonated user, so `adds_extra` is empty: any extra there is a mismatch."""
    return {"user": PROXY_USER, "groups": list(PROXY_GROUPS), "credential": "JTI", "adds_extra": {}}


def release_in(env: Mapping[str, str] | None = None) -> str:
    return release_from_env(os.environ if env is None else env)
