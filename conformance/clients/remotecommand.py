"""exec and attach, over any pinned protocol: ``exec_`` and ``attach``.

The runner opens the protocol's session, pumps stdin (then half-closes it when asked and when the
protocol can), feeds resize events, drains stdout/stderr/error concurrently (so no stream can block
another), then reads the exit status from the error stream. A non-zero exit is a result; a missing
Status is ``MissingExitStatusError``; a failure Status is ``RemoteCommandFailed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence

from conformance.clients.command_sessions import STDIN_CHUNK, CommandSession, SpdyCommand, WebSocketCommand
from conformance.clients.command_target import CommandSpec
from conformance.clients.protocols import SPDY_COMMAND_OFFER, CommandProtocol, command_protocol
from conformance.clients.results import DEFAULT_CAPTURE_LIMIT, Capture, ExecResult
from conformance.model import Evidence
from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError, UnsupportedByProtocol, map_exception
from conformance.transport.timeouts import Deadline, Phase, PhaseTimeout, Timeouts
from conformance.wire.errors import ProtocolError, RemoteCommandError
from conformance.wire.remotecommand import ErrorStreamDecoder, TerminalSize, encode_resize

StdinSource = bytes | AsyncIterable[bytes] | None
OutputSink = Callable[[bytes], Awaitable[None]]
_EXIT_CODE_IN_TEXT = re.compile(r"exit (?:code|status) (\d{1,3})\s*$")


async def exec_(
    endpoint: Endpoint,
    namespace: str,
    pod: str,
    container: str | None,
    command: Sequence[str],
    *,
    protocol: str = CommandProtocol.SPDY,
    stdin: StdinSource = None,
    close_stdin: bool = True,
    tty: bool = False,
    terminal_size: TerminalSize | None = None,
    resize: AsyncIterable[TerminalSize] | None = None,
    stdout: bool = True,
    stderr: bool = True,
    on_stdout: OutputSink | None = None,
    on_stderr: OutputSink | None = None,
    capture_limit: int = DEFAULT_CAPTURE_LIMIT,
    spdy_offer: Sequence[str] = SPDY_COMMAND_OFFER,
    timeouts: Timeouts | None = None,
) -> ExecResult:
    """Run ``command`` in the container; returns when the server reports the exit status."""
    spec = CommandSpec(subresource="exec", namespace=namespace, pod=pod, container=container,
                       command=tuple(command), stdin=stdin is not None, stdout=stdout, stderr=stderr, tty=tty)
    return await run_command(endpoint, spec, protocol=protocol, stdin=stdin, close_stdin=close_stdin,
                             terminal_size=terminal_size, resize=resize, on_stdout=on_stdout, on_stderr=on_stderr,
                             capture_limit=capture_limit, spdy_offer=spdy_offer, timeouts=timeouts)


async def attach(
    endpoint: Endpoint,
    namespace: str,
    pod: str,
    container: str | None,
    *,
    protocol: str = CommandProtocol.SPDY,
    stdin: StdinSource = None,
    tty: bool = False,
    max_duration: float = 5.0,
    max_bytes: int | None = None,
    on_stdout: OutputSink | None = None,
    capture_limit: int = DEFAULT_CAPTURE_LIMIT,
    timeouts: Timeouts | None = None,
) -> ExecResult:
    """Attach to the container's output and detach after ``max_duration`` seconds or ``max_bytes``."""
    spec = CommandSpec(subresource="attach", namespace=namespace, pod=pod, container=container,
                       stdin=stdin is not None, stdout=True, stderr=not tty, tty=tty)
    return await run_command(endpoint, spec, protocol=protocol, stdin=stdin, close_stdin=False,
                             on_stdout=on_stdout, capture_limit=capture_limit, timeouts=timeouts,
                             detach_after=max_duration, detach_bytes=max_bytes)


async def run_command(
    endpoint: Endpoint,
    spec: CommandSpec,
    *,
    protocol: str,
    stdin: StdinSource = None,
    close_stdin: bool = True,
    terminal_size: TerminalSize | None = None,
    resize: AsyncIterable[TerminalSize] | None = None,
    on_stdout: OutputSink | None = None,
    on_stderr: OutputSink | None = None,
    capture_limit: int = DEFAULT_CAPTURE_LIMIT,
    spdy_offer: Sequence[str] = SPDY_COMMAND_OFFER,
    timeouts: Timeouts | None = None,
    detach_after: float | None = None,
    detach_bytes: int | None = None,
) -> ExecResult:
    proto = command_protocol(str(protocol))
    if stdin is not None and close_stdin and not proto.can_close_stdin:
        raise UnsupportedByProtocol(f"{proto.value} cannot signal stdin EOF (PROTOCOLS.md 3.5); pass "
                                    "close_stdin=False for a command that ends by itself")
    deadline = Deadline(timeouts or Timeouts())
    offer = tuple(spdy_offer) if proto is CommandProtocol.SPDY else (proto.subprotocol,)
    evidence = Evidence(protocol_requested=",".join(offer))
    run = _Run(spec, deadline, evidence, capture_limit, on_stdout, on_stderr, detach_bytes)
    try:
        try:
            async with asyncio.timeout(deadline.remaining()):
                return await run.go(endpoint, proto, offer, stdin, close_stdin, terminal_size, resize, detach_after)
        except TimeoutError as exc:
            raise PhaseTimeout(Phase.STREAM, deadline.timeouts.total, total=True) from exc
    except StreamingError as exc:
        exc.evidence = run.finish_evidence(exc.evidence if exc.evidence is not evidence else evidence)
        if not exc.bytes_so_far:
            exc.bytes_so_far = bytes(run.stdout.data[-4096:]) + bytes(run.stderr.data[-4096:])
        raise
    except (OSError, ProtocolError, PhaseTimeout, TimeoutError) as exc:
        raise map_exception(exc, phase=Phase.STREAM, evidence=run.finish_evidence(evidence),
                            bytes_so_far=bytes(run.stdout.data[-4096:])) from exc


class _Run:
    def __init__(self, spec: CommandSpec, deadline: Deadline, evidence: Evidence, capture_limit: int,
                 on_stdout: OutputSink | None, on_stderr: OutputSink | None, detach_bytes: int | None) -> None:
        self.spec = spec
        self.deadline = deadline
        self.evidence = evidence
        self.stdout = Capture(capture_limit)
        self.stderr = Capture(capture_limit)
        self.error = ErrorStreamDecoder(json_status=True)
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.detach_bytes = detach_bytes
        self.stdin_bytes = 0
        self.detach = asyncio.Event()
        self.negotiated = ""
        self.json_status = True

    def finish_evidence(self, evidence: Evidence) -> Evidence:
        evidence.bytes_sent = self.stdin_bytes
        evidence.timings.total_s = self.deadline.elapsed()
        evidence.notes.append(f"stdout {self.stdout.count} B, stderr {self.stderr.count} B")
        return evidence

    def _first_byte(self) -> None:
        if self.evidence.timings.first_byte_s is None:
            self.evidence.timings.first_byte_s = self.deadline.elapsed()

    async def _out(self, chunk: bytes) -> None:
        self._first_byte()
        self.stdout.add(chunk)
        if self.on_stdout is not None:
            await self.on_stdout(chunk)
        if self.detach_bytes is not None and self.stdout.count + self.stderr.count >= self.detach_bytes:
            self.detach.set()

    async def _err(self, chunk: bytes) -> None:
        self._first_byte()
        self.stderr.add(chunk)
        if self.on_stderr is not None:
            await self.on_stderr(chunk)
        if self.detach_bytes is not None and self.stdout.count + self.stderr.count >= self.detach_bytes:
            self.detach.set()

    async def _status(self, chunk: bytes) -> None:
        self.error.feed(chunk)

    async def go(self, endpoint: Endpoint, proto: CommandProtocol, offer: tuple[str, ...], stdin: StdinSource,
                 close_stdin: bool, size: TerminalSize | None, resize: AsyncIterable[TerminalSize] | None,
                 detach_after: float | None) -> ExecResult:
        session: CommandSession
        if proto is CommandProtocol.SPDY:
            session = await SpdyCommand.open(endpoint, self.spec, offer, self.deadline, self.evidence)
        else:
            session = await WebSocketCommand.open(endpoint, self.spec, proto, self.deadline, self.evidence)
        self.negotiated = session.negotiated
        self.json_status = session.json_status
        self.error = ErrorStreamDecoder(json_status=session.json_status)
        helpers: list[asyncio.Task[None]] = []
        try:
            if stdin is not None:
                helpers.append(asyncio.create_task(self._pump_stdin(session, stdin, close_stdin)))
            if self.spec.tty and (size is not None or resize is not None):
                helpers.append(asyncio.create_task(self._pump_resize(session, size, resize)))
            receiving = asyncio.create_task(session.receive(self._out, self._err, self._status))
            detached = await self._wait(receiving, detach_after)
        finally:
            for task in helpers:
                task.cancel()
            for task in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await session.aclose()
        return self._result(proto, detached)

    async def _wait(self, receiving: asyncio.Task[None], detach_after: float | None) -> bool:
        """Wait for the outputs to end; for attach, detach on time or bytes. True if we detached."""
        if detach_after is None and self.detach_bytes is None:
            await receiving
            return False
        detach = asyncio.create_task(self.detach.wait())
        try:
            done, _ = await asyncio.wait({receiving, detach}, timeout=detach_after,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            detach.cancel()
        if receiving in done:
            await receiving
            return False
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
        return True

    async def _pump_stdin(self, session: CommandSession, stdin: bytes | AsyncIterable[bytes], close: bool) -> None:
        try:
            async for chunk in _chunks(stdin):
                await session.send_stdin(chunk)
                self.stdin_bytes += len(chunk)
            if close:
                await session.close_stdin()
        except StreamingError as exc:
            # The server may stop reading stdin (command exited): client-go ignores that too.
            self.evidence.notes.append(f"stdin stopped after {self.stdin_bytes} B: {exc}")

    async def _pump_resize(self, session: CommandSession, size: TerminalSize | None,
                           resize: AsyncIterable[TerminalSize] | None) -> None:
        if size is not None:
            await session.send_resize(encode_resize(size))  # "Send the initial size right away"
        if resize is not None:
            async for new_size in resize:
                await session.send_resize(encode_resize(new_size))

    def _result(self, proto: CommandProtocol, detached: bool) -> ExecResult:
        exit_code: int | None = None
        message = ""
        if not detached:
            try:
                status = self.error.finish()
                exit_code, message = status.exit_code, status.message
            except RemoteCommandError as exc:
                if self.json_status:
                    raise
                # v1-v3 write text; the kubelet's text ends with the exit code.
                message = exc.message
                match = _EXIT_CODE_IN_TEXT.search(message)
                exit_code = int(match.group(1)) if match else None
        self.evidence.protocol_negotiated = self.negotiated
        self.evidence.exit_code = exit_code
        self.finish_evidence(self.evidence)
        return ExecResult(
            protocol=proto.value, negotiated=self.negotiated, exit_code=exit_code,
            stdout=bytes(self.stdout.data), stderr=bytes(self.stderr.data), stdout_bytes=self.stdout.count,
            stderr_bytes=self.stderr.count, stdout_sha256=self.stdout.sha256.hexdigest(),
            stdin_bytes=self.stdin_bytes, status_message=message, detached=detached, evidence=self.evidence,
        )


async def _chunks(source: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        for i in range(0, len(data), STDIN_CHUNK):
            yield data[i : i + STDIN_CHUNK]
        return
    async for chunk in source:
        for i in range(0, len(chunk), STDIN_CHUNK):
            yield chunk[i : i + STDIN_CHUNK]
