"""Long-lived reads: attach to the pod's main process and `logs -f`, each held for a few seconds."""

from __future__ import annotations

from conformance.model import ErrorClass, Observation
from probes.common import ProbeContext, mismatch, observed

# Long enough for kubectl to start and make its requests on a loaded machine before two 0.2 s ticks arrive:
# at 0.8 s, passing kubectl cells through every kube-oidc-proxy target had 2-3 lines, and some got 1.
HOLD_S = 1.5
MIN_LINES = 2


async def probe_attach(ctx: ProbeContext) -> Observation:
    result = await ctx.client.attach(ctx.session, ctx.pod, ctx.container, protocol=ctx.protocol, seconds=HOLD_S)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    lines = result.stdout.count(b"\n")
    if lines < MIN_LINES:
        return mismatch(result, f"{lines} line(s) in {HOLD_S:.1f}s of attach, expected at least {MIN_LINES}")
    result.evidence.bytes_verified = len(result.stdout)
    return observed(result, f"attached for {HOLD_S:.1f}s, {lines} lines")


async def probe_logs_follow(ctx: ProbeContext) -> Observation:
    result = await ctx.client.logs_follow(ctx.session, ctx.pod, ctx.container, seconds=HOLD_S)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    lines = result.stdout.count(b"\n")
    if lines < MIN_LINES:
        return mismatch(result, f"{lines} line(s) in {HOLD_S:.1f}s of logs -f, expected at least {MIN_LINES}")
    result.evidence.bytes_verified = len(result.stdout)
    return observed(result, f"followed for {HOLD_S:.1f}s, {lines} lines")
