"""JUnit XML: one testcase per cell, failures, errors and skips mapped, evidence as properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from conformance.model import ErrorClass, Outcome, Results
from reports.junit import render_junit
from reports.sample import make_results
from tests.reports.builders import CellFactory, build_results


def _cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    return {case.get("name", ""): case for case in root.iter("testcase")}


def test_one_testcase_per_cell_with_classname_target_dot_path() -> None:
    results = make_results(300, seed=3)
    cases = _cases(render_junit(results))
    assert len(cases) == 300
    for cell in results.cells:
        assert cases[cell.id].get("classname") == f"{cell.key.target}.{cell.key.path}"


def test_outcomes_map_to_failure_error_skipped_and_expected_fail_passes(small_results: Results) -> None:
    xml = render_junit(small_results)
    cases = _cases(xml)
    children = {name: [child.tag for child in case if child.tag != "properties" and child.tag != "system-out"]
                for name, case in cases.items()}
    for cell in small_results.cells:
        expected = {
            Outcome.PASS: [], Outcome.EXPECTED_FAIL: [], Outcome.FAIL: ["failure"],
            Outcome.UNEXPECTED_PASS: ["failure"], Outcome.ERROR: ["error"], Outcome.SKIP: ["skipped"],
        }[cell.outcome]
        assert children[cell.id] == expected, cell.outcome
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("6", "2", "1", "1")
    failure = cases["jetstack-direct-websocket-exec-native"].find("failure")
    assert failure is not None and failure.get("type") == "upgrade-required"
    assert "HTTP/1.1 400 Bad Request" in (failure.text or "")


def test_properties_flatten_every_evidence_field(small_results: Results) -> None:
    case = _cases(render_junit(small_results))["jetstack-direct-websocket-exec-kubectl-1.36"]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["evidence.status_line"] == "HTTP/1.1 101 Switching Protocols"
    assert props["evidence.identity.user"] == "alice"
    assert props["evidence.identity.groups"] == "devs"
    assert props["evidence.identity.authenticated_as"] == "system:serviceaccount:jetstack:proxy"
    assert props["evidence.timings.connect_s"] == "0.001"
    assert props["evidence.transcript"] == "> GET /exec\n< 101"
    assert props["evidence.error"] == ""  # present, empty: every field in every cell
    assert props["outcome"] == "pass" and props["expectation.outcome"] == "pass"


def test_characters_xml_cannot_carry_are_made_visible(cell: CellFactory) -> None:
    hostile = cell(outcome=Outcome.FAIL, error_class=ErrorClass.RESET, error="nul\x00 esc\x1b bell\x07 ]]> </x>",
                   response_headers={"X-\x01": "\x02"})
    xml = render_junit(build_results([hostile]))
    root = ET.fromstring(xml)  # noqa: S314 - our own output
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["evidence.error"] == "nul\\x00 esc\\x1b bell\\x07 ]]> </x>"
    assert props["evidence.response_headers.X-\\x01"] == "\\x02"
