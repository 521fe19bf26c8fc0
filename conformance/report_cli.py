"""`conformance report`: render, diff and merge results files.

conformance report RESULTS [--format terminal|grid|md|html|junit|json] [--output FILE]
conformance report diff OLD NEW [--format terminal|md] [--output FILE]    exits 1 on a regression
conformance report merge A B ... --output FILE

(A results file literally named "diff" or "merge" can be given as ./diff.)
"""

from __future__ import annotations

import argparse
import os
import sys

from conformance.errors import ConfigError

RENDER_FORMATS = ("terminal", "grid", "md", "html", "junit", "json")
DIFF_FORMATS = ("terminal", "md")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # One positional list rather than sub-subcommands: argparse cannot make `report RESULTS` and
    # `report diff OLD NEW` both work with subparsers, so run() dispatches on the first word.
    parser = subparsers.add_parser(
        "report",
        help="render, diff or merge results files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("items", nargs="+", metavar="RESULTS | diff OLD NEW | merge FILE ...")
    parser.add_argument(
        "--format", "-f", choices=RENDER_FORMATS, default=None,
        help="default: terminal (the views, 120 columns); grid: the full matrix however wide",
    )
    parser.add_argument("--output", "-o", default=None, help="write here instead of standard output")
    parser.add_argument(
        "--color", choices=("auto", "always", "never"), default="auto", help="terminal colour (auto: only on a TTY)"
    )
    parser.add_argument(
        "--slower-pct", type=float, default=50.0, help="diff: flag a cell whose total time grew by more than this %%"
    )
    parser.add_argument(
        "--slower-ms", type=float, default=200.0, help="diff: ...and by more than this many milliseconds"
    )


def run(args: argparse.Namespace) -> int:
    items: list[str] = args.items
    if items[0] == "diff":
        return _diff(args, items[1:])
    if items[0] == "merge":
        return _merge(args, items[1:])
    if len(items) != 1:
        raise ConfigError(f"report: give one results file to render, got {len(items)}; did you mean `report merge`?")
    from reports.render import render
    from reports.schema import load_results

    results = load_results(items[0])
    fmt = args.format or "terminal"
    _emit(args, render(results, fmt, color=_color(args)))
    return 0


def _diff(args: argparse.Namespace, files: list[str]) -> int:
    if len(files) != 2:
        raise ConfigError(f"report diff: give OLD and NEW results files, got {len(files)}")
    fmt = args.format or "terminal"
    if fmt not in DIFF_FORMATS:
        raise ConfigError(f"report diff: --format {fmt} is not available; choose {' or '.join(DIFF_FORMATS)}")
    from reports.diff import diff_results, render_diff_markdown, render_diff_terminal
    from reports.schema import load_results

    diff = diff_results(
        load_results(files[0]), load_results(files[1]), slower_pct=args.slower_pct, slower_ms=args.slower_ms
    )
    text = render_diff_markdown(diff) if fmt == "md" else render_diff_terminal(diff, color=_color(args))
    _emit(args, text)
    return 1 if diff.has_regressions else 0


def _merge(args: argparse.Namespace, files: list[str]) -> int:
    if len(files) < 2:
        raise ConfigError(f"report merge: give at least two results files, got {len(files)}")
    if not args.output:
        raise ConfigError("report merge: --output FILE is required")
    if args.format not in (None, "json"):
        raise ConfigError("report merge: the merged file is always JSON; render it with `conformance report`")
    from reports.json_report import write_results
    from reports.merge import merge_files

    merged = merge_files(files)
    path = write_results(merged, args.output)
    prefixed = [m.label for m in merged.meta.merged_from if m.prefixed]
    note = f"; targets prefixed for {', '.join(dict.fromkeys(prefixed))}" if prefixed else ""
    print(f"merged {len(files)} files, {len(merged.cells)} cells -> {path}{note}")
    return 0


def _color(args: argparse.Namespace) -> bool:
    if args.output or args.color == "never":
        return False
    if args.color == "always":
        return True
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ  # the no-color.org convention


def _emit(args: argparse.Namespace, text: str) -> None:
    if args.output:
        from reports.output import write_text_atomic

        path = write_text_atomic(args.output, text)
        print(f"wrote {path}", file=sys.stderr)
    else:
        sys.stdout.write(text)
