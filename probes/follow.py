"""Long-lived reads: attach to the pod's main process and `logs -f`, each held for a moment.

Both check what they claim. The lab workload writes `tick N` lines with N increasing (every 0.2 s); a
user's workload may write anything, so the tick checks apply when the output has ticks. attach: the lines
are the process's live output (ticks strictly increasing, nothing else). logs -f: only lines *produced
after the stream was opened* count, told apart by the timestamps the API server adds; a stream that
delivers the history and then nothing new fails.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re

from conformance.model import ErrorClass, Observation
from probes.common import ProbeContext, failed, observed

# Long enough for kubectl to start and make its requests on a loaded machine before two 0.2 s ticks arrive:
# at 0.8 s, passing kubectl cells through every kube-oidc-proxy target had 2-3 lines, and some got 1.
HOLD_S = 1.5
MIN_LINES = 2
# Lines stamped at least this long after the request started count as new: history the server sends on
# open cannot carry them unless opening took longer than this (then the cell fails, which is the truth).
NEW_AFTER_S = 0.4
HISTORY_LINES = 20  # a long-running workload's whole log would crowd out the new lines
TICK = re.compile(r"^tick (\d+)$")


def tick_numbers(lines: list[str]) -> list[int] | None:
    """The tick numbers, or None when the lines are not (all) ticks."""
    numbers = []
    for line in lines:
        m = TICK.match(line.strip())
        if m is None:
            return None
        numbers.append(int(m.group(1)))
    return numbers


def increasing(numbers: list[int]) -> bool:
    return all(b > a for a, b in itertools.pairwise(numbers))


def stamped(data: bytes) -> list[tuple[dt.datetime | None, str]]:
    """`<RFC 3339> text` lines (logs with timestamps=true) as (time, text); time None where unparsable."""
    out: list[tuple[dt.datetime | None, str]] = []
    for raw in data.decode("utf-8", "replace").splitlines():
        stamp, _, text = raw.partition(" ")
        out.append((_parse_time(stamp), text))
    return out


def _parse_time(stamp: str) -> dt.datetime | None:
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", stamp)
    if m is None:
        return None
    frac = (m.group(2) or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return dt.datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")


def judge_follow(data: bytes, requested_at: dt.datetime) -> tuple[ErrorClass, str]:
    """NONE with a summary, or the class and message of what is wrong with a `logs -f --timestamps` stream."""
    lines = stamped(data)
    if not lines:
        return ErrorClass.DATA_MISMATCH, "logs -f delivered no line at all"
    if any(t is None for t, _ in lines):
        return ErrorClass.DATA_MISMATCH, "the log lines carry no timestamps: new lines cannot be told from history"
    cutoff = requested_at + dt.timedelta(seconds=NEW_AFTER_S)
    new = [text for t, text in lines if t is not None and t >= cutoff]
    ticks = tick_numbers([text for _, text in lines])
    if ticks is not None and not increasing(ticks):
        return ErrorClass.DATA_MISMATCH, f"the ticks are out of order: {ticks[:8]}..."
    if len(new) < MIN_LINES:
        return ErrorClass.DATA_MISMATCH, (
            f"{len(new)} line(s) produced after the stream opened ({len(lines)} with the history), "
            f"expected at least {MIN_LINES} in {HOLD_S:.1f}s: the follow delivered history, not new lines"
        )
    return ErrorClass.NONE, f"followed for {HOLD_S:.1f}s: {len(new)} new lines after {len(lines) - len(new)} of history"


async def probe_attach(ctx: ProbeContext) -> Observation:
    result = await ctx.client.attach(ctx.session, ctx.pod, ctx.container, protocol=ctx.protocol, seconds=HOLD_S)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    lines = result.stdout.decode("utf-8", "replace").splitlines()
    if len(lines) < MIN_LINES:
        return failed(result, ErrorClass.DATA_MISMATCH,
                      f"{len(lines)} line(s) in {HOLD_S:.1f}s of attach, expected at least {MIN_LINES}")
    ticks = tick_numbers(lines)
    if ticks is not None and not increasing(ticks):
        return failed(result, ErrorClass.DATA_MISMATCH, f"attach delivered ticks out of order: {ticks[:8]}")
    if ticks is None and ctx.workload_ticks:
        return failed(result, ErrorClass.DATA_MISMATCH,
                      f"attach delivered something other than the workload's ticks: {result.stdout[:80]!r}")
    result.evidence.bytes_verified = len(result.stdout)
    what = f"ticks {ticks[0]}..{ticks[-1]}" if ticks else f"{len(lines)} lines"
    return observed(result, f"attached for {HOLD_S:.1f}s: {what}, live and in order")


async def probe_logs_follow(ctx: ProbeContext) -> Observation:
    requested_at = dt.datetime.now(dt.UTC)
    result = await ctx.client.logs_follow(
        ctx.session, ctx.pod, ctx.container, seconds=HOLD_S, timestamps=True, tail_lines=HISTORY_LINES
    )
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    cls, message = judge_follow(result.stdout, requested_at)
    if cls is not ErrorClass.NONE:
        return failed(result, cls, message)
    result.evidence.bytes_verified = len(result.stdout)
    return observed(result, message)
