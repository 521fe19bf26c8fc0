"""kubectl cp semantics natively: tar over exec, streamed both ways (PROTOCOLS.md 6).

Upload: ``tar -xmf - [-C dir]`` in the pod, fed a tar stream built on the fly from the local file
(one header, the content in chunks, padding, two zero blocks); stdin is then closed, which is what
makes the remote tar exit (so only protocols that can close stdin can upload). Download:
``tar cf - <src>`` in the pod, parsed incrementally as it arrives and written to disk. Neither side
ever holds the file: memory stays at a few chunks, and sha256 is computed as the bytes pass.
``verify=True`` also runs ``sha256sum`` in the pod and compares.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

from conformance.clients.remotecommand import exec_
from conformance.clients.results import CpResult
from conformance.clients.tar_stream import TarExtractor
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import DataMismatch, StreamingError
from conformance.transport.timeouts import Phase, Timeouts

CHUNK = 256 * 1024
BLOCK = 512


async def cp_upload(endpoint: Endpoint, namespace: str, pod: str, container: str | None, local_path: str | Path,
                    remote_path: str, *, protocol: str = "spdy", verify: bool = True,
                    timeouts: Timeouts | None = None) -> CpResult:
    """Copy one local file to ``remote_path`` in the container, byte-exact."""
    local = Path(local_path)
    size = local.stat().st_size
    parent, name = posixpath.split(remote_path)
    command = ["tar", "-xmf", "-"] + (["-C", parent] if parent else [])
    digest = hashlib.sha256()
    streamed = 0

    async def tar_stream() -> AsyncIterator[bytes]:
        nonlocal streamed
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o644, int(local.stat().st_mtime)
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        with local.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                streamed += len(chunk)
                yield chunk
        if streamed != size:
            raise DataMismatch(f"{local} changed size while being read ({size} -> {streamed} B)")
        yield b"\0" * ((-size) % BLOCK) + b"\0" * (2 * BLOCK)  # padding, then the end-of-archive blocks

    result = await exec_(endpoint, namespace, pod, container, command, protocol=protocol, stdin=tar_stream(),
                         timeouts=timeouts)
    evidence = result.evidence
    evidence.bytes_sent = streamed
    if result.exit_code != 0:
        raise _remote_failure(f"tar -x exited {result.exit_code}: {result.stderr[:500]!r}", evidence)
    cp = CpResult(protocol=result.protocol, negotiated=result.negotiated, direction="upload",
                  local_path=str(local), remote_path=remote_path, bytes=streamed, sha256=digest.hexdigest(),
                  evidence=evidence)
    if verify:
        await _verify(endpoint, namespace, pod, container, cp, protocol, timeouts)
    return cp


async def cp_download(endpoint: Endpoint, namespace: str, pod: str, container: str | None, remote_path: str,
                      local_path: str | Path, *, protocol: str = "spdy", verify: bool = True,
                      timeouts: Timeouts | None = None) -> CpResult:
    """Copy ``remote_path`` (a file or a directory) from the container to ``local_path``."""
    prefix = _kubectl_prefix(remote_path)
    extractor = TarExtractor(Path(local_path), prefix)
    result = await exec_(endpoint, namespace, pod, container, ["tar", "cf", "-", remote_path], protocol=protocol,
                         on_stdout=extractor.feed, capture_limit=0, timeouts=timeouts)
    extractor.close()
    evidence = result.evidence
    if result.exit_code != 0:
        raise _remote_failure(f"tar -c exited {result.exit_code}: {result.stderr[:500]!r}", evidence)
    extractor.check_complete()
    evidence.notes.extend(extractor.notes)
    cp = CpResult(protocol=result.protocol, negotiated=result.negotiated, direction="download",
                  local_path=str(local_path), remote_path=remote_path, bytes=extractor.content_bytes,
                  sha256=extractor.sha256.hexdigest(), files=extractor.files, evidence=evidence)
    if verify and extractor.files == 1:
        await _verify(endpoint, namespace, pod, container, cp, protocol, timeouts)
    return cp


def _kubectl_prefix(src: str) -> str:
    # "prefix = src with leading slashes removed, cleaned, and leading ../ shortcuts removed"
    cleaned = posixpath.normpath(src.lstrip("/"))
    while cleaned.startswith("../"):
        cleaned = cleaned[3:]
    return "" if cleaned in (".", "..") else cleaned


async def _verify(endpoint: Endpoint, namespace: str, pod: str, container: str | None, cp: CpResult,
                  protocol: str, timeouts: Timeouts | None) -> None:
    check = await exec_(endpoint, namespace, pod, container, ["sha256sum", cp.remote_path], protocol=protocol,
                        stderr=True, timeouts=timeouts)
    fields = check.stdout.split()
    cp.remote_sha256 = fields[0].decode("ascii", "replace") if fields and check.exit_code == 0 else None
    if cp.remote_sha256 != cp.sha256:
        raise DataMismatch(f"sha256 in the pod {cp.remote_sha256} != {cp.sha256} streamed ({cp.bytes} B); "
                           f"sha256sum exit {check.exit_code}", phase=Phase.STREAM, evidence=cp.evidence)
    cp.evidence.bytes_verified = cp.bytes
    cp.evidence.notes.append(f"sha256 {cp.sha256} matches sha256sum in the pod")


def _remote_failure(message: str, evidence: object) -> StreamingError:
    from conformance.model import Evidence
    from conformance.transport.errors import RemoteCommandFailed

    return RemoteCommandFailed(message, phase=Phase.STREAM, evidence=evidence if isinstance(evidence, Evidence)
                               else None)


__all__ = ["cp_download", "cp_upload"]
