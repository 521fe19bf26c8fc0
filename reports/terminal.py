"""The terminal report: the answer-first views, then a Cilium-style summary line and one line per
unexpected cell; the full grid (format `grid`) on request.

The default report fits a 120-column terminal (reports/views_text.py); the grid of a real matrix is
hundreds of columns wide, so it is printed by default only when it fits too, and otherwise named.
ASCII symbols carry the meaning (legend printed above the grid); colour is only added when the caller
says the stream is a TTY, so logs and CI output stay clean.
"""

from __future__ import annotations

import textwrap

from conformance.model import CellResult, Outcome, Results
from reports.evidence import key_evidence
from reports.grid import ABSENT, SYMBOLS, Matrix, build_matrix, summary_line, unexpected
from reports.scrub import redacted_results, scrub_text
from reports.text import one_line, printable
from reports.views_text import WIDTH, views_lines

MAX_UNEXPECTED_LINES = 50  # past this the Markdown or HTML report is the better read
_ANSI = {
    Outcome.PASS: "32",
    Outcome.EXPECTED_FAIL: "36",
    Outcome.UNEXPECTED_PASS: "1;33",
    Outcome.FAIL: "1;31",
    Outcome.ERROR: "1;35",
    Outcome.SKIP: "2",
}
_SYMBOL_OUTCOME = {s: o for o, s in SYMBOLS.items()}


def render_terminal(results: Results, *, color: bool = False, max_unexpected: int = MAX_UNEXPECTED_LINES) -> str:
    """The views (What works, Which kubectl, How fast), the grid if it fits WIDTH, then the gate summary."""
    safe = redacted_results(results)
    matrix = build_matrix(safe)
    grid = _grid(matrix, color=False)
    fits = max((len(line) for line in grid), default=0) <= WIDTH
    lines = [_title(safe), "", *views_lines(safe), ""]
    if fits:
        lines += ["FULL GRID", *_grid_head(matrix, color), "", *_grid(matrix, color)]
    else:
        lines.append(
            f"The full grid ({len(safe.cells)} cells) is {max(len(line) for line in grid)} columns wide: "
            "`conformance report RESULTS --format grid`."
        )
    lines += ["", _paint_summary(summary_line(safe), color), *_unexpected_lines(safe, color, max_unexpected)]
    # Redact first, then wrap: a wrapped token would no longer match redaction's patterns.
    return "".join(_fit(line) + "\n" for line in scrub_text("\n".join(lines)).split("\n"))


def _fit(line: str) -> str:
    """A line longer than WIDTH wrapped onto indented continuation lines (an unexpected cell's evidence)."""
    if len(line) <= WIDTH:
        return line
    return "\n".join(textwrap.wrap(line, WIDTH, subsequent_indent=" " * 6, break_on_hyphens=False))


def render_grid(results: Results, *, color: bool = False, max_unexpected: int = MAX_UNEXPECTED_LINES) -> str:
    """The full grid however wide, with its legend, then the gate summary (format `grid`)."""
    safe = redacted_results(results)
    matrix = build_matrix(safe)
    lines = [
        _title(safe),
        *_grid_head(matrix, color),
        "",
        *_grid(matrix, color),
        "",
        _paint_summary(summary_line(safe), color),
        *_unexpected_lines(safe, color, max_unexpected),
    ]
    return scrub_text("\n".join(lines) + "\n")


def _title(results: Results) -> str:
    meta = results.meta
    return printable(
        f"streaming conformance: {len(results.cells)} cells, started {meta.started}"
        + (f", runner {meta.runner}" if meta.runner else "")
        + (f", cluster {meta.cluster_version}" if meta.cluster_version else "")
    )


def _grid_head(matrix: Matrix, color: bool) -> list[str]:
    return [
        "legend: " + "  ".join(f"{_paint(s, color)} {o.value}" for o, s in SYMBOLS.items()) + f"  {ABSENT} not run",
        printable("each grid cell: one symbol per client, in order: " + " ".join(matrix.clients)),
    ]


def unexpected_lines(results: Results, *, color: bool = False, limit: int = MAX_UNEXPECTED_LINES) -> list[str]:
    """One line per fail, error and unexpected-pass cell (worst first): for a pytest terminal summary."""
    return [scrub_text(line) for line in _unexpected_lines(redacted_results(results), color, limit)]


def _unexpected_lines(results: Results, color: bool, limit: int) -> list[str]:
    cells = unexpected(results)
    lines = [_unexpected_line(c, color) for c in cells[:limit]]
    if len(cells) > limit:
        lines.append(f"  ... and {len(cells) - limit} more: see the Markdown or HTML report")
    return lines


def _unexpected_line(cell: CellResult, color: bool) -> str:
    symbol = _paint(SYMBOLS[cell.outcome], color)
    outcome, error_class = cell.outcome.value, cell.error_class.value
    return f"  {symbol} {outcome:<15} {error_class:<19} {one_line(cell.id, 100)}  {key_evidence(cell)}"


def _grid(matrix: Matrix, color: bool) -> list[str]:
    width = max(len(matrix.clients), 1)
    col_width = {col: max(len(one_line(col[1])), width) for col in matrix.columns}
    labels = [one_line(f"{t}/{p}") for t in matrix.targets for p in matrix.paths[t]]
    label_width = max([len("target/path"), *(len(label) for label in labels)])
    groups = matrix.protocols()
    group_width = [sum(col_width[(proto, op)] + 1 for op in ops) - 1 for proto, ops in groups]
    sep = "  "
    proto_row = (
        " " * label_width
        + sep
        + sep.join(one_line(p, w).ljust(w) for (p, _), w in zip(groups, group_width, strict=True))
    )
    op_row = (
        "target/path".ljust(label_width)
        + sep
        + sep.join(" ".join(one_line(op).ljust(col_width[(proto, op)]) for op in ops) for proto, ops in groups)
    )
    lines = [proto_row.rstrip(), op_row.rstrip()]
    for target in matrix.targets:
        for path in matrix.paths[target]:
            cells = sep.join(
                " ".join(_slot(matrix, target, path, (proto, op), col_width[(proto, op)], color) for op in ops)
                for proto, ops in groups
            )
            lines.append((one_line(f"{target}/{path}").ljust(label_width) + sep + cells).rstrip())
    return lines


def _slot(matrix: Matrix, target: str, path: str, column: tuple[str, str], width: int, color: bool) -> str:
    symbols = "".join(ABSENT if c is None else SYMBOLS[c.outcome] for c in matrix.slot(target, path, column))
    padded = symbols.ljust(width)  # pad before colouring: escape codes have no width
    return "".join(_paint(ch, color) for ch in padded) if color else padded


def _paint(symbol: str, color: bool) -> str:
    outcome = _SYMBOL_OUTCOME.get(symbol)
    if not color or outcome is None:
        return symbol
    return f"\x1b[{_ANSI[outcome]}m{symbol}\x1b[0m"


def _paint_summary(line: str, color: bool) -> str:
    if not color:
        return line
    return f"\x1b[{'1;31' if line.startswith('FAILED') else '1;32'}m{line}\x1b[0m"
