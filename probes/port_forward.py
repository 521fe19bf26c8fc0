"""port-forward: one connection, several ports, and 20 concurrent connections, each echoed byte-exact
(length and content: a short echo is `truncated`, different bytes `data-mismatch` with the offset)."""

from __future__ import annotations

from conformance.model import ErrorClass, Evidence, Observation
from probes.common import ProbeContext, ended_early, failed, no_idle_probe, observed, random_payload, verify_bytes

CONCURRENT = 20
MIN_CONCURRENT_BYTES = 64 * 1024


async def _echo(ctx: ProbeContext, payloads: list[bytes], port: int) -> Observation:
    result = await ctx.client.port_forward(ctx.session, ctx.pod, port, payloads, protocol=ctx.protocol)
    result.evidence.bytes_sent = sum(len(p) for p in payloads)
    if result.error_class is not ErrorClass.NONE:
        got = sum(len(r) for r in result.received) if result.received else -1
        short = ended_early(result, got, result.evidence.bytes_sent, "the echo")
        return short or observed(result)
    if len(result.received) != len(payloads):
        return failed(
            result, ErrorClass.TRUNCATED, f"{len(result.received)} of {len(payloads)} connections came back at all"
        )
    problems = [(i, verify_bytes(p, r)) for i, (p, r) in enumerate(zip(payloads, result.received, strict=True))]
    bad = [(i, pr) for i, pr in problems if pr is not None]
    if bad:
        # A corruption anywhere outranks a short echo: it is the worse finding.
        i, (cls, text) = next(((i, pr) for i, pr in bad if pr[0] is ErrorClass.DATA_MISMATCH), bad[0])
        summary = f"{len(bad)} of {len(payloads)} connection(s) not byte-exact; connection {i}: {text}"
        return failed(result, cls, summary)
    result.evidence.bytes_verified = result.evidence.bytes_sent
    return observed(result, f"{len(payloads)} connection(s), {result.evidence.bytes_sent} bytes echoed byte-exact")


async def probe_port_forward(ctx: ProbeContext) -> Observation:
    """The whole payload (`--payload-mib`) over one forwarded connection."""
    return await _echo(ctx, [random_payload(ctx.payload_bytes)], ctx.workload.port)


async def probe_port_forward_concurrent(ctx: ProbeContext) -> Observation:
    """CONCURRENT connections at once, together the payload again (1/16 of it each, at least 64 KiB)."""
    each = max(MIN_CONCURRENT_BYTES, ctx.payload_bytes // 16)
    return await _echo(ctx, [random_payload(each) for _ in range(CONCURRENT)], ctx.workload.port)


async def probe_port_forward_idle(ctx: ProbeContext) -> Observation:
    """A session silent a little longer than the path's idle timeout (or the default silence): a cut is a
    finding, classed by when it came (probes.idle)."""
    idle_probe = getattr(ctx.client, "port_forward_idle", None)
    if idle_probe is None:
        return no_idle_probe(ctx)
    result = await idle_probe(ctx.session, ctx.pod, ctx.workload.port, ctx.idle_s, ctx.idle_timeout_s,
                              protocol=ctx.protocol)
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
