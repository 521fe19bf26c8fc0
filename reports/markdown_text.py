"""Untrusted text in Markdown: only ever inside a code span."""

from __future__ import annotations

from reports.text import one_line


def code(text: str, *, in_table: bool = False) -> str:
    """`text` as an inline code span: fenced with more backticks than it contains, on one line."""
    flat = one_line(text, 300)
    longest = run = 0
    for ch in flat:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    span = f"{fence}{pad}{flat}{pad}{fence}"
    # GFM splits table cells on "|" before it parses code spans.
    return span.replace("|", "\\|") if in_table else span
