"""The checked-in JSON Schema describes exactly what Results.to_dict() produces, and says clearly what is wrong."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from conformance import model
from conformance.errors import ConformanceError, ResultsFormatError
from conformance.model import ErrorClass, Outcome, Results
from reports.sample import COVERAGE, make_results
from reports.schema import load_results, schema, validate

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


@pytest.mark.parametrize("n_cells", [1, 24, 150, 700])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_generated_document_validates(n_cells: int, seed: int) -> None:
    validate(make_results(n_cells, seed).to_dict())


def test_schema_properties_are_the_model_fields() -> None:
    # Drift in either direction (a new model field, a schema typo) fails here before it fails a user.
    defs = schema()["$defs"]
    pairs = {
        "meta": model.RunMetadata, "merged_input": model.MergedInput, "cell": model.CellResult, "key": model.CellKey,
        "expectation": model.Expectation, "evidence": model.Evidence, "identity": model.Identity,
        "timings": model.Timings,
    }
    for name, klass in pairs.items():
        names = {f.name for f in dataclasses.fields(klass)}
        assert set(defs[name]["properties"]) == names, name
        assert set(defs[name]["required"]) == names, name
        assert defs[name]["additionalProperties"] is False
    assert set(schema()["properties"]) == {f.name for f in dataclasses.fields(Results)}


def test_schema_enums_are_the_model_enums() -> None:
    defs = schema()["$defs"]
    assert defs["outcome"]["enum"] == [o.value for o in Outcome]
    assert defs["error_class"]["enum"] == [e.value for e in ErrorClass]
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_round_trip_through_the_document_is_lossless() -> None:
    results = make_results(60, 3)
    doc = json.loads(json.dumps(results.to_dict()))
    validate(doc)
    assert Results.from_dict(doc) == results


def _first_with_identity(doc: dict[str, Any]) -> int:
    return next(i for i, c in enumerate(doc["cells"]) if c["evidence"]["identity"])


def _set_outcome(doc: dict[str, Any]) -> None:
    doc["cells"][0]["outcome"] = "passed"


def _set_error_class(doc: dict[str, Any]) -> None:
    doc["cells"][2]["error_class"] = "teapot"


def _negative_bytes(doc: dict[str, Any]) -> None:
    doc["cells"][1]["evidence"]["bytes_sent"] = -1


def _timing_as_text(doc: dict[str, Any]) -> None:
    doc["cells"][0]["evidence"]["timings"]["total_s"] = "fast"


def _drop_started(doc: dict[str, Any]) -> None:
    del doc["meta"]["started"]


def _extra_key_field(doc: dict[str, Any]) -> None:
    doc["cells"][3]["key"]["colour"] = "red"


def _identity_user_number(doc: dict[str, Any]) -> None:
    doc["cells"][_first_with_identity(doc)]["evidence"]["identity"]["user"] = 3


def _newer_version(doc: dict[str, Any]) -> None:
    doc["schema_version"] = 3


def _duplicate_cell(doc: dict[str, Any]) -> None:
    doc["cells"].append(doc["cells"][0])


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set_outcome, ['$.cells[0].outcome: got "passed"; expected one of: "pass", "expected-fail"']),
        (_set_error_class, ['$.cells[2].error_class: got "teapot"; expected one of', '"upgrade-required"']),
        (_negative_bytes, ["$.cells[1].evidence.bytes_sent: got -1; expected at least 0"]),
        (_timing_as_text, ['$.cells[0].evidence.timings.total_s: got string "fast"; expected number or null']),
        (_drop_started, ["$.meta.started: missing; expected a required field"]),
        (_extra_key_field, ["$.cells[3].key.colour: unexpected field; expected only: client, operation, path"]),
        (_identity_user_number, [".evidence.identity.user: got integer 3; expected string"]),
        (_newer_version, ["$.schema_version: got 3; expected one of [1, 2]", "newer harness"]),
        (_duplicate_cell, ["$.cells[40].key: duplicate cell id", "first at $.cells[0]"]),
    ],
)
def test_a_wrong_field_is_named_with_what_was_expected(mutate: Any, expected: list[str]) -> None:
    doc = make_results(40, 1).to_dict()
    mutate(doc)
    with pytest.raises(ResultsFormatError) as info:
        validate(doc)
    for text in expected:
        assert text in str(info.value)


def test_not_an_object() -> None:
    with pytest.raises(ResultsFormatError, match=r"^\$: expected a results document \(a JSON object\), got array"):
        validate([])


def test_errors_are_capped_and_each_field_named_once() -> None:
    doc = make_results(40, 1).to_dict()
    doc["meta"] = {}
    with pytest.raises(ResultsFormatError) as info:
        validate(doc)
    lines = str(info.value).splitlines()[1:]
    assert len(lines) == 6 and lines[-1].strip() == "... and more"
    assert len(set(lines)) == len(lines)


def test_a_bad_value_is_redacted_in_the_message() -> None:
    doc = make_results(5, 1).to_dict()
    doc["cells"][0]["outcome"] = f"Bearer {JWT}"
    with pytest.raises(ResultsFormatError) as info:
        validate(doc)
    assert JWT not in str(info.value) and "<redacted>" in str(info.value)


def test_load_results_validates_and_names_the_file(tmp_path: Path) -> None:
    doc = make_results(10, 1).to_dict()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    assert load_results(good) == Results.from_dict(doc)
    doc["cells"][4]["evidence"]["exit_code"] = "zero"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(ResultsFormatError) as info:
        load_results(bad)
    assert str(info.value).startswith(f"{bad}: not a valid results document")
    assert '$.cells[4].evidence.exit_code: got string "zero"; expected integer or null' in str(info.value)
    assert isinstance(info.value, ConformanceError)


def test_load_results_reports_broken_json_and_missing_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,\n "meta": }')
    with pytest.raises(ResultsFormatError, match=r"broken.json: not JSON at line 2 column 10: Expecting value$"):
        load_results(broken)
    with pytest.raises(ResultsFormatError, match=r"absent.json: cannot read"):
        load_results(tmp_path / "absent.json")


def test_the_fast_conversion_equals_to_dict() -> None:
    from reports.plain import plain

    for seed in range(3):
        results = make_results(200, seed)
        assert plain(results) == results.to_dict()
    merged = make_results(3, 0)
    merged.meta.merged_from.append(model.MergedInput(label="a", file="a.json", started="x", cells=3))
    assert plain(merged) == merged.to_dict()


_WRONG_VALUES: list[Any] = [None, 0, -1, 1.5, 1.0, True, "", "x", "pass", [], ["x"], [1], {}, {"x": "y"}]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [path] + [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [path] + [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path]


def test_the_quick_check_never_accepts_what_jsonschema_rejects() -> None:
    # validate() trusts the compiled check's "valid"; so for every field, every wrong value must be caught.
    from jsonschema import Draft202012Validator

    from reports.schema_check import compile_schema

    quick, full = compile_schema(schema()), Draft202012Validator(schema())
    results = make_results(len(COVERAGE), seed=2)
    assert quick(results.to_dict())  # str-enum members, as to_dict leaves them
    # Every cell has the same schema: three cells with every optional part filled or empty are enough.
    full_cell = next(c for c in results.cells if c.evidence.identity)
    empty_cell = next(c for c in results.cells if c.evidence.identity is None)
    results.cells = [full_cell, empty_cell]
    assert full_cell.evidence.identity is not None
    full_cell.evidence.identity.extra = {"scopes": ["a", "b"]}
    full_cell.evidence.notes, full_cell.expectation.error_class = ["a note"], "timeout"
    doc = json.loads(json.dumps(results.to_dict()))
    doc["meta"]["merged_from"] = [dataclasses.asdict(model.MergedInput(label="a", file="a.json", started="x"))]
    assert quick(doc) and full.is_valid(doc)
    checked = 0
    for path in _leaves(doc)[1:]:
        for wrong in _WRONG_VALUES:
            mutated = json.loads(json.dumps(doc))
            parent = mutated
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = wrong
            if quick(mutated):
                assert full.is_valid(mutated), (path, wrong)
            checked += 1
        if isinstance(path[-1], str):  # and a dropped field, and an extra one beside it
            mutated = json.loads(json.dumps(doc))
            parent = mutated
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
            assert quick(mutated) == full.is_valid(mutated), path
            parent[path[-1] + "_extra"] = 1
            assert not quick(mutated)
    assert checked > 1_000


def test_the_quick_check_refuses_keywords_it_cannot_check() -> None:
    from reports.schema_check import compile_schema

    with pytest.raises(ValueError, match="pattern"):
        compile_schema({"type": "string", "pattern": "^a"})
