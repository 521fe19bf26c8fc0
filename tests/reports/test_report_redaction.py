"""A token planted in a run's evidence appears in no report format.

Two tokens: a JWT (caught by pattern, never registered) and an opaque static token (caught only because
it is registered). They are planted everywhere evidence can carry text. The second test switches off the
renderers' input redaction to prove the pass over their finished output catches the tokens on its own.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.model import ErrorClass, Identity, Outcome, Results
from conformance.redact import register_secret
from reports import html_report, json_report, junit, markdown, terminal
from reports.diff import diff_results, render_diff_markdown, render_diff_terminal
from reports.merge import merge_results
from reports.plain import plain
from reports.render import FORMATS, render
from reports.sample import make_results
from reports.scrub import scrub_text

JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6InBsYW50ZWQifQ"
    ".eyJzdWIiOiJhbGljZSIsImF1ZCI6Imt1YmVybmV0ZXMiLCJwbGFudGVkIjp0cnVlfQ"
    ".cGxhbnRlZC1zaWduYXR1cmUtYnl0ZXMtZm9yLXRoZS10ZXN0"
)
OPAQUE = register_secret("opaque-static-token-7f3a9c1e5b2d")
WS_TOKEN = base64.urlsafe_b64encode(JWT.encode()).decode().rstrip("=")
# Distinctive pieces: none may survive, even split off from the rest of its token.
FRAGMENTS = [JWT, JWT.split(".")[1], JWT.split(".")[2], OPAQUE, WS_TOKEN]


def _planted() -> Results:
    results = make_results(40, seed=11)
    results.meta.runner = f"runner-with-{OPAQUE}"
    results.meta.cluster_version = f"v1.36 {JWT}"
    for index in (0, 5, 17):
        cell = results.cells[index]
        cell.outcome, cell.error_class = Outcome.FAIL, ErrorClass.UNAUTHORIZED
        cell.message = f"401 for token {OPAQUE}"
        cell.expectation.reason = f"declared with {JWT}"
        ev = cell.evidence
        ev.status_line = f"HTTP/1.1 401 Unauthorized {OPAQUE}"
        ev.error = f'Unauthorized: invalid bearer token "{JWT}" (static token {OPAQUE})'
        ev.body_excerpt = f'{{"message":"token {JWT} rejected","token":"{OPAQUE}"}}'
        ev.response_headers = {
            "Authorization": f"Bearer {JWT}",
            "X-Debug-Token": OPAQUE,
            f"X-Echo-{OPAQUE}": "a header name can carry it too",
            "Www-Authenticate": f'Bearer realm="kubernetes", token="{JWT}"',
        }
        ev.transcript = [
            "> GET /api/v1/namespaces/conformance/pods/echo/exec HTTP/1.1",
            f"> Authorization: Bearer {OPAQUE}",
            f"> Sec-WebSocket-Protocol: v5.channel.k8s.io, base64url.bearer.authorization.k8s.io.{WS_TOKEN}",
            f"< body: {JWT}",
        ]
        ev.notes = [f"kubeconfig token was {OPAQUE}", f"id_token={JWT}"]
        ev.identity = Identity(user="alice", extra={"token": [JWT], OPAQUE: ["x"]}, credential_id=f"JTI={OPAQUE}")
    return results


def _assert_clean(name: str, text: str) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in text, f"{name} leaks {fragment[:12]}..."


def _every_output(results: Results) -> dict[str, str]:
    outputs = {fmt: render(results, fmt) for fmt in FORMATS}
    outputs["terminal, coloured"] = render(results, "terminal", color=True)
    before = make_results(40, seed=11)
    outputs["diff terminal"] = render_diff_terminal(diff_results(before, results))
    outputs["diff md"] = render_diff_markdown(diff_results(before, results))
    merged = merge_results([("a.json", results), ("b.json", dataclasses.replace(results, meta=before.meta))])
    outputs["merged json"] = render(merged, "json")
    return outputs


def test_planted_tokens_appear_in_no_report_format() -> None:
    results = _planted()
    for name, text in _every_output(results).items():
        _assert_clean(name, text)
    html = render(results, "html")
    assert "&lt;redacted&gt;" in html and "Unauthorized: invalid bearer" in html  # redacted, not dropped


def test_the_pass_over_finished_output_catches_tokens_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate a bug that skips input redaction: each renderer's output pass must still catch every token.
    for module in (terminal, markdown):
        monkeypatch.setattr(module, "redacted_results", lambda r: r)
    monkeypatch.setattr(junit, "redacted_both", lambda r: (r, plain(r)))
    for module in (html_report, json_report):
        monkeypatch.setattr(module, "redacted_document", lambda r: r.to_dict())
    monkeypatch.setattr(html_report, "redact", lambda s: s)  # and the per-string redaction inside the HTML
    results = _planted()
    for fmt in FORMATS:
        text = render(results, fmt)
        _assert_clean(fmt, text)
    json.loads(render(results, "json"))  # still valid JSON after the text-level pass
    page = render(results, "html")
    data = page.split('<script id="cells-data" type="application/json">')[1].split("</script>")[0]
    json.loads(data)  # and the page's embedded data still parses


@pytest.mark.parametrize(
    ("text", "markers", "escape", "expected"),
    [
        ("Authorization: Bearer <redacted>`", ("<redacted>",), None, "Authorization: Bearer <redacted>`"),
        (f"token `{JWT}`", ("<redacted>",), None, "token `<redacted>`"),
        ("Bearer &lt;redacted&gt;;x", ("&lt;redacted&gt;",), None, "Bearer &lt;redacted&gt;;x"),
        (f"<p>{JWT}</p>", ("&lt;redacted&gt;",), lambda s: s.replace("<", "&lt;").replace(">", "&gt;"),
         "<p>&lt;redacted&gt;</p>"),
    ],
)
def test_scrub_text_leaves_earlier_redaction_alone(
    text: str, markers: tuple[str, ...], escape: Callable[[str], str] | None, expected: str
) -> None:
    assert scrub_text(text, markers=markers, escape=escape) == expected


def test_written_files_are_clean(tmp_path: Path) -> None:
    from reports.render import SUFFIXES, write_report

    for fmt in FORMATS:
        _assert_clean(fmt, write_report(_planted(), fmt, tmp_path / f"r{SUFFIXES[fmt]}").read_text("utf-8"))
