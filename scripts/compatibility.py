"""Regenerate the generated part of docs/compatibility.md from a results file: the versions, the
answer-first views (In short, What works, Which kubectl, How fast), then the detail (the Markdown report
without its title, under the document's own).

    pytest suites/ --target=all --results=artifacts/results.json
    python scripts/compatibility.py artifacts/results.json [--doc docs/compatibility.md]
"""

from __future__ import annotations

import sys
from pathlib import Path

from reports.markdown import render_markdown
from reports.schema import load_results

DOC = Path(__file__).resolve().parents[1] / "docs" / "compatibility.md"
START, END = "<!-- generated:start -->", "<!-- generated:end -->"


def main(argv: list[str]) -> int:
    doc = DOC
    if len(argv) == 3 and argv[1] == "--doc":
        doc = Path(argv[2])
    elif len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    results = load_results(Path(argv[0]))
    text = doc.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    doc.write_text(f"{head}{START}\n{render_markdown(results, title=None)}\n{END}{tail}")
    print(f"updated {doc} from {argv[0]} ({len(results.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
