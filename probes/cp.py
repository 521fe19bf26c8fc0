"""cp upload and download: tar over exec, byte-exact, checked by sha256 on both sides."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from conformance.model import ErrorClass, Observation
from probes.common import ProbeContext, mismatch, observed


async def probe_cp_upload(ctx: ProbeContext) -> Observation:
    payload = os.urandom(ctx.payload_bytes)
    remote = f"up-{ctx.marker}.bin"
    with tempfile.TemporaryDirectory(prefix="conformance-cp-") as tmp:
        local = Path(tmp) / "payload.bin"
        local.write_bytes(payload)
        result = await ctx.client.cp_upload(ctx.session, ctx.pod, ctx.container, local, remote, protocol=ctx.protocol)
    result.evidence.bytes_sent = len(payload)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    check = await ctx.client.exec(
        ctx.session, ctx.pod, ctx.container, ["sh", "-c", f"sha256sum {remote}; rm -f {remote}"], protocol=ctx.protocol
    )
    if check.error_class is not ErrorClass.NONE:
        return observed(check, f"uploaded, but the check failed: {check.message}")
    want = hashlib.sha256(payload).hexdigest()
    got = check.stdout.split()[0].decode() if check.stdout.split() else ""
    if got != want:
        return mismatch(result, f"sha256 in the pod {got[:16]}... != sent {want[:16]}...")
    result.evidence.bytes_verified = len(payload)
    return observed(result, f"{len(payload)} bytes uploaded, sha256 matches")


async def probe_cp_download(ctx: ProbeContext) -> Observation:
    remote = f"down-{ctx.marker}.bin"
    make = await ctx.client.exec(
        ctx.session,
        ctx.pod,
        ctx.container,
        ["sh", "-c", f"head -c {ctx.payload_bytes} /dev/urandom > {remote} && sha256sum {remote}"],
        protocol=ctx.protocol,
    )
    if make.error_class is not ErrorClass.NONE:
        return observed(make, f"could not create the file to download: {make.message}")
    want = make.stdout.split()[0].decode() if make.stdout.split() else ""
    with tempfile.TemporaryDirectory(prefix="conformance-cp-") as tmp:
        local = Path(tmp) / "download.bin"
        result = await ctx.client.cp_download(ctx.session, ctx.pod, ctx.container, remote, local, protocol=ctx.protocol)
    await ctx.client.exec(ctx.session, ctx.pod, ctx.container, ["rm", "-f", remote], protocol=ctx.protocol)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    if result.sha256 != want:
        return mismatch(result, f"downloaded sha256 {str(result.sha256)[:16]}... != pod's {want[:16]}...")
    result.evidence.bytes_verified = ctx.payload_bytes
    return observed(result, f"{ctx.payload_bytes} bytes downloaded, sha256 matches")
