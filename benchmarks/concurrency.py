"""`pytest suites/` at several `--concurrency` values on the same selection, against the running lab.

    python benchmarks/concurrency.py [--values 8,12,16] [--repeat 1] [-- extra pytest args]

Default selection: `--target=direct` (996 cells: every client, protocol and operation through the six lab
paths, idle cells included). Prints the wall seconds of each value and each relative to the default
(`conformance.plugin`'s `--concurrency`, measured in the same invocation). Exit 1 if a value other than the
default was faster by more than 10 % (the default should be re-chosen), or if the runs disagree on any
cell's outcome (more sessions at once must not change a verdict).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

from suite_run import run  # benchmarks/ is on the path: these are scripts

DEFAULT_SELECTION = ["--target=direct"]
FASTER_TOLERANCE = 1.10


def default_concurrency() -> int:
    from conformance.plugin import OPTIONS

    (option,) = [o for o in OPTIONS if o.name == "concurrency"]
    return int(option.default or 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", default="8,12,16", help="concurrency values to compare (the default is added)")
    parser.add_argument("--repeat", type=int, default=1, help="run every value this many times, interleaved")
    parser.add_argument("pytest_args", nargs="*", help="the selection (default: %(default)s)")
    args = parser.parse_args(argv)
    selection = args.pytest_args or DEFAULT_SELECTION
    default = default_concurrency()
    values = sorted({int(v) for v in args.values.split(",") if v.strip()} | {default})
    times: dict[int, list[float]] = {v: [] for v in values}
    outcomes: dict[int, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for value in values:
                seconds, seen = run([f"--concurrency={value}", *selection], Path(tmp) / f"{i}-{value}.json")
                times[value].append(seconds)
                counts = collections.Counter(seen.values())
                print(f"--concurrency={value:<3}: {seconds:7.1f} s  {len(seen)} cells  {dict(sorted(counts.items()))}")
                outcomes[value] = seen
    best = {v: min(t) for v, t in times.items()}
    for value, seconds in best.items():
        mark = " (the default)" if value == default else ""
        print(f"best of {args.repeat}: --concurrency={value}: {seconds:.1f} s, {best[default] / seconds:.2f}x the "
              f"default's speed{mark}")
    reference = outcomes[default]
    differ = sorted(
        f"{cell}: {reference.get(cell)} at {default}, {seen.get(cell)} at {value}"
        for value, seen in outcomes.items() for cell in reference.keys() | seen.keys()
        if reference.get(cell) != seen.get(cell)
    )
    for line in differ[:20]:
        print(f"outcome differs: {line}")
    faster = [v for v, s in best.items() if s * FASTER_TOLERANCE < best[default]]
    return 1 if faster or differ else 0


if __name__ == "__main__":
    sys.exit(main())
