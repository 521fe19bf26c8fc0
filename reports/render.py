"""Every report format by name: render one to text, or write it to a file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conformance.errors import ConfigError
from conformance.model import Results
from reports.html_report import render_html
from reports.json_report import render_json
from reports.junit import render_junit
from reports.markdown import render_markdown
from reports.output import write_text_atomic
from reports.terminal import render_grid, render_terminal

Renderer = Callable[[Results], str]
FORMATS: dict[str, Renderer] = {
    "terminal": render_terminal,
    "grid": render_grid,
    "md": render_markdown,
    "html": render_html,
    "junit": render_junit,
    "json": render_json,
}
SUFFIXES = {"terminal": ".txt", "grid": ".txt", "md": ".md", "html": ".html", "junit": ".xml", "json": ".json"}


def render(results: Results, fmt: str, *, color: bool = False) -> str:
    """`results` as format `fmt` (one of FORMATS); `color` only matters for the terminal formats."""
    if fmt == "terminal":
        return render_terminal(results, color=color)
    if fmt == "grid":
        return render_grid(results, color=color)
    try:
        renderer = FORMATS[fmt]
    except KeyError:
        raise ConfigError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}") from None
    return renderer(results)


def write_report(results: Results, fmt: str, path: str | Path) -> Path:
    """Render `results` as `fmt` into `path` (atomically, parents created); returns the path."""
    return write_text_atomic(path, render(results, fmt))
