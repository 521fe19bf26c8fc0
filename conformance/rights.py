"""The RBAC rights each operation needs, checked with SelfSubjectAccessReview, and the Role that grants them.

Everything is namespaced: a user of somebody's cluster usually holds rights in one namespace and nothing
cluster-wide, so the harness never needs a cluster-scoped read (not even GET of its namespace). A
SelfSubjectAccessReview is a create the API server lets every authenticated user make (system:basic-user),
so checking rights needs no right of its own.

The table is pure (tests/test_rights.py); `check` takes an AuthorizationV1Api (a fake one in tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

REQUEST_TIMEOUT_S = 5  # each review is a small POST: a cluster that takes longer will not run cells either
RBAC_GROUP = "rbac.authorization.k8s.io"
ROLE_NAME = "k8s-streaming-conformance-user"
CLUSTER_SCOPED = frozenset({"namespaces"})  # asked only when a config has the harness create its namespace


@dataclass(frozen=True, order=True)
class Right:
    """One verb on one resource (and subresource) of one API group, in the workload's namespace."""

    verb: str
    resource: str
    subresource: str = ""
    group: str = ""

    @property
    def resource_path(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource

    def __str__(self) -> str:
        group = f".{self.group}" if self.group else ""
        return f"{self.verb} {self.resource_path}{group}"


def _streaming(subresource: str) -> tuple[Right, ...]:
    # SPDY upgrades are POSTs (RBAC verb create); WebSocket upgrades are GETs (verb get, and since 1.35 the API
    # server also checks create for them), so a user needs both for every protocol to be allowed.
    return (Right("create", "pods", subresource), Right("get", "pods", subresource))


EXEC = _streaming("exec")
# What each operation of the matrix (conformance.cells.OPERATIONS) needs. whoami's SelfSubjectReview and tls
# need nothing: every authenticated user may review itself, and TLS is below authorization.
OPERATION_RIGHTS: Mapping[str, tuple[Right, ...]] = {
    "exec": EXEC,
    "exec-stdin": EXEC,
    "exec-idle": EXEC,
    "cp-upload": EXEC,  # cp is tar over exec
    "cp-download": EXEC,
    "attach": _streaming("attach"),
    "port-forward": _streaming("portforward"),
    "port-forward-concurrent": _streaming("portforward"),
    "port-forward-ports": _streaming("portforward"),
    "port-forward-idle": _streaming("portforward"),
    "logs-follow": (Right("get", "pods", "log"),),
    "watch": (Right("list", "pods"), Right("watch", "pods")),
    "watch-quiet": (Right("list", "pods"), Right("watch", "pods")),
    "whoami": (),
    "tls": (),
}
# The workload: an existing pod is read (is it Running?) and its tools checked over exec; a probe pod the
# harness makes is created, read while it starts, and deleted afterwards.
EXISTING_POD_RIGHTS = (Right("get", "pods"), *EXEC)
CREATE_POD_RIGHTS = (Right("create", "pods"), Right("get", "pods"), Right("delete", "pods"))


def needed(operations: Iterable[str]) -> list[Right]:
    """The rights the operations need together, sorted, each once. Unknown operations need none here (the
    security suite's checks are about refusals, not rights)."""
    return sorted({r for op in operations for r in OPERATION_RIGHTS.get(op, ())})


def operations_needing(right: Right, operations: Iterable[str]) -> list[str]:
    return [op for op in operations if right in OPERATION_RIGHTS.get(op, ())]


@dataclass(frozen=True)
class Decision:
    right: Right
    allowed: bool | None  # None: the review itself failed (the reason says why)
    reason: str = ""

    @property
    def line(self) -> str:
        state = {True: "yes", False: "NO", None: "unknown"}[self.allowed]
        return f"{self.right!s:<28} {state}" + (f" ({self.reason})" if self.reason else "")


def review_body(right: Right, namespace: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"verb": right.verb, "resource": right.resource}
    if right.resource not in CLUSTER_SCOPED:  # a namespace attribute on a cluster-scoped kind would ask the wrong thing
        attrs["namespace"] = namespace
    if right.subresource:
        attrs["subresource"] = right.subresource
    if right.group:
        attrs["group"] = right.group
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": attrs},
    }


def check(authz: Any, namespace: str, rights: Iterable[Right]) -> list[Decision]:
    """Ask the API server, one SelfSubjectAccessReview per right, whether the caller holds it in `namespace`.

    `authz` is a kubernetes AuthorizationV1Api. A review that fails (a proxy that refuses the POST, a timeout)
    is an `unknown` decision with its reason, never an exception: the preflight shows it and goes on.
    """
    decisions = []
    for right in rights:
        try:
            answer = authz.create_self_subject_access_review(
                review_body(right, namespace), _request_timeout=REQUEST_TIMEOUT_S
            )
        except Exception as exc:  # ApiException, urllib3 errors, timeouts: the review could not be made
            status = getattr(exc, "status", None)
            why = f"HTTP {status} {getattr(exc, 'reason', '')}".strip() if status else type(exc).__name__
            decisions.append(Decision(right, None, f"the review failed: {why}"))
            continue
        status = answer.status
        decisions.append(Decision(right, bool(status.allowed), "" if status.allowed else (status.reason or "")))
    return decisions


def missing(decisions: Iterable[Decision]) -> list[Right]:
    return [d.right for d in decisions if d.allowed is False]


def role_rules(rights: Iterable[Right]) -> list[dict[str, Any]]:
    """RBAC rules granting exactly `rights`: one rule per API group and resource, its verbs sorted."""
    by_resource: dict[tuple[str, str], set[str]] = {}
    for r in rights:
        by_resource.setdefault((r.group, r.resource_path), set()).add(r.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
        for (group, resource), verbs in sorted(by_resource.items())
    ]


def manifest(
    namespace: str,
    rights: Iterable[Right],
    *,
    users: Iterable[str] = (),
    groups: Iterable[str] = (),
    name: str = ROLE_NAME,
) -> str:
    """A Role and RoleBinding (YAML, two documents) an administrator applies to give the subjects `rights` in
    `namespace`: `conformance rights --manifest ... | kubectl apply -f -`."""
    subjects = [{"apiGroup": RBAC_GROUP, "kind": "User", "name": u} for u in users]
    subjects += [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups]
    if not subjects:
        raise ValueError("a RoleBinding needs at least one user or group")
    def meta() -> dict[str, Any]:  # a fresh copy each: YAML writes a shared mapping as an anchor and alias
        labels = {"app.kubernetes.io/part-of": "k8s-streaming-conformance"}
        return {"name": name, "namespace": namespace, "labels": labels}

    role = {"apiVersion": f"{RBAC_GROUP}/v1", "kind": "Role", "metadata": meta(), "rules": role_rules(rights)}
    binding = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "RoleBinding",
        "metadata": meta(),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": name},
        "subjects": subjects,
    }
    return yaml.safe_dump_all([role, binding], sort_keys=False)


def rights_for_run(operations: Iterable[str], *, create_pod: bool) -> list[Right]:
    """Everything a run of `operations` needs: the operations' rights and the workload's."""
    workload = CREATE_POD_RIGHTS if create_pod else EXISTING_POD_RIGHTS
    return sorted({*needed(operations), *workload})


def manifest_command(
    user: str, namespace: str, *, create_pod: bool, operations: Iterable[str] | None = None
) -> str:
    """The command that prints the manifest for this user (what an administrator is told to run)."""
    pod = "" if create_pod else " --existing-pod"
    ops = list(operations) if operations is not None else None
    only = f" --op {','.join(ops)}" if ops is not None and set(ops) != set(OPERATION_RIGHTS) else ""
    return f"conformance rights --manifest --user {user} --namespace {namespace}{pod}{only}"


def table(operations: Iterable[str]) -> list[str]:
    """The static table: each operation and the rights it needs."""
    ops = list(operations)
    width = max((len(op) for op in ops), default=10)
    lines = [f"{'OPERATION':<{width}}  RIGHTS (namespaced)"]
    for op in ops:
        lines.append(f"{op:<{width}}  {', '.join(str(r) for r in OPERATION_RIGHTS.get(op, ())) or '-'}")
    lines.append(f"{'(probe pod)':<{width}}  {', '.join(str(r) for r in CREATE_POD_RIGHTS)}")
    lines.append(f"{'(existing pod)':<{width}}  {', '.join(str(r) for r in EXISTING_POD_RIGHTS)}")
    return lines
