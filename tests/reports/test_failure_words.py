"""The first failure in a few words, from real evidence of the lab's full matrix (messages copied verbatim)."""

from __future__ import annotations

import pytest

from conformance.model import ErrorClass, Outcome
from reports.failure_words import WORDS_MAX, failure_words
from tests.reports.builders import CellFactory

OPENUNISON_500 = (
    "upgrade-refused during upgrade: HTTP/1.1 500 Internal Server Error: <!DOCTYPE html><html><head><title>"
    "OpenUnison - Error</title></head><body><h1>Error</h1><p>An error occurred while processing the request"
)

REAL = [
    # (error class, status line, refused by, error text, survived_s) -> words
    ((ErrorClass.UPGRADE_REQUIRED, "HTTP/1.1 400 Bad Request", "api-server",
      "upgrade-required during upgrade: HTTP/1.1 400 Bad Request: Upgrade request required", None),
     "400 Upgrade request required"),
    ((ErrorClass.UPGRADE_REQUIRED, "HTTP/1.1 400 Bad Request", "api-server",
      "Error from server (BadRequest): Upgrade request required", None), "400 Upgrade request required"),
    ((ErrorClass.UPGRADE_REQUIRED, "HTTP/1.1 400 Bad Request", "api-server",
      "error: error upgrading connection: Upgrade request required", None), "400 Upgrade request required"),
    ((ErrorClass.UPGRADE_REFUSED, "HTTP/1.1 403 Forbidden", "path:gateway",
      "upgrade-refused during upgrade: HTTP/1.1 403 Forbidden", None), "403 from gateway"),
    ((ErrorClass.UPGRADE_REFUSED, "HTTP/1.1 403 Forbidden", "path:gateway", "Error from server: ", None),
     "403 from gateway"),
    ((ErrorClass.UPGRADE_REFUSED, "HTTP/1.1 500 Internal Server Error", "proxy:openunison", OPENUNISON_500, None),
     "500 from openunison"),
    ((ErrorClass.UPGRADE_REFUSED, "HTTP/1.1 500 Internal Server Error", "proxy:openunison",
      "error: unable to upgrade connection: <!DOCTYPE html><html><head><title>OpenUnison - Error</title>", None),
     "500 from openunison"),
    ((ErrorClass.HOP_REFUSED, "HTTP/1.1 400 Bad Request", "api-server",
      "impersonate-extra: guard untested: HTTP/1.1 400 Bad Request (hop-refused, refused by api-server)", None),
     "400 bad request"),
    ((ErrorClass.IDLE_CUT, "HTTP/1.1 101 Switching Protocols", None,
      "the connection failed (reset during stream: WebSocket closed abnormally: no close frame) after 60.4 s of "
      "silence, at the path's declared idle timeout of 60 s", 60.4), "cut at its 60 s idle timeout"),
    ((ErrorClass.IDLE_CUT, "HTTP/1.1 101 Switching Protocols", None,
      "the exec session ended (missing-exit-status during stream: error stream ended without a Status (v4/v5 "
      "servers always send one)) after 61.5 s of silence, at the path's declared idle timeout of 60 s", 61.5),
     "cut at its 60 s idle timeout"),
    ((ErrorClass.IDLE_CUT, "HTTP/1.1 200 OK", None,
      "the quiet watch failed: RemoteProtocolError: peer closed connection without sending complete message "
      "body (incomplete chunked read) after 11.0s of silence", None), "cut after 11 s idle"),
    ((ErrorClass.DATA_MISMATCH, None, None, "logs -f delivered no line at all", None), "no log line arrived"),
    ((ErrorClass.TRUNCATED, "HTTP/1.1 101 Switching Protocols", None,
      "the download ended early: 15924736 of 16777216 bytes (reset: reset during stream: WebSocket closed "
      "abnormally: no close frame)", None), "download ended early"),
    ((ErrorClass.TIMEOUT, "HTTP/1.1 101 Switching Protocols", None, "no answer within 30s", None), "timed out"),
]


@pytest.mark.parametrize(("evidence", "words"), REAL, ids=[w for _, w in REAL])
def test_real_failures_in_a_few_words(cell: CellFactory, evidence: tuple, words: str) -> None:
    error_class, status, refused_by, error, survived = evidence
    failed = cell(outcome=Outcome.EXPECTED_FAIL, error_class=error_class, status_line=status, refused_by=refused_by,
                  error=error, survived_s=survived)
    assert failure_words(failed) == words


def test_the_api_servers_own_refusals_name_the_decision(cell: CellFactory) -> None:
    forbidden = cell(outcome=Outcome.FAIL, error_class=ErrorClass.FORBIDDEN, status_line="HTTP/1.1 403 Forbidden",
                     refused_by="api-server", error='pods "probe-0" is forbidden: User "bob" cannot create')
    assert failure_words(forbidden) == "403 forbidden"
    unauthorized = cell(outcome=Outcome.FAIL, error_class=ErrorClass.UNAUTHORIZED, refused_by="unknown",
                        status_line="HTTP/1.1 401 Unauthorized", error="Unauthorized")
    assert failure_words(unauthorized) == "401 unauthorized"


def test_failures_without_a_refusal_say_what_broke_in_the_stream(cell: CellFactory) -> None:
    tls = cell(outcome=Outcome.FAIL, error_class=ErrorClass.TLS,
               error="tls: failed to verify certificate: x509: certificate signed by unknown authority")
    assert failure_words(tls) == "TLS: unknown CA"
    reset = cell(outcome=Outcome.FAIL, error_class=ErrorClass.RESET, status_line="HTTP/1.1 101 Switching Protocols",
                 error="connection reset by peer after 4096 bytes")
    assert failure_words(reset) == "reset mid-stream"
    harness = cell(outcome=Outcome.ERROR, error_class=ErrorClass.HARNESS, error="KeyError: 'stdout'")
    assert failure_words(harness) == "harness error"


def test_every_error_class_has_words_within_the_limit(cell: CellFactory) -> None:
    for error_class in ErrorClass:
        if error_class is ErrorClass.NONE:
            continue
        words = failure_words(cell(outcome=Outcome.FAIL, error_class=error_class, error="x" * 500,
                                   status_line="HTTP/1.1 418 " + "I'm a teapot " * 10))
        assert words and len(words) <= WORDS_MAX, error_class


def test_cells_that_worked_or_were_skipped_have_no_failure(cell: CellFactory) -> None:
    for outcome in (Outcome.PASS, Outcome.UNEXPECTED_PASS, Outcome.SKIP):
        assert failure_words(cell(outcome=outcome, error="stale text")) == ""
