"""Error classes from evidence, and which hop refused (FIELD.md's signatures).

Two steps. Clients and adapters make a first guess from what they see (`classify_text`, `classify_status`).
The cell runner then *attributes* a refusal (`attribute`): an answer one of the hops declares as its own
(`answers:` of a path or `proxy_answers:` of a target in the harness config) names that hop; a metav1.Status
body, kubectl's RBAC wording or "Upgrade request required" name the API server; anything else is
`refused_by: unknown`. Only an attributed 401/403 is an authentication or authorization decision, so only
that can hold a security guard (`guard_held`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.model import ErrorClass, Evidence

API_SERVER = "api-server"
UNKNOWN = "unknown"

_RULES: tuple[tuple[re.Pattern[str], ErrorClass], ...] = tuple(
    (re.compile(pattern, re.I), cls)
    for pattern, cls in (
        (r"upgrade request required", ErrorClass.UPGRADE_REQUIRED),
        (r"missing upgrade headers", ErrorClass.UPGRADE_REQUIRED),
        # The API server's authorizer, in kubectl's and client-go's words: before "unable to upgrade", which
        # kubectl prints in front of it for a refused exec.
        (r"is forbidden: user \"|error from server \(forbidden\)", ErrorClass.FORBIDDEN),
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
# kubectl / client-go wording that only the API server's own answers produce.
_API_SERVER_TEXT = re.compile(r"is forbidden: user \"|error from server \((forbidden|notfound|badrequest)\)", re.I)


def classify_text(text: str) -> ErrorClass:
    for pattern, cls in _RULES:
        if pattern.search(text):
            return cls
    return ErrorClass.PROTOCOL_ERROR


def status_document(body: str) -> dict[str, Any] | None:
    """The body as a metav1.Status (what the API server writes), else None."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == "Status" else None


def classify_status(status: int, body: str = "") -> ErrorClass:
    """A first guess for a non-101 answer to an upgrade, or a failed plain request (no hop knowledge)."""
    return _generic(status, body)[0]


def _generic(status: int, body: str) -> tuple[ErrorClass, str]:
    if status == 400 and "upgrade request required" in body.lower():
        return ErrorClass.UPGRADE_REQUIRED, API_SERVER  # a hop dropped Upgrade; the API server said so
    if status_document(body) is not None:
        by_status = {401: ErrorClass.UNAUTHORIZED, 403: ErrorClass.FORBIDDEN, 404: ErrorClass.NOT_FOUND}
        if status in by_status:
            return by_status[status], API_SERVER
        return (ErrorClass.SERVER_ERROR if status >= 500 else ErrorClass.HOP_REFUSED), API_SERVER
    if status == 401:
        return ErrorClass.UNAUTHORIZED, UNKNOWN
    if status == 407 or status in (502, 503, 504):
        return ErrorClass.PROXY_ERROR, UNKNOWN
    if 400 <= status < 500:
        return ErrorClass.HOP_REFUSED, UNKNOWN  # 403 without a Status, 404, 405...: nobody we know decided
    if status >= 500:
        return ErrorClass.SERVER_ERROR, UNKNOWN
    return ErrorClass.PROTOCOL_ERROR, UNKNOWN  # a 2xx/3xx where an upgrade was asked for


@dataclass(frozen=True)
class Answer:
    """A refusal a hop declares as its own: status, optional header ("Name: value" substring) and body text."""

    who: str  # "path:<name>" or "proxy:<target>"
    means: ErrorClass
    status: int | None = None
    header: str | None = None
    body_contains: str | None = None

    @property
    def specificity(self) -> int:
        return sum(x is not None for x in (self.status, self.header, self.body_contains))

    def matches(self, status: int | None, headers: Mapping[str, str], text: str) -> bool:
        if self.status is not None and status is not None and status != self.status:
            return False
        if self.status is not None and status is None and not self.body_contains:
            return False  # only a client's words (kubectl): a status alone cannot be checked
        if self.header is not None:
            if status is None:
                return False
            name, _, value = self.header.partition(":")
            got = {k.lower(): v for k, v in headers.items()}.get(name.strip().lower())
            if got is None or value.strip().lower() not in got.lower():
                return False
        return not self.body_contains or self.body_contains.lower() in text.lower()


def parse_answers(raw: Any, who: str, where: str) -> tuple[Answer, ...]:
    """`answers:` / `proxy_answers:` of the harness config; errors name the key."""
    from conformance.errors import ConfigError

    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"{where} must be a list of {{status, header, body_contains, means}}")
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or "means" not in item:
            raise ConfigError(f"{where}[{i}] must be a mapping with `means` (an error class) and a status or text")
        unknown = set(item) - {"status", "header", "body_contains", "means", "why"}
        if unknown:
            raise ConfigError(f"{where}[{i}]: unknown key(s) {sorted(unknown)}")
        try:
            means = ErrorClass(item["means"])
        except ValueError:
            raise ConfigError(f"{where}[{i}].means {item['means']!r} is not an error class") from None
        if item.get("status") is None and not item.get("body_contains"):
            raise ConfigError(f"{where}[{i}] needs a status or body_contains")
        out.append(Answer(who, means, item.get("status"), item.get("header"), item.get("body_contains")))
    return tuple(out)


REFUSAL_CLASSES = frozenset({
    ErrorClass.UPGRADE_REQUIRED, ErrorClass.UPGRADE_REFUSED, ErrorClass.UNAUTHORIZED, ErrorClass.FORBIDDEN,
    ErrorClass.NOT_FOUND, ErrorClass.SERVER_ERROR, ErrorClass.PROXY_ERROR, ErrorClass.HOP_REFUSED,
    ErrorClass.PROTOCOL_ERROR,
})


def status_of(evidence: Evidence) -> int | None:
    parts = (evidence.status_line or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def attribute(cls: ErrorClass, evidence: Evidence, answers: Iterable[Answer]) -> tuple[ErrorClass, str | None]:
    """The final class of a failure and which hop refused (None: nothing was refused, e.g. a reset)."""
    if cls not in REFUSAL_CLASSES:
        return cls, None
    status = status_of(evidence)
    if status == 101:
        status = None  # the upgrade worked; what failed came later
    body = evidence.body_excerpt or ""
    text = " ".join(t for t in (body, evidence.error or "") if t)
    if status is None and cls is ErrorClass.PROTOCOL_ERROR:
        return cls, None  # malformed frames after a good upgrade: not a refusal
    if status is not None and status_document(body) is not None:
        return _generic(status, body)  # the API server's own Status, whichever hops it crossed
    if _API_SERVER_TEXT.search(text):
        return classify_text(text), API_SERVER
    matching = [a for a in answers if a.matches(status, evidence.response_headers, text)]
    if matching:
        best = max(matching, key=lambda a: a.specificity)  # max() keeps the first of equals: the nearest hop
        return best.means, best.who
    if status is not None:
        return _generic(status, body or text)  # kubectl shows no body, only its words about it
    if cls is ErrorClass.UPGRADE_REQUIRED:
        return cls, API_SERVER
    return cls, UNKNOWN


def guard_held(cls: ErrorClass, refused_by: str | None) -> bool:
    """A security guard held only where an authenticating or authorizing component refused."""
    return cls in (ErrorClass.UNAUTHORIZED, ErrorClass.FORBIDDEN) and (
        refused_by == API_SERVER or (refused_by or "").startswith("proxy:")
    )


def answers_for(path_answers: Sequence[Answer], target_answers: Sequence[Answer]) -> tuple[Answer, ...]:
    """The hop nearest the client answers first: a path's own refusal before the proxy's behind it."""
    return (*path_answers, *target_answers)
