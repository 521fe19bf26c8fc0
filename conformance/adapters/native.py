"""The harness's own clients (conformance.clients) as a cell client: every protocol, pinned, with the wire
evidence they collect (status line, negotiated subprotocol, timings, bytes)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar

from conformance import __version__
from conformance.adapters.base import EXEC_PROTOCOLS, PORT_FORWARD_PROTOCOLS, OpResult, Session
from conformance.clients import attach, cp_download, cp_upload, exec_, logs_follow, open_port_forward, port_forward_echo
from conformance.clients.portforward import ForwardedConnection
from conformance.clients.protocols import command_protocol
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError
from conformance.transport.timeouts import Timeouts

T = TypeVar("T")
# Operations that need the client to signal end of stdin: only protocols with a half-close can carry them.
NEEDS_STDIN_EOF = ("exec-stdin", "cp-upload")
# The idle probe holds a session for a path's idle timeout: two protocols keep it to a few long cells.
IDLE_PROTOCOLS = ("spdy", "ws-tunnel")
ECHO_BYTES = 4096


class NativeAdapter:
    name = "native"
    version = f"k8s-streaming-conformance {__version__}"

    def protocols(self, operation: str) -> tuple[str, ...]:
        if operation in NEEDS_STDIN_EOF:
            return tuple(p for p in EXEC_PROTOCOLS if command_protocol(p).can_close_stdin)
        if operation in ("exec", "cp-download", "attach"):
            return EXEC_PROTOCOLS
        if operation in ("port-forward", "port-forward-concurrent"):
            return PORT_FORWARD_PROTOCOLS
        if operation == "port-forward-idle":
            return IDLE_PROTOCOLS
        if operation == "port-forward-ports":
            return PORT_FORWARD_PROTOCOLS
        if operation in ("logs-follow", "watch", "watch-quiet", "whoami", "tls"):
            return ("http",)
        return ()

    @staticmethod
    def _endpoint(s: Session) -> Endpoint:
        return Endpoint(
            server=s.endpoint.server,
            ca_file=s.endpoint.ca_file,
            token=s.token,
            proxy_url=s.endpoint.proxy_url,
            insecure_skip_tls_verify=s.endpoint.insecure_skip_tls_verify,
            user_agent=s.user_agent,
        )

    @staticmethod
    def _timeouts(s: Session) -> Timeouts:
        return Timeouts(
            connect=min(10.0, s.timeout_s),
            tls=min(10.0, s.timeout_s),
            upgrade=min(15.0, s.timeout_s),
            read=min(30.0, s.timeout_s),
            total=s.timeout_s,
        )

    @staticmethod
    async def _call(awaitable: Awaitable[T]) -> T | OpResult:
        try:
            return await awaitable
        except StreamingError as exc:
            return _failure(exc, Evidence())

    async def exec(
        self,
        s: Session,
        pod: str,
        container: str,
        command: list[str],
        *,
        protocol: str,
        stdin: bytes | None = None,
        expect_exit: int | None = 0,
    ) -> OpResult:
        got = await self._call(
            exec_(
                self._endpoint(s),
                s.namespace,
                pod,
                container,
                command,
                protocol=protocol,
                stdin=stdin,
                timeouts=self._timeouts(s),
            )
        )
        if isinstance(got, OpResult):
            return got
        result = OpResult(ErrorClass.NONE, got.evidence, stdout=got.stdout, stderr=got.stderr, exit_code=got.exit_code)
        got.evidence.exit_code = got.exit_code
        if expect_exit is not None and got.exit_code != expect_exit:
            result.error_class = ErrorClass.MISSING_EXIT_STATUS if got.exit_code is None else ErrorClass.DATA_MISMATCH
            result.message = f"exit code {got.exit_code}, expected {expect_exit}: {redact(got.status_message)}"
            got.evidence.error = result.message
        return result

    async def port_forward(self, s: Session, pod: str, port: int, payloads: list[bytes], *, protocol: str) -> OpResult:
        # The native echo check generates its own payload of the same size and verifies it by sha256.
        got = await self._call(
            port_forward_echo(
                self._endpoint(s),
                s.namespace,
                pod,
                port,
                protocol=protocol,
                size=len(payloads[0]),
                connections=len(payloads),
                timeouts=self._timeouts(s),
            )
        )
        if isinstance(got, OpResult):
            return got
        result = OpResult(ErrorClass.NONE, got.evidence)
        if not got.ok:
            bad = [c for c in got.connections if not c.byte_exact]
            result.error_class = ErrorClass.DATA_MISMATCH
            result.message = f"{len(bad)} of {len(got.connections)} connections not byte-exact" + (
                f": {redact(bad[0].error_text)}" if bad and bad[0].error_text else ""
            )
            got.evidence.error = result.message
            return result
        # Hand the probe what it sent, so its own comparison holds (the check above was by sha256).
        result.received = list(payloads)
        return result

    async def port_forward_ports(self, s: Session, pod: str, ports: list[int], *, protocol: str) -> OpResult:
        """One session forwarding several ports at once, each connection echoed byte-exact."""
        evidence = Evidence(protocol_requested=protocol)
        try:
            session = await open_port_forward(
                self._endpoint(s), s.namespace, pod, protocol=protocol, timeouts=self._timeouts(s)
            )
            async with session:
                evidence = session.evidence
                conns = [await session.connect(port) for port in ports]
                payloads = [os.urandom(ECHO_BYTES) for _ in ports]
                for conn, payload in zip(conns, payloads, strict=True):
                    await conn.write(payload)
                for port, conn, payload in zip(ports, conns, payloads, strict=True):
                    got = await _read_exactly(conn, len(payload), s.timeout_s)
                    if got != payload:
                        evidence.error = f"port {port}: {len(got)} of {len(payload)} bytes echoed"
                        return OpResult(ErrorClass.DATA_MISMATCH, evidence, evidence.error)
                    await conn.aclose()
        except StreamingError as exc:
            return _failure(exc, evidence)
        except TimeoutError:
            evidence.error = f"no echo within {s.timeout_s:.0f} s"
            return OpResult(ErrorClass.TIMEOUT, evidence, evidence.error)
        evidence.bytes_verified = len(ports) * ECHO_BYTES
        return OpResult(ErrorClass.NONE, evidence, f"{len(ports)} ports over one session, each byte-exact")

    async def port_forward_idle(self, s: Session, pod: str, port: int, idle_s: float, *, protocol: str) -> OpResult:
        """Echo, stay silent for `idle_s`, echo again on the same connection: did a hop cut the idle session?"""
        timeouts = Timeouts(connect=10.0, tls=10.0, upgrade=15.0, read=idle_s + 30, total=idle_s + 60)
        evidence = Evidence(protocol_requested=protocol)
        try:
            session = await open_port_forward(self._endpoint(s), s.namespace, pod, protocol=protocol, timeouts=timeouts)
            async with session:
                evidence = session.evidence
                conn = await session.connect(port)
                for round_ in ("before", "after"):
                    if round_ == "after":
                        await asyncio.sleep(idle_s)
                    payload = os.urandom(ECHO_BYTES)
                    await conn.write(payload)
                    got = await _read_exactly(conn, len(payload), 15)
                    if got != payload:
                        text = f"{len(got)} of {len(payload)} bytes echoed {round_} {idle_s:.0f} s of silence"
                        evidence.error = text
                        cls = ErrorClass.RESET if round_ == "after" else ErrorClass.DATA_MISMATCH
                        return OpResult(cls, evidence, text)
                evidence.bytes_verified = 2 * ECHO_BYTES
                evidence.notes.append(f"the session survived {idle_s:.0f} s of silence")
                await conn.aclose()
        except StreamingError as exc:
            return _failure(exc, evidence)
        except TimeoutError:
            evidence.error = f"no echo within 15 s after {idle_s:.0f} s of silence"
            return OpResult(ErrorClass.TIMEOUT, evidence, evidence.error)
        return OpResult(ErrorClass.NONE, evidence, f"survived {idle_s:.0f} s idle")

    async def cp_upload(
        self, s: Session, pod: str, container: str, local: Path, remote: str, *, protocol: str
    ) -> OpResult:
        got = await self._call(
            cp_upload(
                self._endpoint(s),
                s.namespace,
                pod,
                container,
                local,
                remote,
                protocol=protocol,
                timeouts=self._timeouts(s),
            )
        )
        if isinstance(got, OpResult):
            return got
        return self._cp(got.ok, got.evidence, got.sha256, got.remote_sha256)

    async def cp_download(
        self, s: Session, pod: str, container: str, remote: str, local: Path, *, protocol: str
    ) -> OpResult:
        got = await self._call(
            cp_download(
                self._endpoint(s),
                s.namespace,
                pod,
                container,
                remote,
                local,
                protocol=protocol,
                timeouts=self._timeouts(s),
            )
        )
        if isinstance(got, OpResult):
            return got
        return self._cp(got.ok, got.evidence, got.sha256, got.remote_sha256)

    @staticmethod
    def _cp(ok: bool, evidence: Evidence, sha256: str, remote: str | None) -> OpResult:
        result = OpResult(ErrorClass.NONE, evidence, sha256=sha256)
        if not ok:
            result.error_class = ErrorClass.DATA_MISMATCH
            result.message = f"sha256 {sha256[:16]}... differs from the pod's {str(remote)[:16]}..."
            evidence.error = result.message
        return result

    async def attach(self, s: Session, pod: str, container: str, *, protocol: str, seconds: float) -> OpResult:
        got = await self._call(
            attach(
                self._endpoint(s),
                s.namespace,
                pod,
                container,
                protocol=protocol,
                max_duration=seconds,
                timeouts=self._timeouts(s),
            )
        )
        if isinstance(got, OpResult):
            return got
        return OpResult(ErrorClass.NONE, got.evidence, stdout=got.stdout, stderr=got.stderr)

    async def logs_follow(self, s: Session, pod: str, container: str, *, seconds: float) -> OpResult:
        got = await self._call(
            logs_follow(self._endpoint(s), s.namespace, pod, container, max_bytes=1 << 20, max_duration=seconds)
        )
        if isinstance(got, OpResult):
            return got
        return OpResult(ErrorClass.NONE, got.evidence, stdout=got.data)


def _failure(exc: StreamingError, fallback: Evidence) -> OpResult:
    """The one place a native client's typed failure becomes a cell result (its evidence, redacted text)."""
    evidence = exc.evidence if isinstance(getattr(exc, "evidence", None), Evidence) else fallback
    evidence.error = redact(str(exc))
    return OpResult(exc.error_class, evidence, evidence.error)


async def _read_exactly(conn: ForwardedConnection, size: int, timeout_s: float) -> bytes:
    """Up to `size` echoed bytes; fewer if the connection ends. Each read waits at most `timeout_s`."""
    got = b""
    while len(got) < size:
        chunk = await asyncio.wait_for(conn.read(), timeout_s)
        if not chunk:
            break
        got += chunk
    return got
