"""exec: stdout, stderr and exit code; exec with stdin half-close."""

from __future__ import annotations

import os

from conformance.model import ErrorClass, Observation
from probes.common import ProbeContext, mismatch, observed

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
    payload = os.urandom(STDIN_BYTES)
    result = await ctx.client.exec(
        ctx.session, ctx.pod, ctx.container, ["sh", "-c", f"cat # {ctx.marker}"], protocol=ctx.protocol, stdin=payload
    )
    result.evidence.bytes_sent = len(payload)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    if result.stdout != payload:
        return mismatch(result, f"cat returned {len(result.stdout)} bytes, {len(payload)} were sent")
    result.evidence.bytes_verified = len(payload)
    return observed(result, f"{len(payload)} bytes echoed after stdin half-close")
