"""The rights table, the SelfSubjectAccessReviews that check it, and the Role + RoleBinding that grants it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes.client.rest import ApiException

from conformance import rights
from conformance.cells import OPERATIONS
from conformance.rights import Right
from tests.test_workload import FakeAuthz


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """What RBAC rules grant, expanded to (group, resource, verb)."""
    return {
        (g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


def test_every_operation_of_the_matrix_has_its_rights_listed() -> None:
    assert set(rights.OPERATION_RIGHTS) == set(OPERATIONS)


def test_streaming_operations_need_get_and_create_on_their_subresource() -> None:
    # SPDY upgrades are POSTs (create), WebSocket upgrades GETs (get): both, or one protocol family fails.
    assert set(rights.OPERATION_RIGHTS["exec"]) == {Right("create", "pods", "exec"), Right("get", "pods", "exec")}
    assert set(rights.OPERATION_RIGHTS["cp-upload"]) == set(rights.OPERATION_RIGHTS["exec"])
    assert set(rights.OPERATION_RIGHTS["port-forward-ports"]) == {
        Right("create", "pods", "portforward"), Right("get", "pods", "portforward")}
    assert rights.OPERATION_RIGHTS["logs-follow"] == (Right("get", "pods", "log"),)
    assert rights.OPERATION_RIGHTS["tls"] == ()


def test_needed_is_sorted_and_each_right_once() -> None:
    needed = rights.needed(["exec", "cp-upload", "exec-stdin", "logs-follow"])
    assert needed == sorted(set(needed))
    assert [str(r) for r in needed] == ["create pods/exec", "get pods/exec", "get pods/log"]


@pytest.mark.parametrize("create_pod", [True, False])
def test_the_manifest_parses_and_grants_exactly_the_rights_needed(create_pod: bool) -> None:
    ops = ["exec", "port-forward", "watch"]
    needed = rights.rights_for_run(ops, create_pod=create_pod)
    text = rights.manifest("team-a", needed, users=["dave"], groups=["contractors"])
    assert "&id" not in text and "*id" not in text  # no YAML anchors: kubectl users read it
    role, binding = yaml.safe_load_all(text)
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "team-a"
    assert granted(role["rules"]) == {(r.group, r.resource_path, r.verb) for r in needed}
    assert ("", "pods", "create") in granted(role["rules"]) if create_pod else ("", "pods", "create") not in granted(
        role["rules"])
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "team-a"
    assert binding["roleRef"] == {"apiGroup": rights.RBAC_GROUP, "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [
        {"apiGroup": rights.RBAC_GROUP, "kind": "User", "name": "dave"},
        {"apiGroup": rights.RBAC_GROUP, "kind": "Group", "name": "contractors"},
    ]


def test_nothing_cluster_scoped_is_granted() -> None:
    every = rights.rights_for_run(list(OPERATIONS), create_pod=True)
    assert not {r for r in every if r.resource in ("namespaces", "nodes", "clusterroles")}


def test_a_manifest_without_subjects_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one user or group"):
        rights.manifest("ns", rights.needed(["exec"]))


def test_check_asks_one_namespaced_review_per_right_and_reports_denials() -> None:
    authz = FakeAuthz(denied={("create", "pods/exec")})
    decisions = rights.check(authz, "team-a", rights.needed(["exec"]))
    assert [(str(d.right), d.allowed) for d in decisions] == [("create pods/exec", False), ("get pods/exec", True)]
    assert all(a["namespace"] == "team-a" for a in authz.asked)
    assert rights.missing(decisions) == [Right("create", "pods", "exec")]
    assert "NO" in decisions[0].line and "no RBAC rule" in decisions[0].line


def test_a_review_that_fails_is_unknown_not_an_exception() -> None:
    class Refusing:
        def create_self_subject_access_review(self, body: Any, **_: Any) -> Any:
            raise OSError("connection reset")

    (decision,) = rights.check(Refusing(), "ns", [Right("get", "pods", "log")])
    assert decision.allowed is None and "OSError" in decision.reason
    assert rights.missing([decision]) == []


def test_an_api_refusal_of_the_review_names_its_status() -> None:
    class Forbidding:
        def create_self_subject_access_review(self, body: Any, **_: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    (decision,) = rights.check(Forbidding(), "ns", [Right("get", "pods")])
    assert decision.allowed is None and "HTTP 403 Forbidden" in decision.reason


def test_the_manifest_command_names_user_namespace_and_a_partial_selection() -> None:
    assert rights.manifest_command("dave", "conformance", create_pod=True) == (
        "conformance rights --manifest --user dave --namespace conformance")
    assert rights.manifest_command("dave", "ns", create_pod=False, operations=["exec"]).endswith(
        "--existing-pod --op exec")
    assert "--op" not in rights.manifest_command("d", "n", create_pod=True, operations=list(OPERATIONS))


def test_the_rights_command_prints_an_appliable_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    assert main(["rights", "--manifest", "--user", "dave", "--namespace", "ns", "--existing-pod", "--op", "exec"]) == 0
    role, binding = yaml.safe_load_all(capsys.readouterr().out)
    assert granted(role["rules"]) == {("", "pods", "get"), ("", "pods/exec", "create"), ("", "pods/exec", "get")}
    assert binding["subjects"][0]["name"] == "dave"
    assert main(["rights", "--manifest", "--namespace", "ns"]) == 2  # no subject: a usage error
    assert main(["rights"]) == 0 and "port-forward-idle" in capsys.readouterr().out
