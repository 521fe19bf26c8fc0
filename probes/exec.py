"""exec: stdout, stderr and exit code; exec with stdin half-close; an exec session that stays silent."""

from __future__ import annotations

import os

from conformance.model import ErrorClass, Observation
from probes.common import ProbeContext, failed, mismatch, no_idle_probe, observed, verify_bytes

EXIT_CODE = 3
STDIN_BYTES = 256 * 1024


async def probe_exec(ctx: ProbeContext) -> Observation:
    script = f"echo out-{ctx.marker}; echo err-{ctx.marker} >&2; exit {EXIT_CODE}"
    result = await ctx.client.exec(
        ctx.session, ctx.pod, ctx.container, ["sh", "-c", script], protocol=ctx.protocol, expect_exit=EXIT_CODE
    )
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    if result.stdout != f"out-{ctx.marker}\n".encode():
        return mismatch(result, f"stdout {result.stdout[:80]!r} is not the echoed marker")
    if f"err-{ctx.marker}".encode() not in result.stderr:
        return mismatch(result, f"stderr {result.stderr[:80]!r} lacks the marker")
    if result.exit_code != EXIT_CODE:
        return mismatch(result, f"exit code {result.exit_code}, expected {EXIT_CODE}")
    result.evidence.bytes_verified = len(result.stdout)
    return observed(result, f"stdout, stderr and exit code {EXIT_CODE} as sent")


async def probe_exec_stdin(ctx: ProbeContext) -> Observation:
    """`cat` ends only when it sees end of input: the cell passes only if the client really half-closed stdin,
    `cat` echoed every byte and exited 0. A client that cannot half-close is a skip with the reason; a
    half-close that never reaches the process (it never exits) is `eof-lost`."""
    payload = os.urandom(STDIN_BYTES)
    result = await ctx.client.exec(
        ctx.session, ctx.pod, ctx.container, ["sh", "-c", f"cat # {ctx.marker}"], protocol=ctx.protocol, stdin=payload
    )
    # Native clients only offer protocols that can half-close, and close once every byte is sent.
    all_sent = result.evidence.bytes_sent >= len(payload)
    result.evidence.bytes_sent = len(payload)
    if result.stdin_closed is False and result.error_class is ErrorClass.NONE:
        return Observation(
            error_class=ErrorClass.NONE,
            evidence=result.evidence,
            skipped=True,
            message=f"client {ctx.client.name} cannot half-close stdin here: {result.message}",
        )
    if result.error_class is ErrorClass.TIMEOUT and (result.stdin_closed or (result.stdin_closed is None and all_sent)):
        # The client half-closed, and `cat` never ended: the end of input was lost on the way.
        text = f"stdin was half-closed, and `cat` never exited: {result.message}"
        return failed(result, ErrorClass.EOF_LOST, text)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    problem = verify_bytes(payload, result.stdout, "cat's output")
    if problem:
        return failed(result, *problem)
    if result.exit_code is not None and result.exit_code != 0:
        return mismatch(result, f"cat exited {result.exit_code} after stdin was closed, expected 0")
    result.evidence.bytes_verified = len(payload)
    return observed(result, f"{len(payload)} bytes echoed after stdin half-close, exit 0")


async def probe_exec_idle(ctx: ProbeContext) -> Observation:
    """An exec session that stays silent for the idle period, then must still carry a line both ways and exit
    0: `sh -c 'read a; echo got-$a; read b; echo done-$b'`."""
    idle_probe = getattr(ctx.client, "exec_idle", None)
    if idle_probe is None:
        return no_idle_probe(ctx)
    result = await idle_probe(ctx.session, ctx.pod, ctx.container, ctx.idle_s, ctx.idle_timeout_s,
                              protocol=ctx.protocol, marker=ctx.marker)
    return observed(result)
