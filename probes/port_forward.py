"""port-forward: one connection, several ports, and 20 concurrent connections, each echoed byte-exact."""

from __future__ import annotations

import os

from conformance.model import ErrorClass, Evidence, Observation
from probes.common import ProbeContext, mismatch, observed

CONCURRENT = 20
IDLE_MARGIN_S = 5.0
CONCURRENT_BYTES = 64 * 1024


async def _echo(ctx: ProbeContext, payloads: list[bytes], port: int) -> Observation:
    result = await ctx.client.port_forward(ctx.session, ctx.pod, port, payloads, protocol=ctx.protocol)
    result.evidence.bytes_sent = sum(len(p) for p in payloads)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    bad = [i for i, (p, r) in enumerate(zip(payloads, result.received, strict=False)) if p != r]
    if len(result.received) != len(payloads) or bad:
        return mismatch(
            result,
            f"{len(bad) or len(payloads) - len(result.received)} of {len(payloads)} connections came back different",
        )
    result.evidence.bytes_verified = result.evidence.bytes_sent
    return observed(result, f"{len(payloads)} connection(s), {result.evidence.bytes_sent} bytes echoed")


async def probe_port_forward(ctx: ProbeContext) -> Observation:
    return await _echo(ctx, [os.urandom(ctx.payload_bytes // 4)], ctx.workload.port)


async def probe_port_forward_concurrent(ctx: ProbeContext) -> Observation:
    return await _echo(ctx, [os.urandom(CONCURRENT_BYTES) for _ in range(CONCURRENT)], ctx.workload.port)


async def probe_port_forward_idle(ctx: ProbeContext) -> Observation:
    """A session idle a little longer than the path's idle timeout (Cilium-style: a cut is a finding)."""
    idle = (ctx.idle_timeout_s or 0) + IDLE_MARGIN_S
    idle_probe = getattr(ctx.client, "port_forward_idle", None)
    if idle_probe is None:
        return Observation(
            error_class=ErrorClass.NONE,
            evidence=Evidence(),
            skipped=True,
            message=f"client {ctx.client.name} has no idle probe",
        )
    result = await idle_probe(ctx.session, ctx.pod, ctx.workload.port, idle, protocol=ctx.protocol)
    return observed(result)


async def probe_port_forward_ports(ctx: ProbeContext) -> Observation:
    """Several ports in one port-forward session (kubectl port-forward POD 8080 8081 does this)."""
    ports_probe = getattr(ctx.client, "port_forward_ports", None)
    if ports_probe is None:
        return Observation(
            error_class=ErrorClass.NONE,
            evidence=Evidence(),
            skipped=True,
            message=f"client {ctx.client.name} has no several-ports probe",
        )
    ports = [ctx.workload.port, ctx.workload.port + 1]
    return observed(await ports_probe(ctx.session, ctx.pod, ports, protocol=ctx.protocol))
