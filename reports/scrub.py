"""Redaction at both ends of every renderer: the results going in, the finished text coming out.

Probes redact evidence when they store it; reports redact again because a report is what leaves the
machine. Going in, `redacted_document` runs `redact_obj` over the whole document and also redacts mapping
keys, which `redact_obj` leaves alone (response header names and identity extras are free text). Coming
out, `scrub_text` runs `redact` over the finished text as a last line of defence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from conformance.model import CellResult, Results
from conformance.redact import REDACTED, SECRET_HEADERS, redact, redact_obj
from reports.plain import plain

_PARKED = re.compile("\ue000(\\d+)\ue001")  # private-use characters: never in evidence that was made printable


def redacted_document(results: Results) -> dict[str, Any]:
    """The results as a JSON-ready dict with every string, and every mapping key, redacted."""
    doc: dict[str, Any] = plain(results)
    return doc if _needs_no_redaction(doc) else redact_tree(doc)


def redact_tree(doc: dict[str, Any]) -> dict[str, Any]:
    """Every string and mapping key in `doc` redacted, one by one (no shortcut)."""
    redacted: dict[str, Any] = _redact_keys(redact_obj(doc))
    return redacted


def redacted_results(results: Results) -> Results:
    """`results` itself when nothing in it needs redacting, else a redacted copy."""
    return redacted_both(results)[0]


def redacted_both(results: Results) -> tuple[Results, dict[str, Any]]:
    """The redacted results and their plain document, for renderers that read both (one conversion)."""
    doc: dict[str, Any] = plain(results)
    if _needs_no_redaction(doc):
        return results, doc
    doc = redact_tree(doc)
    return Results.from_dict(doc), doc


def redacted_cell(cell: CellResult) -> dict[str, Any]:
    return redact_tree(plain(cell))


def scrub_text(text: str, *, markers: Iterable[str] = (REDACTED,), escape: Callable[[str], str] | None = None) -> str:
    """Run finished report text through `redact` without disturbing what was already redacted.

    `markers` are the forms the redaction marker takes in this format (escaped, in markup). Text redacted
    earlier reads "Bearer <redacted>", and redact's bearer pattern would swallow whatever follows the marker
    up to a space (a closing backtick, quote or entity), so those phrases are parked first and put back
    unchanged. In markup, `escape` escapes any marker this pass adds.
    """
    alternatives = "|".join(re.escape(m) for m in markers)
    parked: list[str] = []

    def park(match: re.Match[str]) -> str:
        parked.append(match.group(0))
        return f"\ue000{len(parked) - 1}\ue001"

    text = re.sub(rf"(?i)bearer\s+(?:{alternatives})", park, text)
    text = redact(text)
    if escape is not None:
        text = text.replace(REDACTED, escape(REDACTED))
    return _PARKED.sub(lambda m: parked[int(m.group(1))], text)


def _needs_no_redaction(doc: dict[str, Any]) -> bool:
    """True when redacting would change nothing: the common case, found with one `redact` call.

    `redact` over every string joined by newlines changes nothing only if it changes no single string:
    any match inside one string is also in the joined text, and the only replacement that leaves text as
    it was ("Bearer <redacted>" again) cannot hide the start of another match. Per-string redaction of a
    5,000-cell run takes about a second; this takes a tenth of that.
    """
    strings: list[str] = []
    stack: list[Any] = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    if key.lower() in SECRET_HEADERS and isinstance(item, str) and item != REDACTED:
                        return False  # redact_obj replaces these whatever they hold
                    strings.append(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    joined = "\n".join(strings)
    return redact(joined) == joined


def _redact_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: _redact_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_keys(v) for v in value]
    return value
