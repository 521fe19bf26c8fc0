"""The JSON report: the validated, redacted results document, and writing it to a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conformance.errors import ResultsFormatError
from conformance.model import Results
from reports.output import write_text_atomic
from reports.schema import validate
from reports.scrub import redact_tree, redacted_document, scrub_text


def results_document(results: Results) -> dict[str, Any]:
    """The results as a redacted dict that matches the schema (raises `ResultsFormatError` if not)."""
    doc = redacted_document(results)
    validate(doc)
    return doc


def render_json(results: Results) -> str:
    doc = results_document(results)
    text = _dump(doc)
    scrubbed = scrub_text(text)
    if scrubbed != text:
        # Something escaped the redaction going in. Redacting JSON text can eat an escape (`Bearer a\"`), so
        # redact the document string by string instead and render again.
        scrubbed = scrub_text(_dump(redact_tree(doc)))
        try:
            json.loads(scrubbed)
        except json.JSONDecodeError as exc:
            raise ResultsFormatError(f"redacting the JSON report broke it at line {exc.lineno}") from None
    return scrubbed


def _dump(doc: dict[str, Any]) -> str:
    # One cell per line: a diff of two results files shows changed cells as changed lines, and json's C
    # encoder (which `indent` would switch off) keeps a 5,000-cell file well under a second.
    head = [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in doc.items() if k != "cells"]
    cells = ",\n".join(json.dumps(c, ensure_ascii=False) for c in doc["cells"])
    return "{\n" + "\n".join(head) + '\n"cells": [\n' + cells + ("\n" if cells else "") + "]\n}\n"


def write_results(results: Results, path: str | Path) -> Path:
    """Write the results document (validated, redacted) to `path`, atomically; returns the path."""
    return write_text_atomic(path, render_json(results))
