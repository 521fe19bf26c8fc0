"""Reports: one results model (conformance.model.Results) rendered as terminal text, Markdown, HTML,
JUnit XML and JSON; diffed and merged. The human formats answer first (reports/views.py: What works,
Which kubectl, How fast), then show the gate and the grid. See docs/reports.md.

What the pytest plugin calls:
    write_results(results, path)            the results document (validated, redacted, atomic)
    write_report(results, fmt, path)        one report file; fmt in FORMATS
    render(results, fmt, color=...)         a report as text
    summary_line(results), unexpected_lines(results, color=...)   for pytest_terminal_summary
    reports.allure.attach_cell(cell)        per test, when allure-pytest is active
"""

from __future__ import annotations

from reports.grid import summary_line
from reports.json_report import write_results
from reports.render import FORMATS, render, write_report
from reports.schema import load_results, validate
from reports.terminal import unexpected_lines

__all__ = [
    "FORMATS",
    "load_results",
    "render",
    "summary_line",
    "unexpected_lines",
    "validate",
    "write_report",
    "write_results",
]
