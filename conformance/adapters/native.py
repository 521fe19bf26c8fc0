"""The harness's own clients (conformance.clients) as a cell client: every protocol, pinned, with the wire
evidence they collect (status line, negotiated subprotocol, timings, bytes)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from conformance import __version__
from conformance.adapters.base import EXEC_PROTOCOLS, PORT_FORWARD_PROTOCOLS, OpResult, Session
from conformance.clients import attach, cp_download, cp_upload, exec_, logs_follow, open_port_forward, port_forward_echo
from conformance.clients.portforward import ForwardedConnection
from conformance.clients.protocols import command_protocol
from conformance.kubeconfig_credentials import ClientCredential, endpoint_with
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError
from conformance.transport.timeouts import Timeouts
from probes.idle import cut_verdict

T = TypeVar("T")
# Operations that need the client to signal end of stdin: only protocols with a half-close can carry them.
NEEDS_STDIN_EOF = ("exec-stdin", "cp-upload")
# The idle probe holds a session for a path's idle timeout: two protocols keep it to a few long cells.
IDLE_PROTOCOLS = ("spdy", "ws-tunnel")
EXEC_IDLE_PROTOCOLS = ("spdy", "ws-v5")
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
        if operation == "exec-idle":
            return EXEC_IDLE_PROTOCOLS
        if operation == "port-forward-ports":
            return PORT_FORWARD_PROTOCOLS
        if operation in ("logs-follow", "watch", "watch-quiet", "whoami", "tls"):
            return ("http",)
        return ()

    @staticmethod
    def _endpoint(s: Session) -> Endpoint:
        # The session's token (it may be a deliberately bad one) with the credential's certificate, if any.
        cred = replace(s.credential or ClientCredential(), token=s.token or None)
        return endpoint_with(
            cred,
            server=s.endpoint.server,
            ca_file=s.endpoint.ca_file,
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
        result = OpResult(ErrorClass.NONE, got.evidence, stdout=got.stdout, stderr=got.stderr, exit_code=got.exit_code,
                          stdin_closed=True if stdin is not None else None)
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

    async def port_forward_idle(
        self, s: Session, pod: str, port: int, idle_s: float, declared_s: float | None = None, *, protocol: str
    ) -> OpResult:
        """Echo, stay silent for `idle_s` while watching the connection, echo again: did a hop cut the idle
        session, and when? (`evidence.survived_s`)"""
        timeouts = Timeouts(connect=10.0, tls=10.0, upgrade=15.0, read=idle_s + 30, total=idle_s + 60)
        evidence = Evidence(protocol_requested=protocol)
        silence_started: float | None = None
        try:
            session = await open_port_forward(self._endpoint(s), s.namespace, pod, protocol=protocol, timeouts=timeouts)
            async with session:
                evidence = session.evidence
                conn = await session.connect(port)
                payload = os.urandom(ECHO_BYTES)
                await conn.write(payload)
                # The silence is timed from our last write: on a loaded client, noticing the echo can lag
                # by seconds, while the proxy's timer started when the echo passed it.
                sent_at = time.monotonic()
                got = await _read_exactly(conn, len(payload), 15)
                if got != payload:
                    evidence.error = f"{len(got)} of {len(payload)} bytes echoed before the silence"
                    return OpResult(ErrorClass.DATA_MISMATCH, evidence, evidence.error)
                silence_started = sent_at
                # Watch the silent connection: a read that ends during the silence is the cut, and its time.
                watch = asyncio.ensure_future(conn.read())
                done, _ = await asyncio.wait({watch}, timeout=max(0.0, idle_s - (time.monotonic() - sent_at)))
                if watch in done:
                    survived = time.monotonic() - silence_started
                    evidence.survived_s = round(survived, 1)
                    exc = watch.exception()
                    if exc is None and watch.result():
                        evidence.error = "the pod sent bytes nobody asked for during the silence"
                        return OpResult(ErrorClass.DATA_MISMATCH, evidence, evidence.error)
                    cls, text = cut_verdict(survived, declared_s, "the connection was closed" if exc is None
                                            else f"the connection failed ({exc})")
                    evidence.error = redact(text)
                    return OpResult(cls, evidence, evidence.error)
                evidence.survived_s = round(time.monotonic() - silence_started, 1)
                await conn.write(payload)
                got = await _read_pending(watch, conn, len(payload), 15)
                if got != payload:
                    cls, text = cut_verdict(evidence.survived_s, declared_s, f"{len(got)} of {len(payload)} bytes "
                                            f"echoed: the session was dead")
                    evidence.error = text
                    return OpResult(cls, evidence, text)
                evidence.bytes_verified = 2 * ECHO_BYTES
                evidence.notes.append(f"the session survived {idle_s:.0f} s of silence")
                await conn.aclose()
        except StreamingError as exc:
            if silence_started is not None and evidence.survived_s is None:
                evidence.survived_s = round(time.monotonic() - silence_started, 1)
            return _failure(exc, evidence)
        except TimeoutError:
            evidence.error = f"no echo within 15 s after {idle_s:.0f} s of silence"
            return OpResult(ErrorClass.TIMEOUT, evidence, evidence.error)
        return OpResult(ErrorClass.NONE, evidence, f"survived {idle_s:.0f} s idle")

    async def exec_idle(
        self, s: Session, pod: str, container: str, idle_s: float, declared_s: float | None, *, protocol: str,
        marker: str = "",
    ) -> OpResult:
        """`read a; echo got-$a; read b; echo done-$b`: a line, `idle_s` of silence both ways, a line; the
        session must carry both and exit 0. A session that ends during the silence was cut, and when."""
        timeouts = Timeouts(connect=10.0, tls=10.0, upgrade=15.0, read=idle_s + 30, total=idle_s + 60)
        first = asyncio.Event()
        silence: dict[str, float] = {}

        async def on_stdout(chunk: bytes) -> None:
            if b"got-one" in chunk:
                first.set()

        async def stdin() -> AsyncIterator[bytes]:
            yield b"one\n"
            # Timed from our last write (resumed once it is sent): noticing the reply can lag on a loaded
            # client, while the proxy's timer started when the reply passed it.
            sent_at = time.monotonic()
            await asyncio.wait_for(first.wait(), 15)
            silence["start"] = sent_at
            await asyncio.sleep(max(0.0, idle_s - (time.monotonic() - sent_at)))
            silence["end"] = time.monotonic()
            yield b"two\n"

        script = f"read a; echo got-$a; read b; echo done-$b # {marker}"
        got = await self._call(
            exec_(self._endpoint(s), s.namespace, pod, container, ["sh", "-c", script], protocol=protocol,
                  # No half-close after the second line: the script needs no end of input, and a FIN written
                  # while the process exits races the kubelet's close, which makes the API server's upgrade
                  # proxy drop the exit status in flight (docs/findings.md).
                  stdin=stdin(), close_stdin=False, on_stdout=on_stdout,
                  timeouts=timeouts)
        )
        ended = time.monotonic()
        evidence = got.evidence
        if "start" in silence:
            evidence.survived_s = round(silence.get("end", ended) - silence["start"], 1)
        cut_during_silence = "start" in silence and "end" not in silence
        if cut_during_silence:
            how = f"the exec session ended ({got.message})" if isinstance(got, OpResult) else "the exec session ended"
            cls, text = cut_verdict(ended - silence["start"], declared_s, how)
            evidence.error = redact(text)
            return OpResult(cls, evidence, evidence.error)
        if isinstance(got, OpResult):
            return got
        if got.stdout != b"got-one\ndone-two\n" or got.exit_code != 0:
            text = f"after {idle_s:.0f} s of silence: stdout {got.stdout[:80]!r}, exit {got.exit_code}"
            evidence.error = text
            return OpResult(ErrorClass.DATA_MISMATCH, evidence, text)
        evidence.bytes_verified = len(got.stdout)
        evidence.notes.append(f"the exec session survived {idle_s:.0f} s of silence")
        return OpResult(ErrorClass.NONE, evidence, f"survived {idle_s:.0f} s idle", stdout=got.stdout, exit_code=0)

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
        return self._cp(got.ok, got.evidence, got.sha256, got.remote_sha256, got.bytes)

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
        return self._cp(got.ok, got.evidence, got.sha256, got.remote_sha256, got.bytes)

    @staticmethod
    def _cp(ok: bool, evidence: Evidence, sha256: str, remote: str | None, size: int) -> OpResult:
        result = OpResult(ErrorClass.NONE, evidence, sha256=sha256, size=size)
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

    async def logs_follow(
        self, s: Session, pod: str, container: str, *, seconds: float, timestamps: bool = False,
        tail_lines: int | None = None,
    ) -> OpResult:
        got = await self._call(
            logs_follow(self._endpoint(s), s.namespace, pod, container, max_bytes=1 << 20, max_duration=seconds,
                        timestamps=timestamps, tail_lines=tail_lines)
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


async def _read_pending(pending: asyncio.Future[bytes], conn: ForwardedConnection, size: int,
                        timeout_s: float) -> bytes:
    """Like `_read_exactly`, starting with a read that is already in flight."""
    chunk = await asyncio.wait_for(pending, timeout_s)
    if not chunk:
        return b""
    return chunk + (await _read_exactly(conn, size - len(chunk), timeout_s) if len(chunk) < size else b"")
