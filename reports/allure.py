"""Allure helpers for the pytest plugin: one call per cell puts its evidence into the Allure report.

`attach_cell` sets the cell's coordinates as Allure labels and parameters (so Allure can group and filter
by them) and attaches the handshake transcript, the identity the API server saw, and the whole evidence.
Everything is redacted first. Outside a test run with `--alluredir`, allure's calls do nothing.
"""

from __future__ import annotations

import json
from typing import Any

import allure

from conformance.model import CellResult
from reports.evidence import key_evidence
from reports.scrub import redacted_cell, scrub_text
from reports.text import one_line

COORDINATES = ("target", "path", "protocol", "operation", "client")


def attach_cell(result: CellResult) -> None:
    """Label, parametrise and attach evidence for one cell in the running test's Allure result."""
    cell = redacted_cell(result)
    key: dict[str, str] = cell["key"]
    evidence: dict[str, Any] = cell["evidence"]
    for name in COORDINATES:
        allure.dynamic.label(name, key[name])
        allure.dynamic.parameter(name, key[name])
    allure.dynamic.label("outcome", cell["outcome"])
    allure.dynamic.label("error_class", cell["error_class"])
    if cell["client_version"]:
        allure.dynamic.parameter("client_version", cell["client_version"])
    allure.dynamic.description(
        scrub_text(f"{cell['outcome']} ({cell['error_class']}): {one_line(result.message)}\n\n{key_evidence(result)}")
    )
    transcript = "\n".join(evidence["transcript"]) or "(no handshake transcript recorded)"
    allure.attach(scrub_text(transcript), name="handshake transcript", attachment_type=allure.attachment_type.TEXT)
    allure.attach(
        _json(evidence["identity"] if evidence["identity"] is not None else {"identity": "not recorded"}),
        name="identity seen by the API server",
        attachment_type=allure.attachment_type.JSON,
    )
    allure.attach(_json(cell), name="cell evidence", attachment_type=allure.attachment_type.JSON)


def _json(value: Any) -> str:
    return scrub_text(json.dumps(value, indent=2, ensure_ascii=False))
