"""The harness config that `lab up` writes: the lab's targets, paths, endpoints, credentials and identities.

The same format describes a user's own cluster (docs/config.md). Credentials are *sources*, never
secrets: a token is minted or read when a probe needs it, so this file can be shared and logged.

Targets and paths (docs/paths.md):

    targets:
      <target>:                      direct | jetstack | openunison
        server, ca_file              straight to the target (path "none")
        available                    its process is running
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

`available` is rewritten by `conformance lab status` (and `lab up`) from the processes' pids, so a reader
skips a dead path instead of leaving its clients to time out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conformance.lab import network_paths, openunison
from conformance.lab.issuer import LAB_USERS
from conformance.lab.network_paths import NO_PATH, PATHS, TARGET_PORT_NAMES
from conformance.lab.topology import CONTAINER_NAME, NAMESPACE, OIDC_AUDIENCE, POD_NAMES, POD_PORT, Layout

CONFIG_VERSION = 1
AUTHENTICATED = "system:authenticated"
# The process that must be running for each target to answer.
TARGET_PROCESSES: Mapping[str, str] = TARGET_PORT_NAMES


def lab_users(layout: Layout) -> dict[str, Any]:
    return {
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


def _targets(standin_proxy: bool) -> dict[str, dict[str, Any]]:
    return {
        "direct": {
            "description": "kube-apiserver itself, authenticating OIDC tokens (structured authn config)",
            "impersonating_proxy": None,
        },
        "jetstack": {
            "description": (
                "kube-oidc-proxy (lab stand-in, see docs/kube-oidc-proxy-standin.md)"
                if standin_proxy
                else "kube-oidc-proxy (TremoloSecurity fork)"
            ),
            "standin": standin_proxy,
            # What the API server must record as the authenticated user of a proxied request.
            "impersonating_proxy": {"user": "kube-oidc-proxy", "groups": ["lab:proxies", AUTHENTICATED]},
        },
        "openunison": {
            "description": "OpenUnison's built-in impersonating proxy (lab stand-in on Envoy, see docs/paths.md)",
            "standin": True,
            "impersonating_proxy": {
                "user": openunison.PROXY_USER,
                "groups": [*openunison.PROXY_GROUPS, AUTHENTICATED],
            },
            # Client Impersonate-* headers are dropped and the token's own identity is used.
            "client_impersonation": "strip",
        },
    }


def harness_config(
    layout: Layout,
    *,
    standin_proxy: bool,
    versions: dict[str, str],
    paths: Sequence[str] = (),
    alive: Mapping[str, bool] | None = None,
    alb_idle_timeout_s: int | None = None,
) -> dict[str, Any]:
    """The config for this lab; `alive` maps process names to whether they run (default: all do)."""

    def running(process: str) -> bool:
        return True if alive is None else alive.get(process, False)

    targets: dict[str, Any] = {}
    for name, about in _targets(standin_proxy).items():
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
            "process": path,
            "available": running(path),
        }
    return {
        "version": CONFIG_VERSION,
        "source": "local-lab",
        "lab": {"state_dir": str(layout.state), "port_base": layout.port_base, "versions": versions},
        "targets": targets,
        "paths": path_entries,
        "users": lab_users(layout),
        "identity": {"audit": {"type": "file", "path": str(layout.audit_log)}},
        "workload": {
            "namespace": NAMESPACE,
            "pods": list(POD_NAMES),
            "container": CONTAINER_NAME,
            "port": POD_PORT,
            "manage": False,
        },
    }
