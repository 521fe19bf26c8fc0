"""cp upload and download: tar over exec, every byte checked by length and sha256 on both sides.

A short copy is `truncated` ("N of M bytes"), different bytes `data-mismatch`: a hop that cuts or corrupts
a stream after N bytes fails the cell whatever N is (the payload is `--payload-mib`, 16 MiB by default).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from conformance.model import ErrorClass, Observation
from probes.common import ProbeContext, ended_early, failed, observed, random_payload, verify_digest


async def probe_cp_upload(ctx: ProbeContext) -> Observation:
    payload = random_payload(ctx.payload_bytes)
    remote = f"up-{ctx.marker}.bin"
    with tempfile.TemporaryDirectory(prefix="conformance-cp-") as tmp:
        local = Path(tmp) / "payload.bin"
        local.write_bytes(payload)
        result = await ctx.client.cp_upload(ctx.session, ctx.pod, ctx.container, local, remote, protocol=ctx.protocol)
    result.evidence.bytes_sent = len(payload)
    if result.error_class is not ErrorClass.NONE:
        return observed(result)
    check = await ctx.client.exec(
        ctx.session,
        ctx.pod,
        ctx.container,
        ["sh", "-c", f"wc -c < {remote}; sha256sum {remote}; rm -f {remote}"],
        protocol=ctx.protocol,
    )
    if check.error_class is not ErrorClass.NONE:
        return observed(check, f"uploaded, but the check failed: {check.message}")
    fields = check.stdout.split()
    got_len = int(fields[0]) if fields and fields[0].isdigit() else -1
    got_sha = fields[1].decode() if len(fields) > 1 else ""
    problem = verify_digest(len(payload), hashlib.sha256(payload).hexdigest(), got_len, got_sha, "the pod's copy")
    if problem:
        return failed(result, *problem)
    result.evidence.bytes_verified = len(payload)
    return observed(result, f"{len(payload)} bytes uploaded, length and sha256 match")


async def probe_cp_download(ctx: ProbeContext) -> Observation:
    remote = f"down-{ctx.marker}.bin"
    size = ctx.payload_bytes
    make = await ctx.client.exec(
        ctx.session,
        ctx.pod,
        ctx.container,
        ["sh", "-c", f"head -c {size} /dev/urandom > {remote} && sha256sum {remote}"],
        protocol=ctx.protocol,
    )
    if make.error_class is not ErrorClass.NONE:
        return observed(make, f"could not create the file to download: {make.message}")
    want = make.stdout.split()[0].decode() if make.stdout.split() else ""
    with tempfile.TemporaryDirectory(prefix="conformance-cp-") as tmp:
        local = Path(tmp) / "download.bin"
        result = await ctx.client.cp_download(ctx.session, ctx.pod, ctx.container, remote, local, protocol=ctx.protocol)
        if result.size is None and local.is_file():
            result.size = local.stat().st_size
    await ctx.client.exec(ctx.session, ctx.pod, ctx.container, ["rm", "-f", remote], protocol=ctx.protocol)
    if result.error_class is not ErrorClass.NONE:
        short = ended_early(result, result.size if result.size is not None else -1, size, "the download")
        return short or observed(result)
    got_len = result.size if result.size is not None else -1
    problem = verify_digest(size, want, got_len, str(result.sha256), "the downloaded copy")
    if problem:
        return failed(result, *problem)
    result.evidence.bytes_verified = size
    return observed(result, f"{size} bytes downloaded, length and sha256 match")
