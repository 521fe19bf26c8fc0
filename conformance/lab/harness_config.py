"""The harness config that `lab up` writes: the lab's targets, their endpoints, credentials and identities.

The same format describes a user's own cluster (docs/config.md). Credentials are *sources*, never
secrets: a token is minted or read when a probe needs it, so this file can be shared and logged.
"""

from __future__ import annotations

from typing import Any

from conformance.lab.issuer import LAB_USERS
from conformance.lab.topology import CONTAINER_NAME, NAMESPACE, OIDC_AUDIENCE, POD_NAMES, POD_PORT, Layout

CONFIG_VERSION = 1
AUTHENTICATED = "system:authenticated"


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


def harness_config(layout: Layout, *, standin_proxy: bool, versions: dict[str, str]) -> dict[str, Any]:
    ca = str(layout.pki.ca.cert)
    return {
        "version": CONFIG_VERSION,
        "source": "local-lab",
        "lab": {"state_dir": str(layout.state), "port_base": layout.port_base, "versions": versions},
        "targets": {
            "direct": {
                "description": "kube-apiserver itself, authenticating OIDC tokens (structured authn config)",
                "server": layout.url("kube-apiserver"),
                "ca_file": ca,
                "impersonating_proxy": None,
            },
            "jetstack": {
                "description": (
                    "kube-oidc-proxy (lab stand-in, see docs/kube-oidc-proxy-standin.md)"
                    if standin_proxy
                    else "kube-oidc-proxy (TremoloSecurity fork)"
                ),
                "server": layout.url("kube-oidc-proxy"),
                "ca_file": ca,
                "standin": standin_proxy,
                # What the API server must record as the authenticated user of a proxied request.
                "impersonating_proxy": {"user": "kube-oidc-proxy", "groups": ["lab:proxies", AUTHENTICATED]},
            },
        },
        "paths": {"none": {"description": "straight to the target", "kind": "none"}},
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
