"""The JSON report: the validated, redacted results document, and writing it to a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.errors import ResultsFormatError
from conformance.model import Results
from reports.output import write_text_atomic
from reports.schema import validate
from reports.scrub import redacted_document, scrub_text


def results_document(results: Results) -> dict[str, Any]:
    """The results as a redacted dict that matches the schema (raises `ResultsFormatError` if not)."""
    doc = redacted_document(results)
    validate(doc)
    return doc


def render_json(results: Results) -> str:
    text = json.dumps(results_document(results), indent=2, ensure_ascii=False) + "\n"
    scrubbed = scrub_text(text)
    if scrubbed != text:
        # Only reachable if something escaped the redaction above; never write JSON that no longer parses.
        try:
            json.loads(scrubbed)
        except json.JSONDecodeError as exc:
            raise ResultsFormatError(f"redacting the JSON report broke it at line {exc.lineno}") from None
    return scrubbed


def write_results(results: Results, path: str | Path) -> Path:
    """Write the results document (validated, redacted) to `path`, atomically; returns the path."""
    return write_text_atomic(path, render_json(results))
