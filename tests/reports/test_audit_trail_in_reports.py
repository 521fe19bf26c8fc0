"""The audit trail through an impersonating proxy is shown with each cell's evidence."""

from __future__ import annotations

from conformance.model import CellResult, ErrorClass, Identity, Outcome
from reports.evidence import key_evidence
from reports.markdown import render_markdown
from reports.terminal import render_terminal
from tests.reports.builders import build_cell, build_results

BROKEN = "broken: the proxy authenticated 'alice' but the API server ran 'mallory'"


def _broken_cell() -> CellResult:
    return build_cell(
        target="jetstack-0.3",
        outcome=Outcome.FAIL,
        error_class=ErrorClass.AUDIT_CHAIN_BROKEN,
        audit_trail=BROKEN,
        proxy_identity=Identity(user="alice", groups=["devs"], source="proxy-audit"),
    )


def test_key_evidence_names_the_trail() -> None:
    assert f"audit trail {BROKEN}" in key_evidence(_broken_cell())


def test_markdown_and_terminal_show_a_broken_trail_and_who_the_proxy_authenticated() -> None:
    results = build_results([_broken_cell()])
    text = render_markdown(results)
    assert f"audit trail `{BROKEN}`" in text and "proxy authenticated `alice`" in text
    assert BROKEN in " ".join(render_terminal(results).split())  # long evidence wraps at 120 columns
