"""The HTML report read as text: self-contained, every cell present, everything escaped.

Behaviour in a real browser (filters, clicking) is in test_html_in_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from conformance.model import ErrorClass, Outcome
from reports.html_report import render_html
from reports.sample import make_results
from tests.reports.builders import CellFactory, build_results


def test_every_cell_is_a_box_in_the_grid() -> None:
    results = make_results(250, seed=6)
    page = render_html(results)
    ids = re.findall(r'<button type="button" class="c o-[a-z-]+ k\d+" [^>]*data-id="([^"]+)"', page)
    assert sorted(ids) == sorted(c.id for c in results.cells)
    for target in {c.key.target for c in results.cells}:
        assert f'<section class="target"><h2>{target}</h2>' in page


def test_self_contained_with_a_strict_content_security_policy() -> None:
    page = render_html(make_results(40, seed=6))
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert not re.search(r"\b(src|href)=", page)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert csp is not None and csp.group(1).startswith("default-src 'none';")
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert style is not None and script is not None
    for body in (style.group(1), script.group(1)):
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp.group(1)


def test_evidence_is_escaped_in_markup_and_in_the_embedded_data(cell: CellFactory) -> None:
    payload = '</script><script>alert(1)</script><img src=x onerror=alert(2)>"\'&'
    hostile = cell(target="<b>t</b>", outcome=Outcome.FAIL, error_class=ErrorClass.PROXY_ERROR, error=payload,
                   body_excerpt=payload, response_headers={payload: payload})
    page = render_html(build_results([hostile], runner=payload))
    assert payload not in page and "<b>t</b>" not in page and "<img" not in page
    assert page.count("<script") == 2  # the data block and the page's own script, nothing else
    assert "&lt;b&gt;t&lt;/b&gt;" in page
    data = re.search(r'<script id="cells-data" type="application/json">(.*?)</script>', page, re.S)
    assert data is not None and "<" not in data.group(1)
    assert json.loads(data.group(1))[0]["evidence"]["error"] == payload


def test_filters_offer_every_target_path_client_and_outcome() -> None:
    results = make_results(200, seed=6)
    page = render_html(results)
    labels = re.findall(r'<input type="checkbox" data-dim="(\w)" value="[^"]*" checked> ([^<]+)</label>', page)
    by_dim: dict[str, set[str]] = {}
    for dim, label in labels:
        by_dim.setdefault(dim, set()).add(label)
    assert by_dim["t"] == {c.key.target for c in results.cells}
    assert by_dim["p"] == {c.key.path for c in results.cells}
    assert by_dim["c"] == {c.key.client for c in results.cells}
    assert {label.split()[1] for label in by_dim["o"]} == {c.outcome.value for c in results.cells}
