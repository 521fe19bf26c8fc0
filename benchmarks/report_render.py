"""Render a 5,000-cell results file to every report format and time each one.

    python benchmarks/report_render.py [--cells 5000] [--seed 1] [--output-dir DIR]

Prints seconds per step, the total, and each step relative to a reference measured in the same run on
the same document: `json.dumps` of the results document (the least any report can cost).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from reports.json_report import write_results
from reports.render import FORMATS, SUFFIXES, render
from reports.sample import make_results
from reports.schema import load_results

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", type=Path, default=None, help="keep the reports here (default: a temp dir)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        out = args.output_dir or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        results_file = out / "results.json"
        write_results(make_results(args.cells, args.seed), results_file)

        results, load_s = timed(lambda: load_results(results_file))
        doc = results.to_dict()
        _, reference_s = timed(lambda: json.dumps(doc))

        rows: list[tuple[str, float, int]] = [("load + validate", load_s, results_file.stat().st_size)]
        for fmt in FORMATS:
            text, seconds = timed(lambda fmt=fmt: render(results, fmt))  # type: ignore[misc]
            (out / f"report{SUFFIXES[fmt]}").write_text(text, "utf-8")
            rows.append((fmt, seconds, len(text.encode("utf-8"))))

        total = sum(seconds for _, seconds, _ in rows)
        print(f"{args.cells} cells, reference json.dumps of the document: {reference_s:.3f} s")
        print(f"{'step':<16} {'seconds':>8} {'x ref':>7} {'bytes':>11}")
        for name, seconds, size in rows:
            print(f"{name:<16} {seconds:>8.3f} {seconds / reference_s:>7.1f} {size:>11,}")
        print(f"{'total':<16} {total:>8.3f} {total / reference_s:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
