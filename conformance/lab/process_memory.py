"""Resident memory of lab processes, read from /proc (Linux), for `conformance lab status`.

Each lab process leads its own session (the supervisor starts it so), and some fork helpers (nginx's
worker, kwok's exec'd commands), so a component's memory is the sum of VmRSS over its session.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def _session_of(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[3]) if len(fields) > 3 else None  # state, ppid, pgrp, session


def vm_rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB; 0 if it is gone (or a zombie, which has no VmRSS line)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return 0


def _all_pids() -> Iterable[int]:
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            yield int(entry.name)


def session_rss_kib(leaders: Iterable[int]) -> dict[int, int]:
    """{session leader pid: total VmRSS in KiB of every live process in its session}."""
    totals = dict.fromkeys(leaders, 0)
    if not totals:
        return {}
    for pid in _all_pids():
        session = _session_of(pid)
        if session in totals:
            totals[session] += vm_rss_kib(pid)
    return totals
