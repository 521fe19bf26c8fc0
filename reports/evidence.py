"""Evidence as reports show it: a one-line summary for lists, a flat field list for machine formats."""

from __future__ import annotations

import json
from typing import Any

from conformance.model import CellResult, ErrorClass, Outcome
from reports.text import one_line

ERROR_EXCERPT = 120  # characters of error text in a one-line summary
# Classes where who the API server saw is the finding itself.
_IDENTITY_CLASSES = frozenset({ErrorClass.WRONG_IDENTITY, ErrorClass.ELEVATED, ErrorClass.ACCEPTED_BAD_CREDENTIAL})


def key_evidence(cell: CellResult) -> str:
    """What a person reads first: the upgrade's status line, the error, and what surprised us."""
    ev = cell.evidence
    parts: list[str] = []
    if ev.status_line:
        parts.append(f'"{one_line(ev.status_line, 60)}"')
    if ev.error:
        parts.append(f"error: {one_line(ev.error, ERROR_EXCERPT)}")
    if cell.outcome is Outcome.UNEXPECTED_PASS:
        declared = cell.expectation.error_class or "any error"
        parts.append(f"expected to fail with {declared}")
    if cell.error_class in _IDENTITY_CLASSES and ev.identity is not None:
        parts.append(f"API server saw {one_line(ev.identity.user, 60)}")
    if ev.fallback:
        parts.append(f"fallback {one_line(ev.fallback, 40)}")
    if ev.audit_trail:
        parts.append(f"audit trail {one_line(ev.audit_trail, ERROR_EXCERPT)}")
    if ev.client_races:
        parts.append(f"client race: {one_line(ev.client_races[0], ERROR_EXCERPT)}")
    if ev.earlier_attempts:
        parts.append(f"asked again after {len(ev.earlier_attempts)} attempt(s) lost to a client race")
    if not parts and cell.message:
        parts.append(one_line(cell.message, ERROR_EXCERPT))
    return "  ".join(parts)


def flatten(value: Any, prefix: str) -> list[tuple[str, str]]:
    """Dotted leaf fields of a JSON-ready value: ("evidence.identity.user", "alice"), ...

    Lists of strings (groups, transcript lines) become one field, newline-joined, because a reader
    wants the transcript whole; None becomes "" so that every field is present in every cell.
    """
    if isinstance(value, dict):
        if not value:
            return [(prefix, "")]
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out.extend(flatten(item, f"{prefix}.{key}"))
        return out
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return [(prefix, "\n".join(value))]
        return [(prefix, json.dumps(value, sort_keys=True))]
    if value is None:
        return [(prefix, "")]
    if isinstance(value, bool):
        return [(prefix, "true" if value else "false")]
    return [(prefix, str(value))]
