"""The versioned JSON Schema of a results document, and loading a results file through it.

One schema file per version lives in `reports/schema/` (`results-v1.json`, ...). A document names its
version in `schema_version` and `validate` checks it against that version's schema, so a newer harness can
still read an older file. Versioning policy: docs/reports.md.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from conformance.errors import ResultsFormatError
from conformance.model import SCHEMA_VERSION, Results
from conformance.redact import redact
from reports.schema_check import Check, compile_schema

SCHEMA_FILES = {1: "results-v1.json", 2: "results-v2.json"}
# A broken writer repeats one mistake in every cell; the first few errors say all there is to say.
MAX_REPORTED_ERRORS = 5
_MAX_VALUE_CHARS = 60  # of a bad value quoted in a message


@functools.cache
def schema(version: int = SCHEMA_VERSION) -> dict[str, Any]:
    """The JSON Schema of results documents of `version`."""
    text = importlib.resources.files("reports").joinpath("schema", SCHEMA_FILES[version]).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def _validator(version: int) -> Draft202012Validator:
    return Draft202012Validator(schema(version))


@functools.cache
def _quick_check(version: int) -> Check:
    return compile_schema(schema(version))


def validate(doc: Any) -> None:
    """Raise `ResultsFormatError` naming the JSON path of each bad field (up to a few) and what was expected."""
    if not isinstance(doc, dict):
        raise ResultsFormatError(f"$: expected a results document (a JSON object), got {_type_name(doc)}")
    version = doc.get("schema_version")
    if version not in SCHEMA_FILES:
        newest = max(SCHEMA_FILES)
        hint = (
            " (written by a newer harness: upgrade this one)" if isinstance(version, int) and version > newest else ""
        )
        raise ResultsFormatError(
            f"$.schema_version: got {_show(version)}; expected one of {sorted(SCHEMA_FILES)}{hint}"
        )
    if _quick_check(version)(doc):
        _check_unique_ids(doc["cells"])
        return
    lines: dict[str, None] = {}  # ordered and without repeats: each missing field is named once
    for error in _validator(version).iter_errors(doc):
        lines.update(dict.fromkeys(_describe(error)))
        if len(lines) > MAX_REPORTED_ERRORS:
            break
    if lines:
        shown = list(lines)[:MAX_REPORTED_ERRORS] + (["... and more"] if len(lines) > MAX_REPORTED_ERRORS else [])
        raise ResultsFormatError(f"not a valid results document (schema v{version}):\n  " + "\n  ".join(shown))
    _check_unique_ids(doc["cells"])


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a results file as JSON, without validating it."""
    try:
        doc: dict[str, Any] = json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ResultsFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ResultsFormatError(f"{path}: not JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise ResultsFormatError(f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    return doc


def load_results(path: str | Path) -> Results:
    """Load a results file, validating it first; errors name the file and the JSON path."""
    doc = load_document(path)
    try:
        validate(doc)
    except ResultsFormatError as exc:
        raise ResultsFormatError(f"{path}: {exc}") from None
    return Results.from_dict(doc)


def _check_unique_ids(cells: list[dict[str, Any]]) -> None:
    # Diff, merge and the HTML report key cells by id: two cells with one id would hide one of them.
    seen: dict[str, int] = {}
    for index, cell in enumerate(cells):
        key = cell["key"]
        cell_id = "-".join(key[k] for k in ("target", "path", "protocol", "operation", "client"))
        if cell_id in seen:
            raise ResultsFormatError(
                f"$.cells[{index}].key: duplicate cell id {_show(cell_id)} (first at $.cells[{seen[cell_id]}]); "
                "expected each cell once (merge files with `conformance report merge`)"
            )
        seen[cell_id] = index


def _describe(error: ValidationError) -> list[str]:
    where = error.json_path
    # jsonschema types these as possibly unset; on an error raised by a validator they are always set.
    kind: Any = error.validator
    expected: Any = error.validator_value
    got: Any = error.instance
    schema_node: Any = error.schema
    if kind == "required" and isinstance(got, dict):
        return [f"{where}.{name}: missing; expected a required field" for name in expected if name not in got]
    if kind == "additionalProperties" and isinstance(got, dict):
        allowed = set(schema_node.get("properties", {}))
        extra = sorted(set(got) - allowed)
        fields = ", ".join(sorted(allowed))
        return [f"{where}.{name}: unexpected field; expected only: {fields}" for name in extra]
    if kind == "enum":
        return [f"{where}: got {_show(got)}; expected one of: {', '.join(_show(v) for v in expected)}"]
    if kind == "const":
        return [f"{where}: got {_show(got)}; expected {_show(expected)}"]
    if kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return [f"{where}: got {_type_name(got)} {_show(got)}; expected {wanted}"]
    if kind in ("minimum", "minLength"):
        bound = f"at least {expected}" if kind == "minimum" else "a non-empty string"
        return [f"{where}: got {_show(got)}; expected {bound}"]
    return [f"{where}: {redact(error.message)}"]


def _show(value: Any) -> str:
    # A bad value may be anything the writer put there, credentials included: redact before quoting it.
    text = redact(json.dumps(value, ensure_ascii=False, default=str))
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
