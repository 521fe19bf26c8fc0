"""Classification and attribution of refusals: native answers, kubectl's words, declared hop answers."""

from __future__ import annotations

import json

import pytest

from conformance.classify import (
    API_SERVER,
    UNKNOWN,
    Answer,
    attribute,
    classify_status,
    classify_text,
    guard_held,
    parse_answers,
)
from conformance.errors import ConfigError
from conformance.model import ErrorClass, Evidence

STATUS_403 = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
                         "message": 'pods "probe-0" is forbidden: User "bob" cannot create resource "pods/exec"'})
STATUS_401 = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 401})
ENVOY = Answer("path:gateway", ErrorClass.UPGRADE_REFUSED, status=403, header="server: envoy")
OU_SPDY = Answer("proxy:openunison", ErrorClass.UPGRADE_REFUSED, status=500,
                 body_contains="An error occurred while processing this request")
OU_401 = Answer("proxy:openunison", ErrorClass.UNAUTHORIZED, status=401,
                header='WWW-Authenticate: Bearer realm="kubernetes"')


def ev(status: int | None, body: str = "", headers: dict[str, str] | None = None, error: str = "") -> Evidence:
    return Evidence(status_line=f"HTTP/1.1 {status} X" if status else None, body_excerpt=body or None,
                    response_headers=headers or {}, error=error or None)


@pytest.mark.parametrize(
    "status, body, expected",
    [
        (400, "Upgrade request required", (ErrorClass.UPGRADE_REQUIRED, API_SERVER)),
        (403, STATUS_403, (ErrorClass.FORBIDDEN, API_SERVER)),
        (401, STATUS_401, (ErrorClass.UNAUTHORIZED, API_SERVER)),
        (401, "Unauthorized", (ErrorClass.UNAUTHORIZED, UNKNOWN)),
        (403, "", (ErrorClass.HOP_REFUSED, UNKNOWN)),  # a 403 nobody we know of wrote
        (404, "default backend - 404", (ErrorClass.HOP_REFUSED, UNKNOWN)),
        (400, "Bad Request", (ErrorClass.HOP_REFUSED, UNKNOWN)),
        (502, "<html>Bad Gateway</html>", (ErrorClass.PROXY_ERROR, UNKNOWN)),
        (503, "", (ErrorClass.PROXY_ERROR, UNKNOWN)),
        (500, "<html>oops</html>", (ErrorClass.SERVER_ERROR, UNKNOWN)),
        (200, "<html>login page</html>", (ErrorClass.PROTOCOL_ERROR, UNKNOWN)),
    ],
)
def test_undeclared_answers(status: int, body: str, expected: tuple[ErrorClass, str]) -> None:
    assert attribute(classify_status(status, body), ev(status, body), ()) == expected


def test_declared_answers_name_their_hop() -> None:
    answers = (ENVOY, OU_SPDY, OU_401)
    assert attribute(ErrorClass.HOP_REFUSED, ev(403, "", {"Server": "envoy"}), answers) == (
        ErrorClass.UPGRADE_REFUSED, "path:gateway")
    assert attribute(ErrorClass.SERVER_ERROR, ev(500, "<html>An error occurred while processing this request"),
                     answers) == (ErrorClass.UPGRADE_REFUSED, "proxy:openunison")
    assert attribute(ErrorClass.UNAUTHORIZED, ev(401, "", {"WWW-Authenticate": 'Bearer realm="kubernetes",scope="a"'}),
                     answers) == (ErrorClass.UNAUTHORIZED, "proxy:openunison")
    # The same 401 without the proxy's header is nobody's we know.
    assert attribute(ErrorClass.UNAUTHORIZED, ev(401, "Unauthorized"), answers) == (ErrorClass.UNAUTHORIZED, UNKNOWN)


def test_the_api_servers_status_wins_over_a_hop_that_forwarded_it() -> None:
    gateway_any_403 = Answer("path:gateway", ErrorClass.UPGRADE_REFUSED, status=403)
    assert attribute(ErrorClass.FORBIDDEN, ev(403, STATUS_403), (gateway_any_403,)) == (
        ErrorClass.FORBIDDEN, API_SERVER)


def test_the_most_specific_declared_answer_wins() -> None:
    gateway_any_500 = Answer("path:gateway", ErrorClass.PROXY_ERROR, status=500)
    body = "An error occurred while processing this request"
    assert attribute(ErrorClass.SERVER_ERROR, ev(500, body), (gateway_any_500, OU_SPDY)) == (
        ErrorClass.UPGRADE_REFUSED, "proxy:openunison")


def test_kubectl_rbac_refusal_is_forbidden_by_the_api_server_not_an_upgrade_refusal() -> None:
    text = ('error: unable to upgrade connection: pods "probe-0" is forbidden: User "bob" cannot create '
            'resource "pods/exec" in API group "" in the namespace "conformance"')
    assert classify_text(text) is ErrorClass.FORBIDDEN
    assert attribute(ErrorClass.FORBIDDEN, ev(403, error=text), ()) == (ErrorClass.FORBIDDEN, API_SERVER)
    assert attribute(ErrorClass.FORBIDDEN, ev(None, error=text), ()) == (ErrorClass.FORBIDDEN, API_SERVER)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("error: unable to upgrade connection: <html><body>Internal Server Error</body></html>",
         ErrorClass.UPGRADE_REFUSED),
        ("Error from server (BadRequest): Upgrade request required", ErrorClass.UPGRADE_REQUIRED),
        ("error: You must be logged in to the server (Unauthorized)", ErrorClass.UNAUTHORIZED),
        ("proxyconnect tcp: dial tcp 127.0.0.1:1: connect: connection refused", ErrorClass.PROXY_ERROR),
        ("x509: certificate signed by unknown authority", ErrorClass.TLS),
        ("read tcp: connection reset by peer", ErrorClass.RESET),
        ("something nobody has seen", ErrorClass.PROTOCOL_ERROR),
    ],
)
def test_kubectl_texts(text: str, expected: ErrorClass) -> None:
    assert classify_text(text) is expected


def test_kubectl_text_matches_a_declared_body_but_not_a_header_it_cannot_see() -> None:
    text = "error: unable to upgrade connection: <html>An error occurred while processing this request</html>"
    assert attribute(ErrorClass.UPGRADE_REFUSED, ev(500, error=text), (OU_SPDY,)) == (
        ErrorClass.UPGRADE_REFUSED, "proxy:openunison")
    assert attribute(ErrorClass.HOP_REFUSED, ev(403, error="Error from server: "), (ENVOY,)) == (
        ErrorClass.HOP_REFUSED, UNKNOWN)


def test_failures_that_are_not_refusals_are_left_alone() -> None:
    for cls in (ErrorClass.RESET, ErrorClass.TIMEOUT, ErrorClass.DATA_MISMATCH, ErrorClass.TRUNCATED):
        assert attribute(cls, ev(101), (ENVOY,)) == (cls, None)
    # Malformed frames after a good upgrade are not a refusal either.
    assert attribute(ErrorClass.PROTOCOL_ERROR, ev(101), ()) == (ErrorClass.PROTOCOL_ERROR, None)


@pytest.mark.parametrize(
    "cls, by, held",
    [
        (ErrorClass.FORBIDDEN, API_SERVER, True),
        (ErrorClass.UNAUTHORIZED, "proxy:jetstack", True),
        (ErrorClass.UNAUTHORIZED, UNKNOWN, False),
        (ErrorClass.FORBIDDEN, "path:gateway", False),
        (ErrorClass.HOP_REFUSED, API_SERVER, False),
        (ErrorClass.UPGRADE_REQUIRED, API_SERVER, False),
        (ErrorClass.PROXY_ERROR, UNKNOWN, False),
        (ErrorClass.NOT_FOUND, API_SERVER, False),
    ],
)
def test_only_an_attributed_authentication_or_authorization_decision_holds_a_guard(
    cls: ErrorClass, by: str, held: bool
) -> None:
    assert guard_held(cls, by) is held


@pytest.mark.parametrize(
    "raw, message",
    [
        ("x", "must be a list"),
        ([{"status": 401}], "with `means`"),
        ([{"status": 401, "means": "sad"}], "is not an error class"),
        ([{"means": "unauthorized"}], "needs a status or body_contains"),
        ([{"status": 401, "means": "unauthorized", "colour": "red"}], "unknown key"),
    ],
)
def test_bad_answers_are_config_errors(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_answers(raw, "proxy:x", "targets.x.proxy_answers")


def test_kubectl_upgrade_required_with_only_its_words_and_the_status_from_its_log() -> None:
    text = "error: error upgrading connection: Upgrade request required"
    assert attribute(ErrorClass.UPGRADE_REQUIRED, ev(400, error=text), ()) == (
        ErrorClass.UPGRADE_REQUIRED, API_SERVER)
