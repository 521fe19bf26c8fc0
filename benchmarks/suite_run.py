"""One `pytest suites/` run for the benchmarks: wall seconds and each cell's outcome."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def run(extra: list[str], results: Path) -> tuple[float, dict[str, str]]:
    argv = [sys.executable, "-m", "pytest", "suites/", "-q", "-p", "no:cacheprovider", f"--results={results}", *extra]
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1) or not results.exists():
        sys.exit(f"pytest {' '.join(extra)} ended with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    cells = json.loads(results.read_text())["cells"]
    return seconds, {"-".join(c["key"].values()): c["outcome"] for c in cells}
