"""attach_cell puts a cell's evidence into a real allure-pytest run (driven by pytester)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLWFsbHVyZQ"

TEST_FILE = f'''
from conformance.model import ErrorClass, Identity, Outcome
from reports.allure import attach_cell
from tests.reports.builders import build_cell


def test_one_cell():
    cell = build_cell(
        target="jetstack", path="l7-lb", protocol="spdy", operation="port-forward", client="native",
        outcome=Outcome.FAIL, error_class=ErrorClass.WRONG_IDENTITY,
        status_line="HTTP/1.1 101 Switching Protocols", error="token {JWT} was refused",
        identity=Identity(user="mallory", groups=["devs"], authenticated_as="system:serviceaccount:jetstack:proxy"),
        transcript=["> POST /api/v1/namespaces/conformance/pods/echo/portforward HTTP/1.1",
                    "> Authorization: Bearer {JWT}", "< HTTP/1.1 101 Switching Protocols"],
    )
    attach_cell(cell)
'''


def test_attach_cell_writes_transcript_identity_and_labels(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makepyfile(test_cell_in_allure=TEST_FILE)
    alluredir = pytester.path / "allure-results"
    result = pytester.runpytest_subprocess("--alluredir", str(alluredir), "-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=1)

    [result_file] = alluredir.glob("*-result.json")
    written = json.loads(result_file.read_text())
    attachments = {a["name"]: alluredir / a["source"] for a in written["attachments"]}
    assert set(attachments) == {"handshake transcript", "identity seen by the API server", "cell evidence"}
    transcript = attachments["handshake transcript"].read_text()
    assert transcript.startswith("> POST /api/v1/namespaces/conformance/pods/echo/portforward HTTP/1.1")
    assert "> Authorization: Bearer <redacted>" in transcript
    identity = json.loads(attachments["identity seen by the API server"].read_text())
    assert identity["user"] == "mallory" and identity["authenticated_as"] == "system:serviceaccount:jetstack:proxy"
    evidence = json.loads(attachments["cell evidence"].read_text())
    assert evidence["error_class"] == "wrong-identity"

    labels = {label["name"]: label["value"] for label in written["labels"]}
    parameters = {p["name"]: p["value"] for p in written["parameters"]}
    coordinates = {"target": "jetstack", "path": "l7-lb", "protocol": "spdy", "operation": "port-forward",
                   "client": "native"}
    for name, value in coordinates.items():
        assert labels[name] == value
        assert parameters[name].strip("'") == value
    assert labels["outcome"] == "fail"

    for path in alluredir.iterdir():  # every file allure wrote: results, attachments, containers
        assert JWT not in path.read_text(errors="replace"), path.name
