"""The HTML report in a real headless Chromium: the answer-first views come first, the heat map has a
square per cell, the grid renders, filters hide exactly what they should, clicking a cell shows its
evidence, and hostile evidence stays text. Saves artifacts/report-html.png and report-html-views.png.

Needs Debian's chromium (scripts/setup.sh installs it) and Playwright for Python (the `test` extra); the
browser is Debian's, never a Playwright download. Missing either is a failure, not a skip: CI must not
pass without having looked.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.model import ErrorClass, Outcome, Results
from reports.html_report import render_html
from reports.sample import make_results, with_as_shipped
from reports.views import what_works

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.fail(f"the HTML report tests need Debian's chromium at {CHROMIUM}: "
                    "run `apt-get install -y chromium` (scripts/setup.sh does)", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the HTML report tests need Playwright for Python: pip install -e '.[test]'", pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def results() -> Results:
    run = with_as_shipped(make_results(400, seed=3))
    hostile = next(c for c in run.cells if c.outcome is Outcome.FAIL)
    hostile.evidence.error = f"proxy said {HOSTILE}"
    hostile.evidence.response_headers = {"X-Injected": HOSTILE}
    return run


@pytest.fixture
def page(browser: Any, results: Results, tmp_path: Path) -> Iterator[Any]:
    report = tmp_path / "report.html"
    report.write_text(render_html(results), "utf-8")
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    tab.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    tab.on("request", lambda req: problems.append(f"request: {req.url}") if not req.url.startswith("file:") else None)
    tab.goto(report.as_uri())
    yield tab
    context.close()
    assert problems == []  # no script error, no CSP violation, no network request


def _visible_ids(page: Any) -> set[str]:
    ids: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#grid button.c'))"
        ".filter(b => !b.hidden && b.offsetParent !== null).map(b => b.dataset.id)"
    )
    return set(ids)


def _toggle(page: Any, legend: str, label: str) -> None:
    page.locator("#filters fieldset", has=page.locator(f"legend:text-is('{legend}')")).get_by_label(
        label, exact=True).click()


def test_the_views_come_first_then_the_heat_map_then_the_grid(page: Any, results: Results) -> None:
    order = ["#in-short", "#what-works", "#which-kubectl", "#how-fast", "#heat", "#filters", "#grid"]
    tops = [page.locator(sel).bounding_box()["y"] for sel in order]
    assert tops == sorted(tops)
    for sel in order[:5]:
        assert page.locator(sel).is_visible(), sel
    targets = list(dict.fromkeys(r.target for r in what_works(results)))
    assert page.locator("#what-works h3").all_inner_texts() == targets
    assert page.locator("#what-works table.view").count() == len(targets)
    kubectl = page.locator("#which-kubectl").inner_text()
    assert "1.30+" in kubectl and "1.29 and older (SPDY): 400 Upgrade request required" in kubectl
    assert page.locator("#how-fast svg.chart").count() == 2
    assert page.locator("#how-fast svg.chart rect.bar").count() > 0


def test_the_heat_map_has_a_square_with_a_tooltip_per_cell(page: Any, results: Results) -> None:
    squares = page.locator("#heat svg rect.cell")
    assert squares.count() == len(results.cells)
    tips: list[str] = page.evaluate(
        "Array.from(document.querySelectorAll('#heat svg rect.cell')).map(r => r.querySelector('title').textContent)"
    )
    assert {t.split(": ")[0] for t in tips} == {c.id for c in results.cells}
    failing = next(c for c in results.cells if c.outcome is Outcome.FAIL)
    assert f"{failing.id}: fail ({failing.error_class.value})" in tips
    box = page.locator("#heat svg").bounding_box()
    assert box["width"] > 200 and box["height"] > 100  # drawn, not collapsed
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#views").screenshot(path=str(ARTIFACTS / "report-html-views.png"))


def test_grid_renders_every_cell(page: Any, results: Results) -> None:
    assert page.locator("#grid button.c").count() == len(results.cells)
    assert _visible_ids(page) == {c.id for c in results.cells}
    assert page.locator("#shown-count").inner_text() == str(len(results.cells))
    targets = page.locator("#grid section.target h2").all_inner_texts()
    assert targets == list(dict.fromkeys(c.key.target for c in results.cells))


def test_filters_hide_exactly_the_cells_they_should(page: Any, results: Results) -> None:
    _toggle(page, "Outcome", ". pass")
    expected = {c.id for c in results.cells if c.outcome is not Outcome.PASS}
    assert _visible_ids(page) == expected
    assert page.locator("#shown-count").inner_text() == str(len(expected))

    _toggle(page, "Target", "jetstack")
    _toggle(page, "Client", "native")
    expected = {c.id for c in results.cells
                if c.outcome is not Outcome.PASS and c.key.target != "jetstack" and c.key.client != "native"}
    assert _visible_ids(page) == expected
    assert page.locator("#grid section.target:has(h2:text-is('jetstack'))").is_hidden()

    page.locator("#filters fieldset", has=page.locator("legend:text-is('Outcome')")).locator(
        "button[data-bulk=none]").click()
    assert _visible_ids(page) == set()
    _toggle(page, "Outcome", "F fail")
    _toggle(page, "Path", "l4-lb")
    expected = {c.id for c in results.cells if c.outcome is Outcome.FAIL and c.key.target != "jetstack"
                and c.key.client != "native" and c.key.path != "l4-lb"}
    assert _visible_ids(page) == expected and expected


def test_clicking_a_cell_shows_its_evidence(page: Any, results: Results) -> None:
    failing = next(c for c in results.cells
                   if c.outcome is Outcome.FAIL and c.error_class is ErrorClass.UPGRADE_REQUIRED)
    passing = next(c for c in results.cells if c.outcome is Outcome.PASS and c.evidence.identity
                   and c.evidence.identity.authenticated_as)
    assert page.locator("#panel").is_hidden()

    page.locator(f"#grid button[data-id='{passing.id}']").click()
    panel = page.locator("#panel")
    assert panel.is_visible()
    text = panel.inner_text()
    assert passing.id in text
    identity = passing.evidence.identity
    assert identity is not None and identity.authenticated_as is not None
    for expected in (identity.user, identity.authenticated_as, ", ".join(identity.groups),
                     passing.evidence.transcript[0], "connect", "first byte", str(passing.evidence.bytes_sent)):
        assert expected in text, expected

    page.locator(f"#grid button[data-id='{failing.id}']").click()
    text = panel.inner_text()
    assert failing.id in text and "upgrade-required" in text
    assert failing.evidence.status_line is not None and failing.evidence.status_line in text
    assert failing.evidence.error is not None and failing.evidence.error in text
    page.keyboard.press("Escape")
    assert panel.is_hidden()


def test_the_needs_a_look_list_opens_evidence_too(page: Any, results: Results) -> None:
    worst = next(c for c in results.cells if c.outcome is Outcome.FAIL)  # the list is worst first
    page.locator("#look summary").click()
    entry = page.locator("#look button.open").first
    assert entry.inner_text() == worst.id
    entry.click()
    assert worst.id in page.locator("#panel").inner_text()


def test_hostile_evidence_stays_text(page: Any, results: Results) -> None:
    hostile = next(c for c in results.cells if c.evidence.error and HOSTILE in c.evidence.error)
    page.locator(f"#grid button[data-id='{hostile.id}']").click()
    text = page.locator("#panel").inner_text()
    assert HOSTILE in text  # shown literally
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#panel img, #panel script").count() == 0


def test_screenshot_for_people(page: Any, results: Results) -> None:
    # A failing cell with its evidence open, over the grid: what a person sees first. CI collects artifacts/.
    failing = next(c for c in results.cells if c.outcome is Outcome.FAIL and c.evidence.status_line
                   and c.evidence.identity is None and c.key.target == "direct")
    page.locator(f"#grid button[data-id='{failing.id}']").click()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-html.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
