"""JUnit XML: one testcase per cell, so any CI system can show the matrix as tests.

classname is `target.path`, name is the cell id; fail and unexpected-pass become <failure>, error becomes
<error>, skip becomes <skipped>, and expected-fail passes (it is what was declared). Each testcase carries
<properties>, one per evidence field, flattened (`evidence.status_line`, `evidence.identity.user`, ...).
The serialised XML is run through redaction as a last line of defence; should that find anything, the
tree is redacted node by node instead and serialised again (redacting markup as text could cut an entity).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from conformance.model import CellResult, Outcome, Results
from conformance.redact import REDACTED, redact
from reports.evidence import flatten, key_evidence
from reports.scrub import redacted_both, scrub_text
from reports.text import printable

SUITE_NAME = "k8s-streaming-conformance"
_MARKER = REDACTED.replace("<", "&lt;").replace(">", "&gt;")  # as ElementTree writes it


def render_junit(results: Results) -> str:
    safe, doc = redacted_both(results)
    root = ET.Element("testsuites", name=SUITE_NAME)
    suites: dict[str, ET.Element] = {}
    for cell, cell_doc in zip(safe.cells, doc["cells"], strict=True):
        suite = suites.get(cell.key.target)
        if suite is None:
            suite = suites[cell.key.target] = ET.SubElement(
                root, "testsuite", name=cell.key.target, timestamp=safe.meta.started
            )
            if safe.meta.runner:
                suite.set("hostname", safe.meta.runner)
        _testcase(suite, cell, cell_doc)
    for element in (root, *suites.values()):
        _set_totals(element)
    ET.indent(root)
    text = _serialise(root)
    scrubbed = scrub_text(text, markers=(_MARKER,), escape=_xml_escape)
    if scrubbed != text:
        _redact_tree(root)
        scrubbed = _serialise(root)
    return scrubbed


def _serialise(root: ET.Element) -> str:
    # XML 1.0 cannot carry most control characters; evidence may hold any, so they become visible escapes.
    return printable(ET.tostring(root, encoding="unicode", xml_declaration=True)) + "\n"


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _testcase(suite: ET.Element, cell: CellResult, cell_doc: dict[str, Any]) -> None:
    case = ET.SubElement(
        suite, "testcase", classname=f"{cell.key.target}.{cell.key.path}", name=cell.id, time=f"{cell.duration_s:.3f}"
    )
    props = ET.SubElement(case, "properties")
    fields: list[tuple[str, Any]] = [
        ("outcome", cell.outcome.value),
        ("error_class", cell.error_class.value),
        ("client_version", cell.client_version),
        ("message", cell.message),
        ("expectation", cell_doc["expectation"]),
        ("evidence", cell_doc["evidence"]),
    ]
    for name, value in fields:
        for key, text in flatten(value, name):
            ET.SubElement(props, "property", name=key, value=text)
    detail = _detail(cell)
    if cell.outcome in (Outcome.FAIL, Outcome.UNEXPECTED_PASS):
        el = ET.SubElement(
            case, "failure", message=f"{cell.outcome.value}: {cell.message}", type=cell.error_class.value
        )
        el.text = detail
    elif cell.outcome is Outcome.ERROR:
        el = ET.SubElement(case, "error", message=f"error: {cell.message}", type=cell.error_class.value)
        el.text = detail
    elif cell.outcome is Outcome.SKIP:
        ET.SubElement(case, "skipped", message=cell.message or "skipped")
    if cell.evidence.transcript:
        ET.SubElement(case, "system-out").text = "\n".join(cell.evidence.transcript)


def _detail(cell: CellResult) -> str:
    exp = cell.expectation
    lines = [
        f"cell: {cell.id}",
        f"outcome: {cell.outcome.value} ({cell.error_class.value})",
        f"expected: {exp.outcome}"
        + (f" with {exp.error_class}" if exp.error_class else "")
        + (f" ({exp.reason})" if exp.reason else ""),
        f"evidence: {key_evidence(cell)}",
    ]
    if cell.evidence.body_excerpt:
        lines.append(f"body: {cell.evidence.body_excerpt}")
    return "\n".join(lines)


def _set_totals(element: ET.Element) -> None:
    cases = list(element.iter("testcase"))
    element.set("tests", str(len(cases)))
    element.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    element.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    element.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    element.set("time", f"{sum(float(c.get('time', '0')) for c in cases):.3f}")


def _redact_tree(root: ET.Element) -> None:
    for el in root.iter():
        if el.text:
            el.text = redact(el.text)
        for name, value in el.attrib.items():
            el.set(name, redact(value))
