"""Error classes derived from what a client printed or a server answered (FIELD.md's signatures).

The order of the rules matters: the most specific signature wins (a 400 "Upgrade request required" is
upgrade-required even though it is also a bad request).
"""

from __future__ import annotations

import re

from conformance.model import ErrorClass

_RULES: tuple[tuple[re.Pattern[str], ErrorClass], ...] = tuple(
    (re.compile(pattern, re.I), cls)
    for pattern, cls in (
        (r"upgrade request required", ErrorClass.UPGRADE_REQUIRED),
        (r"missing upgrade headers", ErrorClass.UPGRADE_REQUIRED),
        (r"unable to upgrade connection: <html|internal server error", ErrorClass.UPGRADE_REFUSED),
        (r"upgrade_failed|unable to upgrade connection|bad handshake|websocket: bad", ErrorClass.UPGRADE_REFUSED),
        (r"proxyconnect|proxy authentication|proxy error|error dialing proxy", ErrorClass.PROXY_ERROR),
        (r"\b(502|503|504)\b|bad gateway|service unavailable|gateway timeout", ErrorClass.PROXY_ERROR),
        (r"unauthorized|must be logged in", ErrorClass.UNAUTHORIZED),
        (r"forbidden", ErrorClass.FORBIDDEN),
        (r"x509:|tls:|certificate (signed by unknown|is valid for|has expired)|ssl", ErrorClass.TLS),
        (r"connection refused", ErrorClass.CONNECT_REFUSED),
        (r"i/o timeout|deadline exceeded|timed out|timeout", ErrorClass.TIMEOUT),
        (r"connection reset|broken pipe|unexpected eof|\beof\b|lost connection", ErrorClass.RESET),
        (r"not found", ErrorClass.NOT_FOUND),
        (r"internal error|internal server error|\b500\b", ErrorClass.SERVER_ERROR),
    )
)


def classify_text(text: str) -> ErrorClass:
    for pattern, cls in _RULES:
        if pattern.search(text):
            return cls
    return ErrorClass.PROTOCOL_ERROR


def classify_status(status: int, body: str = "") -> ErrorClass:
    """A non-101 answer to an upgrade, or a failed plain request."""
    if status == 400 and "upgrade request required" in body.lower():
        return ErrorClass.UPGRADE_REQUIRED
    if status == 401:
        return ErrorClass.UNAUTHORIZED
    if status == 403:
        # The API server's authorizer answers with a JSON Status; a proxy's own 403 (Envoy) does not.
        return ErrorClass.FORBIDDEN if '"kind":"Status"' in body.replace(" ", "") else ErrorClass.UPGRADE_REFUSED
    if status == 404:
        return ErrorClass.NOT_FOUND
    if status == 407 or status in (502, 503, 504):
        return ErrorClass.PROXY_ERROR
    if status >= 500:
        return ErrorClass.UPGRADE_REFUSED if "<html" in body.lower() else ErrorClass.SERVER_ERROR
    return ErrorClass.UPGRADE_REFUSED
