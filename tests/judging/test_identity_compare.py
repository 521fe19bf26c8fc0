"""Identity comparison, field by field, each with the declared case (N) and one thing more or less (N+1)."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.errors import ConfigError
from conformance.identity import (
    CREDENTIAL_ID,
    ExpectedIdentity,
    ProxyIdentity,
    identity_from_audit_event,
    identity_problems,
)
from conformance.model import Identity

ALICE = ExpectedIdentity.from_config({"user": "alice", "groups": ["devs"]}, "t")
PROXY = ProxyIdentity.from_config(
    {"user": "kube-oidc-proxy", "groups": ["lab:proxies"], "adds_extra": {CREDENTIAL_ID: None}}, "t"
)


def seen(**kw: Any) -> Identity:
    base: dict[str, Any] = {"user": "alice", "groups": ["devs", "system:authenticated"], "source": "audit"}
    base.update(kw)
    return Identity(**base)


def proxied(**kw: Any) -> Identity:
    base: dict[str, Any] = {"authenticated_as": "kube-oidc-proxy",
                            "authenticated_groups": ["lab:proxies", "system:authenticated"]}
    base.update(kw)
    return seen(**base)


def test_exactly_the_declared_identity_has_no_problem() -> None:
    assert identity_problems(seen(), ALICE, None) == []


def test_another_user_is_a_mismatch() -> None:
    assert identity_problems(seen(user="bob"), ALICE, None) == ["user 'bob' != expected 'alice'"]


def test_an_added_group_is_a_mismatch() -> None:
    problems = identity_problems(seen(groups=["devs", "system:authenticated", "system:masters"]), ALICE, None)
    assert problems == ["undeclared groups ['system:masters']"]


def test_an_added_group_listed_in_allow_extra_groups_is_fine() -> None:
    relaxed = ExpectedIdentity.from_config(
        {"user": "alice", "groups": ["devs"], "allow_extra_groups": ["oidc:extra"]}, "t"
    )
    assert identity_problems(seen(groups=["devs", "system:authenticated", "oidc:extra"]), relaxed, None) == []


def test_a_missing_group_is_a_mismatch_and_system_authenticated_is_always_expected() -> None:
    assert identity_problems(seen(groups=["system:authenticated"]), ALICE, None) == ["groups lack ['devs']"]
    assert identity_problems(seen(groups=["devs"]), ALICE, None) == ["groups lack ['system:authenticated']"]


def test_uid_must_be_absent_unless_declared() -> None:
    assert identity_problems(seen(uid="1234"), ALICE, None) == ["uid '1234' where none is declared"]
    with_uid = ExpectedIdentity.from_config({"user": "alice", "groups": ["devs"], "uid": "1234"}, "t")
    assert identity_problems(seen(uid="1234"), with_uid, None) == []
    assert identity_problems(seen(uid="9"), with_uid, None) == ["uid '9' != expected '1234'"]
    assert identity_problems(seen(), with_uid, None) == ["uid None != expected '1234'"]


def test_an_undeclared_extra_is_a_mismatch() -> None:
    assert identity_problems(seen(extra={"scopes": ["admin"]}), ALICE, None) == ["undeclared extra 'scopes'"]


def test_declared_extra_values_are_compared_and_null_means_any_value() -> None:
    exact = ExpectedIdentity.from_config({"user": "alice", "groups": ["devs"], "extra": {"team": ["a"]}}, "t")
    assert identity_problems(seen(extra={"team": ["a"]}), exact, None) == []
    assert identity_problems(seen(extra={"team": ["a", "b"]}), exact, None) == [
        "extra 'team' = ['a', 'b'] != expected ['a']"
    ]
    assert identity_problems(seen(), exact, None) == ["extra 'team' missing"]
    anything = ExpectedIdentity.from_config({"user": "alice", "groups": ["devs"], "extra": {"team": None}}, "t")
    assert identity_problems(seen(extra={"team": ["z"]}), anything, None) == []
    assert identity_problems(seen(), anything, None) == []


def test_through_a_proxy_the_api_server_must_authenticate_the_proxy_and_impersonate() -> None:
    assert identity_problems(proxied(extra={CREDENTIAL_ID: ["JTI"]}), ALICE, PROXY) == []
    assert identity_problems(seen(), ALICE, PROXY) == [
        "not impersonated: the API server authenticated 'alice' itself, not the proxy 'kube-oidc-proxy'"
    ]
    assert identity_problems(proxied(authenticated_as="mallory"), ALICE, PROXY) == [
        "authenticated as 'mallory', expected the proxy 'kube-oidc-proxy'"
    ]
    assert identity_problems(
        proxied(authenticated_groups=["lab:proxies", "system:authenticated", "system:masters"]), ALICE, PROXY
    ) == ["the proxy's groups ['lab:proxies', 'system:authenticated', 'system:masters'] != "
          "['lab:proxies', 'system:authenticated']"]


def test_the_proxy_added_extra_is_only_allowed_through_that_proxy() -> None:
    assert identity_problems(seen(extra={CREDENTIAL_ID: ["JTI"]}), ALICE, None) == [
        f"undeclared extra {CREDENTIAL_ID!r}"
    ]


def test_without_a_proxy_an_impersonated_request_is_a_mismatch() -> None:
    assert identity_problems(proxied(), ALICE, None) == [
        "impersonated by 'kube-oidc-proxy'; expected the user's own credential"
    ]


def test_a_selfsubjectreview_cannot_show_the_proxy_so_that_part_is_not_judged() -> None:
    assert identity_problems(seen(source="selfsubjectreview"), ALICE, PROXY) == []
    assert identity_problems(seen(source="selfsubjectreview", user="bob"), ALICE, PROXY) != []


def test_audit_event_keeps_only_the_kind_of_a_forwarded_credential_id() -> None:
    event = {
        "user": {"username": "kube-oidc-proxy", "groups": ["lab:proxies"]},
        "impersonatedUser": {"username": "alice", "groups": ["devs"], "extra": {CREDENTIAL_ID: ["JTI=abc123"]}},
    }
    identity = identity_from_audit_event(event)
    assert identity.extra == {CREDENTIAL_ID: ["JTI"]}
    assert identity.authenticated_as == "kube-oidc-proxy"
    direct = identity_from_audit_event({"user": {"username": "alice", "extra": {CREDENTIAL_ID: ["JTI=x"]}}})
    assert direct.extra == {} and direct.credential_id == "JTI" and direct.authenticated_as is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"groups": ["devs"]}, "user must be"),
        ({"user": "alice", "groups": "devs"}, "groups must be a list"),
        ({"user": "alice", "colour": 1}, "unknown key"),
        ({"user": "alice", "extra": ["x"]}, "extra must map"),
    ],
)
def test_bad_expectations_are_config_errors_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ExpectedIdentity.from_config(data, "users.alice.expect")


def test_an_identity_learned_at_the_start_is_compared_exactly() -> None:
    learned = ExpectedIdentity.from_identity(seen())
    assert learned.source.startswith("selfsubjectreview")
    assert identity_problems(seen(), learned, None) == []
    assert identity_problems(seen(groups=["devs", "system:authenticated", "x"]), learned, None) == [
        "undeclared groups ['x']"
    ]


def test_the_proxys_credential_kind_is_compared_where_declared() -> None:
    token_proxy = ProxyIdentity.from_config({"user": "kube-oidc-proxy", "credential": "JTI"}, "t")
    assert identity_problems(proxied(credential_id="JTI"), ALICE, token_proxy) == []
    assert identity_problems(proxied(credential_id="X509SHA256"), ALICE, token_proxy) == [
        "the proxy authenticated with a X509SHA256 credential, expected JTI"
    ]
