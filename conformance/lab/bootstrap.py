"""The lab cluster's objects: namespace, RBAC for lab users and proxies, the kwok node and lab pods.

Applied with the `kubernetes` client as the lab admin. Lab users' rights:
  alice (group devs)  exec, attach, port-forward, cp and logs in `conformance`
  bob                 get/list pods in `conformance`, nothing else
  mallory             nothing
  carol (outsiders)   alice's rights, by name: only the openunison stand-in's group rule stops her
  dave (contractors)  alice's rights, by name (the `streaming` Role): a namespace-scoped user who may not create
                      pods nor read namespaces, so the harness must use an existing pod (`--pod probe-0`)
  dana (devs)         alice's rights, plus creating and deleting pods in `conformance` and reading namespaces:
                      a user who brings her own probe pod (`pytest suites/ --kubeconfig=K`, tests/lab own-cluster);
                      OIDC tokens, an exec plugin, or a client certificate (CN=dana, O=devs) signed by the lab CA
  sa-alice            a service account with alice's rights (the `streaming` Role), whose bound tokens the
                      jetstack-passthrough target passes through unchanged
Lab pods: probe-0 and probe-1 (the cells'), and probe-mute, whose port-forward reaches nothing (an existing pod
without an echo listener). Proxies (kube-oidc-proxy's users, openunison's ServiceAccount) may impersonate and
run Token/SubjectAccessReviews, nothing more. The openunison stand-in's namespace holds its ServiceAccount and
the pod its token is bound to.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.utils import FailToCreateError, create_from_dict

from conformance.errors import LabError
from conformance.lab import openunison
from conformance.lab.topology import (
    CONTAINER_NAME,
    LAB_SERVICE_ACCOUNT,
    MUTE_POD,
    NAMESPACE,
    NODE_NAME,
    POD_NAMES,
    POD_PORT,
)

PROXY_USERS = ("kube-oidc-proxy",)
# Extras an impersonating proxy forwards: the API server's JWT authenticator adds credential-id for a token
# with a jti; kube-oidc-proxy adds remote-client-ip and, for client --as, the originaluser.* keys.
PROXY_EXTRAS = (
    "authentication.kubernetes.io/credential-id",
    "remote-client-ip",
    "scopes",
    "originaluser.jetstack.io-user",
    "originaluser.jetstack.io-groups",
    "originaluser.jetstack.io-uid",
    "originaluser.jetstack.io-extra",
)
POD_READY_DEADLINE_S = 60.0


def _objects() -> list[dict[str, Any]]:
    rbac = "rbac.authorization.k8s.io/v1"
    streaming = ["pods/exec", "pods/attach", "pods/portforward"]
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        # Created here rather than waiting for the controller-manager, which starts after the pods exist.
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": NAMESPACE}},
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": "streaming", "namespace": NAMESPACE},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
                # get for SPDY (a POST checks create; a WebSocket GET checks get, and since 1.35 create too).
                {"apiGroups": [""], "resources": streaming, "verbs": ["get", "create"]},
                {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": "devs-streaming", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "streaming"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave"},
            ],
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": LAB_SERVICE_ACCOUNT, "namespace": NAMESPACE},
            "automountServiceAccountToken": False,
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": f"{LAB_SERVICE_ACCOUNT}-streaming", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "streaming"},
            "subjects": [{"kind": "ServiceAccount", "name": LAB_SERVICE_ACCOUNT, "namespace": NAMESPACE}],
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": NAMESPACE},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": "bob-pod-reader", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
        },
        {
            "apiVersion": rbac,
            "kind": "Role",
            "metadata": {"name": "probe-pods", "namespace": NAMESPACE},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": {"name": "dana-probe-pods", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "probe-pods"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dana"}],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": "lab:namespace-reader"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "lab:dana-namespace-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "lab:namespace-reader"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dana"}],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": "lab:impersonating-proxy"},
            "rules": [
                {"apiGroups": [""], "resources": ["users", "groups", "serviceaccounts"], "verbs": ["impersonate"]},
                # RBAC has no "userextras/*" wildcard: each extra key the proxies forward is listed.
                {
                    "apiGroups": ["authentication.k8s.io"],
                    "resources": [f"userextras/{key}" for key in PROXY_EXTRAS],
                    "verbs": ["impersonate"],
                },
                {"apiGroups": ["authentication.k8s.io"], "resources": ["uids"], "verbs": ["impersonate"]},
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ],
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "lab:impersonating-proxy"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "lab:impersonating-proxy",
            },
            "subjects": [
                *({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in PROXY_USERS),
                {"kind": "ServiceAccount", "name": openunison.SERVICE_ACCOUNT, "namespace": openunison.SA_NAMESPACE},
            ],
        },
        # The controller-manager runs under its own identity (no per-controller service accounts), which the
        # bootstrap policy does not let finish a namespace's deletion: give it the namespace controller's role,
        # or a deleted namespace (the harness's managed workload) stays Terminating.
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "lab:kube-controller-manager:namespace-controller"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "system:controller:namespace-controller",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:kube-controller-manager"}
            ],
        },
        # kwok plays every kubelet of the fake node and manages pods cluster-wide, as kwokctl sets it up.
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "lab:kwok"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"system:node:{NODE_NAME}"}],
        },
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"kubernetes.io/hostname": NODE_NAME, "type": "kwok"},
            },
            # No taint: it is the lab's only node, so a user's own probe pod (the --kubeconfig simple case, which
            # knows nothing of kwok) is scheduled on it as on any cluster.
            "spec": {},
        },
    ]
    objects += _openunison_objects()
    for name in (*POD_NAMES, MUTE_POD):
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": NAMESPACE,
                    "labels": {"app": "conformance-probe" if name != MUTE_POD else "conformance-probe-mute"},
                },
                "spec": {
                    "nodeName": NODE_NAME,
                    "automountServiceAccountToken": False,
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [
                        {
                            "name": CONTAINER_NAME,
                            "image": "conformance.local/lab-probe:kwok",
                            "ports": [{"containerPort": POD_PORT}],
                        }
                    ],
                },
            }
        )
    return objects


def _openunison_objects() -> list[dict[str, Any]]:
    """The chart's namespace and ServiceAccount, and a pod on the kwok node for its token to be bound to."""
    ns = openunison.SA_NAMESPACE
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": openunison.SERVICE_ACCOUNT, "namespace": ns},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": openunison.POD_NAME, "namespace": ns, "labels": {"app": "openunison-standin"}},
            "spec": {
                "nodeName": NODE_NAME,
                "serviceAccountName": openunison.SERVICE_ACCOUNT,
                "automountServiceAccountToken": False,
                "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                "containers": [{"name": "openunison", "image": "conformance.local/openunison-standin:kwok"}],
            },
        },
    ]


def admin_api(kubeconfig: Path) -> Any:
    """A `kubernetes.client.ApiClient` authenticated as the lab admin."""
    return config.new_client_from_config(config_file=str(kubeconfig))


def apply_lab_objects(kubeconfig: Path) -> None:
    api = admin_api(kubeconfig)
    try:
        for obj in _objects():
            try:
                create_from_dict(api, obj)
            except FailToCreateError as exc:
                if not all(isinstance(e, ApiException) and e.status == 409 for e in exc.api_exceptions):
                    raise LabError(f"cannot create {obj['kind']} {obj['metadata']['name']}: {exc}") from exc
    finally:
        api.close()


def wait_pods_running(kubeconfig: Path, deadline_s: float = POD_READY_DEADLINE_S) -> None:
    api = admin_api(kubeconfig)
    core = client.CoreV1Api(api)
    end = time.monotonic() + deadline_s
    phases: dict[str, str] = {}
    try:
        while time.monotonic() < end:
            pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=conformance-probe")
            phases = {p.metadata.name: (p.status.phase or "?") for p in pods.items}
            if len(phases) == len(POD_NAMES) and all(v == "Running" for v in phases.values()):
                return
            time.sleep(0.3)
    finally:
        api.close()
    raise LabError(f"lab pods not Running after {deadline_s:.0f}s: {phases}")


def service_account_uid(kubeconfig: Path, namespace: str = NAMESPACE, name: str = LAB_SERVICE_ACCOUNT) -> str:
    """The service account's UID: the API server puts it in the user info of the account's tokens."""
    api = admin_api(kubeconfig)
    try:
        return str(client.CoreV1Api(api).read_namespaced_service_account(name, namespace).metadata.uid)
    except ApiException as exc:
        raise LabError(f"cannot read service account {namespace}/{name}: {exc.status} {exc.reason}") from exc
    finally:
        api.close()


# Minted tokens by (kubeconfig, namespace, name, expiration): (token, monotonic time it was minted). A cell
# needs a token each time it runs; a TokenRequest per cell would cost an API round trip on the harness's
# event loop each time, so a token is reused for the first half of its life.
_SA_TOKENS: dict[tuple[str, str, str, int], tuple[str, float]] = {}


def service_account_token(kubeconfig: Path, namespace: str, name: str, expiration_s: int) -> str:
    """A bound, short-lived token for the service account (TokenRequest API, as the admin); reused for the
    first half of its lifetime."""
    key = (str(kubeconfig), namespace, name, expiration_s)
    cached = _SA_TOKENS.get(key)
    if cached is not None and time.monotonic() - cached[1] < expiration_s / 2:
        return cached[0]
    token = _request_service_account_token(kubeconfig, namespace, name, expiration_s)
    _SA_TOKENS[key] = (token, time.monotonic())
    return token


def _request_service_account_token(kubeconfig: Path, namespace: str, name: str, expiration_s: int) -> str:
    api = admin_api(kubeconfig)
    body = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_s)
    )
    try:
        answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, body)
    except ApiException as exc:
        raise LabError(f"TokenRequest for {namespace}/{name} refused: {exc.status} {exc.reason}") from exc
    finally:
        api.close()
    return str(answer.status.token)
