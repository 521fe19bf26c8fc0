"""The audit chain through an impersonating proxy: joining its audit event with the API server's identity."""

from __future__ import annotations

import json
from pathlib import Path

from conformance.model import Identity
from conformance.proxy_audit import ProxyAuditLogs, build_chain, proxy_identity_from_event


def _event(user: str = "alice", groups: list[str] | None = None, marker: str = "c0ffee") -> dict[str, object]:
    return {
        "kind": "Event",
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/conformance/pods/probe-0/exec?command=echo&command={marker}",
        "userAgent": "kubectl/v1.35.4",
        "user": {
            "username": user,
            "groups": groups if groups is not None else ["devs", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": ["JTI=secret-jti"]},
        },
    }


def _applied(user: str = "alice", groups: list[str] | None = None, source: str = "audit") -> Identity:
    return Identity(
        user=user,
        groups=groups if groups is not None else ["devs", "system:authenticated"],
        authenticated_as="kube-oidc-proxy",
        source=source,
    )


def test_proxy_identity_keeps_the_credential_kind_not_its_value() -> None:
    identity = proxy_identity_from_event(_event())
    assert identity.user == "alice" and identity.source == "proxy-audit"
    assert identity.credential_id == "JTI" and "secret-jti" not in repr(identity)


def test_same_user_and_groups_is_complete() -> None:
    chain = build_chain(_event(), _applied())
    assert chain.broken is None and chain.trail == "complete"
    assert chain.proxy_identity is not None and chain.proxy_identity.user == "alice"


def test_system_authenticated_added_by_the_api_server_keeps_the_chain() -> None:
    assert build_chain(_event(groups=["devs"]), _applied()).trail == "complete"


def test_the_api_server_running_someone_else_breaks_the_chain() -> None:
    chain = build_chain(_event(), _applied(user="mallory"))
    assert chain.trail == "broken: the proxy authenticated 'alice' but the API server ran 'mallory'"


def test_changed_groups_break_the_chain() -> None:
    chain = build_chain(_event(), _applied(groups=["devs", "system:masters", "system:authenticated"]))
    assert chain.broken is not None and "added ['system:masters']" in chain.broken


def test_a_request_the_proxy_never_logged_breaks_the_chain() -> None:
    chain = build_chain(None, _applied())
    assert chain.proxy_identity is None
    assert chain.trail == "broken: the API server ran the request as 'alice' but the proxy never logged it"


def test_a_proxy_event_without_an_api_server_event_breaks_the_chain() -> None:
    assert "logged no such request" in str(build_chain(_event(), None).broken)


def test_an_identity_from_selfsubjectreview_cannot_complete_the_chain() -> None:
    chain = build_chain(_event(), _applied(source="selfsubjectreview"))
    assert chain.broken is not None and "selfsubjectreview" in chain.broken


def test_nothing_found_anywhere_is_unverified_not_broken() -> None:
    # e.g. a client whose requests carry no marker: neither end can be found, nothing is proven
    chain = build_chain(None, _applied(source="selfsubjectreview"))
    assert chain.broken is None and chain.trail.startswith("unverified: neither audit log")


def test_a_request_still_open_at_the_api_server_is_unverified() -> None:
    chain = build_chain(None, _applied(), api_finished=False)
    assert chain.broken is None and chain.trail.startswith("unverified: the request is still open")


def test_logs_found_by_marker_in_the_proxy_file(tmp_path: Path) -> None:
    log = tmp_path / "proxy-audit.log"
    log.write_text(json.dumps(_event(marker="old")) + "\n")
    logs = ProxyAuditLogs({"jetstack": log, "jetstack-sa": log})
    with open(log, "a") as f:
        f.write(json.dumps(_event(user="bob", marker="c1234")) + "\n")
    assert "jetstack" in logs and "direct" not in logs
    event = logs.find("jetstack-sa", ["c1234"], 0.0)
    assert event is not None and event["user"]["username"] == "bob"
    assert logs.find("jetstack", ["old"], 0.0) is None  # written before the run began


def test_a_proxy_event_without_a_user_cannot_complete_the_chain() -> None:
    event = _event()
    event["user"] = {}
    chain = build_chain(event, _applied(user="system:serviceaccount:conformance:sa-alice"))
    assert chain.broken is None
    assert (
        chain.trail == "unverified: the proxy logged the request with no user (a passed-through token is not recorded)"
    )


def test_a_subresource_search_skips_the_clients_other_requests_with_the_marker(tmp_path: Path) -> None:
    log = tmp_path / "proxy-audit.log"
    log.write_text("")
    logs = ProxyAuditLogs({"jetstack": log})
    get_pod = _event(marker="c77")
    get_pod["requestURI"] = "/api/v1/namespaces/conformance/pods/probe-0?timeout=2m1.5s&x=c77"
    with open(log, "a") as f:
        f.write(json.dumps(get_pod) + "\n")
    assert logs.find("jetstack", ["c77"], 0.0, "exec") is None  # kubectl's GET pod is not the exec
    assert logs.find("jetstack", ["c77"], 0.0) is not None
    with open(log, "a") as f:
        f.write(json.dumps(_event(marker="c77")) + "\n")
    event = logs.find("jetstack", ["c77"], 0.0, "exec")
    assert event is not None and "/exec?" in event["requestURI"]


def test_a_missing_proxy_event_is_unverified_where_the_client_may_close_late() -> None:
    from conformance.model import Identity
    from conformance.proxy_audit import build_chain

    applied = Identity(user="alice", groups=["devs", "system:authenticated"], source="audit")
    assert build_chain(None, applied).broken is not None
    late = build_chain(None, applied, late_log_possible=True)
    assert late.broken is None and late.trail.startswith("unverified:")


def test_a_search_from_the_cells_mark_skips_older_events_with_its_marker(tmp_path: Path) -> None:
    log = tmp_path / "proxy-audit.log"
    log.write_text("")
    logs = ProxyAuditLogs({"jetstack": log})
    with open(log, "a") as f:
        f.write(json.dumps(_event(user="earlier", marker="c55")) + "\n")
    mark = logs.mark("jetstack")
    assert logs.find("jetstack", ["c55"], 0.0, since=mark) is None
    with open(log, "a") as f:
        f.write(json.dumps(_event(user="mallory", marker="c55")) + "\n")
    event = logs.find("jetstack", ["c55"], 0.0, since=mark)
    assert event is not None and event["user"]["username"] == "mallory"
