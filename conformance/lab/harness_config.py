"""The harness config that `lab up` writes: the lab's targets, paths, endpoints, credentials and identities.

The same format describes a user's own cluster (docs/config.md). Credentials are *sources*, never
secrets: a token is minted or read when a probe needs it, so this file can be shared and logged.

Targets and paths (docs/paths.md):

    targets:
      <target>:                      direct | jetstack | jetstack-0.3 | jetstack-passthrough |
                                     jetstack-passthrough-sa | openunison
        server, ca_file              straight to the target (path "none")
        available                    its process is running
        impersonating_proxy          {user, groups, adds_extra}: who the API server sees for proxied requests
        proxy_answers                openunison: its own refusals [{status, header?, body_contains?, means}]
        proxy_audit                  openunison: {type: file, path, format: openunison-access-log}
        mirrors, authorization       openunison: the release it reproduces; its group rule (informational)
        quiet_stream_cut_s           openunison: 10 (a silent plain response is cut; adds watch-quiet cells)
        user                         (optional) the config user this target's cells run as, whatever the
                                     run's --user (jetstack-passthrough-sa: the service account)
        impersonating_proxy          {user, groups, adds_extra}: who the API server sees authenticate a
                                     proxied request, and the extras the proxy adds; null: not impersonated
        proxy_audit                  (kube-oidc-proxy targets) the proxy's own audit log: {type: file,
                                     path, format: k8s-audit}, the audit chain's second source
        via:
          <path>:                    nlb | alb | ingress | gateway | https-proxy (those the lab started)
            server                   the URL a client uses (the path's listener for this target; for
                                     https-proxy the target's own URL)
            ca_file                  the CA the path presents (alb: alb-ca; otherwise the lab CA)
            proxy_url                https-proxy only: the forward proxy, reached with CONNECT
            available                path and target processes are both running
    paths:
      <path>: description, kind, stands_in_for, reproduces, software, version, template,
              idle_timeout_s, process, available
      fault-<name>:                  a fault hop (`conformance lab fault`): description, kind fault-hop, fault,
                                     target, process, available; only its target has it under `via`

`available` is rewritten by `conformance lab status` (and `lab up`) from the processes' pids, so a reader
skips a dead path instead of leaving its clients to time out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.identity import CREDENTIAL_ID
from conformance.lab import fault_paths, network_paths, openunison
from conformance.lab.issuer import LAB_USERS
from conformance.lab.network_paths import NO_PATH, PATHS, TARGET_PORT_NAMES
from conformance.lab.topology import (
    CONTAINER_NAME,
    LAB_SERVICE_ACCOUNT,
    NAMESPACE,
    OIDC_AUDIENCE,
    POD_NAMES,
    POD_PORT,
    Layout,
)

CONFIG_VERSION = 1
AUTHENTICATED = "system:authenticated"
# The process that must be running for each target to answer.
TARGET_PROCESSES: Mapping[str, str] = TARGET_PORT_NAMES
# A service-account token's lifetime: the TokenRequest minimum is 10 minutes.
SERVICE_ACCOUNT_TOKEN_S = 600
# What the real kube-oidc-proxies add to the identity they impersonate (measured, docs/kube-oidc-proxy.md):
# the OIDC authenticator's credential id (the token's jti) on the fork; nothing on v0.3.0.
KUBE_OIDC_PROXY_IDENTITY = {"user": "kube-oidc-proxy", "groups": ["lab:proxies", AUTHENTICATED]}


def lab_users(layout: Layout, service_account_uid: str | None = None) -> dict[str, Any]:
    users: dict[str, Any] = {
        user: {
            "credential": {
                "type": "lab-oidc",
                "user": user,
                "issuer": layout.issuer_url,
                "signing_key": str(layout.pki.oidc_signing_key),
                "audience": OIDC_AUDIENCE,
            },
            "expect": {"user": user, "groups": sorted([*groups, AUTHENTICATED])},
        }
        for user, groups in LAB_USERS.items()
    }
    sa_expect: dict[str, Any] = {
        "user": f"system:serviceaccount:{NAMESPACE}:{LAB_SERVICE_ACCOUNT}",
        "groups": sorted(["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}", AUTHENTICATED]),
        # A bound token's credential id (JTI=...) identifies the token, not the user: any value.
        "extra": {CREDENTIAL_ID: None},
    }
    if service_account_uid:
        sa_expect["uid"] = service_account_uid
    users[LAB_SERVICE_ACCOUNT] = {
        "credential": {
            "type": "lab-serviceaccount",
            "namespace": NAMESPACE,
            "name": LAB_SERVICE_ACCOUNT,
            "kubeconfig": str(layout.component_kubeconfig("admin")),
            "expiration_s": SERVICE_ACCOUNT_TOKEN_S,
        },
        "expect": sa_expect,
    }
    return users


# kube-oidc-proxy's own refusals (http.Error answers, measured: docs/kube-oidc-proxy.md), so the harness can
# attribute them to the proxy rather than the API server.
_UNAUTHORIZED = {"status": 401, "body_contains": "Unauthorized", "means": "unauthorized",
                 "why": "a missing or bad token: 401 Unauthorized in plain text"}
FORK_ANSWERS = [
    _UNAUTHORIZED,
    {"status": 403, "body_contains": "not allowed to impersonate", "means": "forbidden",
     "why": "client impersonation that its SubjectAccessReview refused"},
    {"status": 500, "body_contains": "no Impersonation-User header found", "means": "forbidden",
     "why": "client Impersonate-Group/-Uid/-Extra (or an unknown Impersonate-*) without a user: refused"},
]
JETSTACK_03_ANSWERS = [
    _UNAUTHORIZED,
    {"status": 403, "body_contains": "Impersonation requests are disabled", "means": "forbidden",
     "why": "v0.3.0 refuses every client impersonation header"},
]


def _proxy_audit(layout: Layout, target: str) -> dict[str, str]:
    return {"type": "file", "path": str(layout.proxy_audit_log(TARGET_PROCESSES[target])), "format": "k8s-audit"}


def _targets(layout: Layout, openunison_release: str) -> dict[str, dict[str, Any]]:
    fork_identity = {**KUBE_OIDC_PROXY_IDENTITY, "adds_extra": {CREDENTIAL_ID: None}}
    return {
        "direct": {
            "description": "kube-apiserver itself, authenticating OIDC tokens (structured authn config)",
            "impersonating_proxy": None,
        },
        "jetstack": {
            "description": "kube-oidc-proxy v1.0.11, the TremoloSecurity fork (docs/kube-oidc-proxy.md)",
            # What the API server must record as the authenticated user of a proxied request.
            "impersonating_proxy": fork_identity,
            "proxy_audit": _proxy_audit(layout, "jetstack"),
            "proxy_answers": FORK_ANSWERS,
        },
        "jetstack-0.3": {
            "description": "kube-oidc-proxy v0.3.0, JetStack's last release (docs/kube-oidc-proxy.md)",
            "impersonating_proxy": {**KUBE_OIDC_PROXY_IDENTITY, "adds_extra": {}},
            "proxy_audit": _proxy_audit(layout, "jetstack-0.3"),
            "proxy_answers": JETSTACK_03_ANSWERS,
        },
        "jetstack-passthrough": {
            "description": "kube-oidc-proxy v1.0.11 with --token-passthrough, reached with an OIDC token",
            "impersonating_proxy": fork_identity,
            "proxy_audit": _proxy_audit(layout, "jetstack-passthrough"),
            "proxy_answers": FORK_ANSWERS,
        },
        "jetstack-passthrough-sa": {
            "description": (
                "kube-oidc-proxy v1.0.11 with --token-passthrough, reached with a bound service-account token "
                "that it passes through unchanged"
            ),
            "user": LAB_SERVICE_ACCOUNT,
            # The API server must see the service account itself, not the proxy impersonating it.
            "impersonating_proxy": None,
            "proxy_audit": _proxy_audit(layout, "jetstack-passthrough-sa"),
            "proxy_answers": FORK_ANSWERS,
        },
        "openunison": {
            "description": (
                f"OpenUnison {openunison_release}'s built-in impersonating proxy "
                "(lab stand-in on Envoy, see docs/paths.md)"
            ),
            "standin": True,
            "mirrors": f"OpenUnison {openunison_release}",
            # Its bound ServiceAccount token: the API server records the ServiceAccount and its credential id.
            "impersonating_proxy": openunison.impersonating_proxy(),
            # Client Impersonate-* headers are dropped and the token's own identity is used.
            "client_impersonation": "strip",
            # Its own answers (not the API server's), for attributing a refusal to it.
            "proxy_answers": openunison.proxy_answers(openunison_release),
            # Its access log (OpenUnison's AccessLog lines on stdout): the proxy-side record of the audit chain.
            "proxy_audit": {
                "type": "file",
                "path": str(openunison.workdir(layout) / openunison.ACCESS_LOG),
                "format": "openunison-access-log",
            },
            # The application's authorization rule: users outside these groups get the proxy's own 403.
            "authorization": {"groups": list(openunison.ALLOWED_GROUPS), "users": list(openunison.ALLOWED_USERS)},
            # A plain response silent this long is cut (the upstream client's socket timeout).
            "quiet_stream_cut_s": openunison.UPSTREAM_SOCKET_TIMEOUT_S,
        },
    }


def harness_config(
    layout: Layout,
    *,
    versions: dict[str, str],
    paths: Sequence[str] = (),
    alive: Mapping[str, bool] | None = None,
    alb_idle_timeout_s: int | None = None,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    openunison_release: str = openunison.MIRRORS_RELEASE,
    service_account_uid: str | None = None,
) -> dict[str, Any]:
    """The config for this lab; `alive` maps process names to whether they run (default: all do); `faults`
    are the running fault hops by name ({target, fault, port}), each an extra path for its one target."""

    def running(process: str) -> bool:
        return True if alive is None else alive.get(process, False)

    targets: dict[str, Any] = {}
    for name, about in _targets(layout, openunison_release).items():
        target_up = running(TARGET_PROCESSES[name])
        ep = network_paths.endpoint(layout, name, NO_PATH)
        targets[name] = {
            "description": about.pop("description"),
            "server": ep["server"],
            "ca_file": ep["ca_file"],
            "available": target_up,
            **about,
            "via": {
                path: {**network_paths.endpoint(layout, name, path), "available": target_up and running(path)}
                for path in paths
            },
        }
    path_entries: dict[str, Any] = {
        NO_PATH: {"description": "straight to the target", "kind": "none", "available": True}
    }
    for path in paths:
        spec = PATHS[path]
        idle = alb_idle_timeout_s if path == "alb" and alb_idle_timeout_s is not None else spec.idle_timeout_s
        path_entries[path] = {
            "description": spec.stands_in_for,
            "kind": spec.kind,
            "stands_in_for": spec.stands_in_for,
            "reproduces": spec.reproduces,
            "software": spec.software,
            "version": versions.get(spec.software),
            "template": f"conformance/lab/assets/paths/{spec.template}",
            "idle_timeout_s": idle,
            **({"answers": list(spec.answers)} if spec.answers else {}),
            "process": path,
            "available": running(path),
        }
    for name, hop in (faults or {}).items():
        up = running(fault_paths.path_name(name))
        path_entries[fault_paths.path_name(name)] = fault_paths.path_entry(name, dict(hop), up)
        target = targets[hop["target"]]
        target["via"][fault_paths.path_name(name)] = fault_paths.via_entry(
            layout, dict(hop), up and bool(target["available"])
        )
    return {
        "version": CONFIG_VERSION,
        "source": "local-lab",
        "lab": {"state_dir": str(layout.state), "port_base": layout.port_base, "versions": versions},
        "targets": targets,
        "paths": path_entries,
        "users": lab_users(layout, service_account_uid),
        # Every worked cell must be backed by the API server's audit event of its own request.
        "identity": {"audit": {"type": "file", "path": str(layout.audit_log)}, "require": "audit"},
        "workload": {
            "namespace": NAMESPACE,
            "pods": list(POD_NAMES),
            "container": CONTAINER_NAME,
            "port": POD_PORT,
            "manage": False,
        },
    }
