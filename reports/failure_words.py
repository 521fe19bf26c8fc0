"""A cell's failure in a few words, for the answer-first views: `400 Upgrade request required`,
`500 from openunison`, `cut after 60 s idle`.

Pure: reads the evidence the probe stored (status line, the hop the harness attributed the refusal to, the
error text) and the error class. A refusal says its status and who answered it, because that is what
someone choosing a load balancer or a proxy acts on; a failure after the upgrade says what went wrong in
the stream. Never longer than WORDS_MAX characters.
"""

from __future__ import annotations

import re

from conformance.model import CellResult, ErrorClass, Outcome
from reports.text import one_line

WORDS_MAX = 40  # fits a footnote beside a 120-column table
_STATUS = re.compile(r"HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s+(.*))?")
_SILENCE = re.compile(r"after (\d+(?:\.\d+)?)\s*s of silence")
_DECLARED = re.compile(r"declared idle timeout of (\d+(?:\.\d+)?)\s*s")
_UPGRADE_REQUIRED = "upgrade request required"
# Stream-level failures (after a 101 or 200) in words; the class name is the fallback for the rest.
_CLASS_WORDS: dict[ErrorClass, str] = {
    ErrorClass.UPGRADE_REQUIRED: "400 Upgrade request required",
    ErrorClass.UNAUTHORIZED: "401 unauthorized",
    ErrorClass.FORBIDDEN: "403 forbidden",
    ErrorClass.NOT_FOUND: "404 not found",
    ErrorClass.TLS: "TLS handshake failed",
    ErrorClass.TIMEOUT: "timed out",
    ErrorClass.CONNECT_REFUSED: "connection refused",
    ErrorClass.RESET: "reset mid-stream",
    ErrorClass.PROTOCOL_ERROR: "protocol error",
    ErrorClass.PROTOCOL_MISMATCH: "another protocol negotiated",
    ErrorClass.PROXY_ERROR: "refused by the forward proxy",
    ErrorClass.MISSING_EXIT_STATUS: "no exit status",
    ErrorClass.WRONG_IDENTITY: "ran as the wrong user",
    ErrorClass.DATA_MISMATCH: "bytes came back different",
    ErrorClass.SERVER_ERROR: "server error",
    ErrorClass.ELEVATED: "identity elevated",
    ErrorClass.ACCEPTED_BAD_CREDENTIAL: "bad credential accepted",
    ErrorClass.IDENTITY_UNVERIFIED: "identity unverified",
    ErrorClass.HOP_REFUSED: "refused by a hop",
    ErrorClass.PATH_UNAVAILABLE: "path not running",
    ErrorClass.TRUNCATED: "stream cut short",
    ErrorClass.IDLE_CUT: "cut while idle",
    ErrorClass.EOF_LOST: "stdin end lost",
    ErrorClass.TOO_SLOW: "too slow",
    ErrorClass.AUDIT_CHAIN_BROKEN: "audit chain broken",
    ErrorClass.HARNESS: "harness error",
}
_TLS_DETAIL = (
    ("unknown authority", "TLS: unknown CA"),
    ("certificate verify failed", "TLS: certificate not trusted"),
    ("expired", "TLS: certificate expired"),
    ("hostname", "TLS: wrong host name"),
)


def failure_words(cell: CellResult) -> str:
    """What went wrong in `cell`, in at most WORDS_MAX characters ("" for a cell that worked or was skipped)."""
    if cell.outcome in (Outcome.PASS, Outcome.UNEXPECTED_PASS, Outcome.SKIP):
        return ""
    ev = cell.evidence
    text = " ".join(t for t in (ev.error, ev.body_excerpt, cell.message) if t)
    refusal = _refusal(ev.status_line, ev.refused_by, cell.error_class, text)
    words = refusal or _stream_failure(cell.error_class, text, ev.survived_s)
    return one_line(words, WORDS_MAX)


def _refusal(status_line: str | None, refused_by: str | None, error_class: ErrorClass, text: str) -> str | None:
    """A refused upgrade or request: its status, and who answered when it was not the API server."""
    match = _STATUS.match(status_line or "")
    if match is None or match.group(1) in ("101", "200", "201"):
        return None  # no refusal: the failure happened later, in the stream
    code, reason = match.group(1), (match.group(2) or "").strip()
    if _UPGRADE_REQUIRED in text.lower():
        return f"{code} Upgrade request required"
    hop = _hop_name(refused_by)
    if hop:
        return f"{code} from {hop}"
    if error_class is ErrorClass.FORBIDDEN:
        return f"{code} forbidden"
    if error_class is ErrorClass.UNAUTHORIZED:
        return f"{code} unauthorized"
    return f"{code} {reason.lower()}".strip()


def _hop_name(refused_by: str | None) -> str | None:
    """"proxy:openunison" -> "openunison", "path:gateway" -> "gateway"; the API server and unknown are no hop."""
    if not refused_by or ":" not in refused_by:
        return None
    return refused_by.split(":", 1)[1] or None


def _stream_failure(error_class: ErrorClass, text: str, survived_s: float | None) -> str:
    if error_class is ErrorClass.IDLE_CUT:
        # The declared timeout reads the same in every cell it cut; the measured silence varies by a second.
        declared = _DECLARED.search(text)
        if declared:
            return f"cut at its {float(declared.group(1)):g} s idle timeout"
        silence = _SILENCE.search(text)
        seconds = survived_s if survived_s is not None else float(silence.group(1)) if silence else None
        return f"cut after {int(seconds)} s idle" if seconds is not None else _CLASS_WORDS[error_class]
    if error_class is ErrorClass.TLS:
        lowered = text.lower()
        return next((words for needle, words in _TLS_DETAIL if needle in lowered), _CLASS_WORDS[error_class])
    if error_class is ErrorClass.TRUNCATED:
        # The byte count differs from cell to cell; the words must not, or every cell gets its own note.
        what = next((w for w in ("download", "upload", "echo", "output") if w in text.lower()), "stream")
        return f"{what} ended early"
    if error_class is ErrorClass.DATA_MISMATCH and "no line" in text:
        return "no log line arrived"
    return _CLASS_WORDS.get(error_class, error_class.value)
