"""`pytest suites/` with and without `-n N` on the same selection, against the running lab.

    python benchmarks/xdist.py [--workers 2] [--repeat 1] [-- extra pytest args]

Default selection: `--target=jetstack --no-idle` (the issue's reference: 281 s with -n 2 against 110 s
without, before workers prefetched). Prints wall seconds of each run, their outcome counts, and the -n run
relative to the reference measured in the same invocation (the run without -n). Exit 1 if -n was slower
(beyond 5 %, the noise of a busy machine), or if the two runs disagree on any cell's outcome.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
from pathlib import Path

from suite_run import run  # benchmarks/ is on the path: these are scripts

DEFAULT_SELECTION = ["--target=jetstack", "--no-idle"]
SLOWER_TOLERANCE = 1.05


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="alternate the two runs this many times each")
    parser.add_argument("pytest_args", nargs="*", help="the selection (default: %(default)s)")
    args = parser.parse_args(argv)
    selection = args.pytest_args or DEFAULT_SELECTION
    times: dict[str, list[float]] = {"reference (no -n)": [], f"-n {args.workers}": []}
    outcomes: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            for label, extra in (
                ("reference (no -n)", selection),
                (f"-n {args.workers}", ["-n", str(args.workers), *selection]),
            ):
                seconds, seen = run(extra, Path(tmp) / f"{i}-{len(outcomes)}.json")
                times[label].append(seconds)
                counts = collections.Counter(seen.values())
                print(f"{label:>20}: {seconds:7.1f} s  {len(seen)} cells  {dict(sorted(counts.items()))}")
                if label in outcomes and outcomes[label].keys() != seen.keys():
                    print(f"{label}: a different set of cells than before")
                outcomes[label] = seen
    ref, par = (min(v) for v in times.values())
    print(f"best of {args.repeat}: reference {ref:.1f} s, -n {args.workers} {par:.1f} s: {ref / par:.2f}x the speed")
    ref_cells, par_cells = outcomes.values()
    differ = sorted(k for k in ref_cells.keys() | par_cells.keys() if ref_cells.get(k) != par_cells.get(k))
    for cell in differ[:20]:
        print(f"outcome differs: {cell}: {ref_cells.get(cell)} without -n, {par_cells.get(cell)} with -n")
    return 1 if par > ref * SLOWER_TOLERANCE or differ else 0


if __name__ == "__main__":
    sys.exit(main())
