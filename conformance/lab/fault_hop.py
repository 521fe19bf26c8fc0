"""A fault-injecting hop: a TLS-terminating proxy on loopback that misbehaves in exactly one way.

A client reaches it like any network path (a server URL with a certificate from the lab CA). It is
HTTP-aware (h11) up to the upgrade, so it can rewrite credentials and impersonation headers, and byte-level
after the 101, where the faults of `conformance.lab.fault_streams` apply. It forwards over TLS to one
upstream (a lab target), verifying the lab CA, on one upstream connection per client connection
(keep-alive on both sides). The faults are listed in `conformance.lab.fault_spec`; docs/paths.md, "Fault
hop", tells how the lab runs one (`conformance lab fault`).

    python -m conformance.lab.fault_hop --port P --cert C --key K --upstream-port U --upstream-ca CA
        --fault SPEC [--signing-key S --issuer-url URL] [--client-cert C --client-key K]

prints `ready https://127.0.0.1:P` once listening and runs until SIGTERM/SIGINT. `GET /.fault-hop/healthz`
is answered by the hop itself (its health check); every other request is forwarded.

Limits: at most MAX_CONNECTIONS clients; request and response heads of MAX_HEAD_BYTES; reads of
READ_SIZE; the latency fault holds at most LATENCY_QUEUE_CHUNKS chunks per direction. Every wait has a
deadline (below), and cancelling the hop closes every connection. The log (stderr) shows method, path
without query, status and what the fault did; never a header value, so never a token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import signal
import ssl
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h11

from conformance.errors import ConformanceError
from conformance.lab.fault_credentials import Header, LabTokens, rewrite
from conformance.lab.fault_spec import CREDENTIAL_KINDS, Fault, FaultKind, parse_fault
from conformance.lab.fault_streams import (
    Corruptor,
    FaultStreamError,
    Passthrough,
    StreamFilter,
    Truncator,
    c2s_swallower,
    framing_for,
    tracker_for,
)

READ_SIZE = 64 * 1024
MAX_CONNECTIONS = 128
MAX_HEAD_BYTES = 64 * 1024  # h11's own default; Kubernetes heads are a few hundred bytes
TLS_HANDSHAKE_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 10.0
FIRST_REQUEST_TIMEOUT_S = 30.0  # a client that connects and says nothing
KEEPALIVE_IDLE_S = 120.0  # between requests on one connection
RESPONSE_HEAD_TIMEOUT_S = 60.0
BODY_IDLE_S = 300.0  # a streamed body (logs -f, watch) silent this long is cut
UPGRADED_IDLE_S = 900.0  # an upgraded session silent this long is cut (squid's read_timeout)
CLOSE_TIMEOUT_S = 2.0
LATENCY_QUEUE_CHUNKS = 64
EVENT_LOG_SIZE = 1000
HEALTH_PATH = b"/.fault-hop/healthz"
UNAUTHORIZED_BODY = (
    b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized",'
    b'"reason":"Unauthorized","code":401}'
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HopConfig:
    fault: Fault
    cert: Path
    key: Path
    upstream_port: int
    upstream_ca: Path
    upstream_host: str = "127.0.0.1"
    upstream_client_cert: tuple[Path, Path] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    tokens: LabTokens | None = None


class _Cut(Exception):
    """The connection ends here, on purpose or because a deadline passed; the message says why."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class FaultHop:
    """The server. `start()` binds and returns the port; `aclose()` closes every connection."""

    def __init__(self, config: HopConfig, log: Callable[[str], None] = _stderr) -> None:
        if config.fault.kind in CREDENTIAL_KINDS and config.tokens is None:
            raise ConformanceError(f"fault {config.fault} needs the lab issuer's signing key and URL")
        self.config = config
        self._log = log
        self.events: deque[str] = deque(maxlen=EVENT_LOG_SIZE)  # what the fault did, for tests and the log
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self.port = 0

    async def start(self) -> int:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.cert, self.config.key)
        ctx.set_alpn_protocols(["http/1.1"])  # upgrades need HTTP/1.1; the hop speaks nothing else
        self._server = await asyncio.start_server(
            self._on_client,
            self.config.host,
            self.config.port,
            ssl=ctx,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_TIMEOUT_S)

    def note(self, conn: int, text: str) -> None:
        self.events.append(text)
        self._log(f"#{conn} {text}")

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tasks) >= MAX_CONNECTIONS:
            await _close(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = next(self._ids)
        session = _Session(self, conn, reader, writer)
        try:
            await session.run()
        except _Cut as exc:
            self.note(conn, str(exc))
        except (OSError, ssl.SSLError, h11.ProtocolError, FaultStreamError, asyncio.IncompleteReadError) as exc:
            self._log(f"#{conn} closed: {type(exc).__name__}: {exc}")
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # one connection's bug must not stop the hop
            self._log(f"#{conn} internal error: {type(exc).__name__}: {exc}")
        finally:
            await session.close()
            self._tasks.discard(task)


class _Sender:
    """Writes to one side; with latency, each chunk leaves `delay_s` after it arrived (pipelined, bounded)."""

    def __init__(self, writer: asyncio.StreamWriter, delay_s: float) -> None:
        self._writer = writer
        self._delay = delay_s
        self._queue: asyncio.Queue[tuple[float, bytes | None]] | None = None
        self._task: asyncio.Task[None] | None = None
        if delay_s:
            self._queue = asyncio.Queue(maxsize=LATENCY_QUEUE_CHUNKS)
            self._task = asyncio.ensure_future(self._run())

    async def send(self, data: bytes) -> None:
        if self._queue is None:
            self._writer.write(data)
            await self._writer.drain()
            return
        assert self._task is not None
        if self._task.done():
            self._task.result()  # re-raise the writer's error
        await self._queue.put((asyncio.get_running_loop().time() + self._delay, data))

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            due, data = await self._queue.get()
            if data is None:
                return
            await asyncio.sleep(max(0.0, due - loop.time()))
            self._writer.write(data)
            await self._writer.drain()

    async def flush(self) -> None:
        if self._queue is not None and self._task is not None:
            if not self._task.done():
                await self._queue.put((0.0, None))
            await self._task

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


class _Session:
    """One client connection: HTTP/1.1 requests until one is upgraded, then the byte relay."""

    def __init__(self, hop: FaultHop, conn: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hop = hop
        self.fault = hop.config.fault
        self.conn = conn
        self.reader, self.writer = reader, writer
        self.client = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.up: h11.Connection | None = None
        self.up_reader: asyncio.StreamReader | None = None
        self.up_writer: asyncio.StreamWriter | None = None
        self.delay_s = self.fault.millis / 1000 if self.fault.kind is FaultKind.LATENCY else 0.0
        self.idle_s = self.fault.seconds if self.fault.kind is FaultKind.IDLE_CUT else None

    def _timeout(self, default: float) -> float:
        return min(default, self.idle_s) if self.idle_s is not None else default

    async def close(self) -> None:
        await _close(self.writer)
        if self.up_writer is not None:
            await _close(self.up_writer)

    # --- HTTP phase ------------------------------------------------------------------------------------

    async def run(self) -> None:
        first = True
        while True:
            timeout = self._timeout(FIRST_REQUEST_TIMEOUT_S if first else KEEPALIVE_IDLE_S)
            event = await self._event(self.client, self.reader, timeout, "waiting for a request")
            first = False
            if isinstance(event, h11.ConnectionClosed):
                return
            if not isinstance(event, h11.Request):
                raise _Cut(f"unexpected {type(event).__name__} from the client")
            path = event.target.split(b"?", 1)[0]
            if path == HEALTH_PATH:
                await self._drain_request()
                await self._answer(200, b"ok\n", b"text/plain")
            else:
                result = rewrite(self.fault, event.headers.raw_items(), self.hop.config.tokens)
                label = f"{event.method.decode()} {path.decode('latin-1')}"
                if result.answer is not None:
                    await self._drain_request()
                    await self._answer(result.answer, UNAUTHORIZED_BODY, b"application/json")
                    self.hop.note(self.conn, f"{label} -> {result.answer} by the hop: {result.note}")
                else:
                    if result.note:
                        self.hop.note(self.conn, f"{label}: {result.note}")
                    if await self._forward(event, result.headers, label):
                        return
            if self.client.our_state is h11.MUST_CLOSE or self.client.their_state is not h11.DONE:
                return
            self.client.start_next_cycle()

    async def _event(self, conn: h11.Connection, reader: asyncio.StreamReader, timeout: float, what: str) -> object:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    raise _Cut(self._silence(timeout, what)) from None
                conn.receive_data(data)
                continue
            if event is h11.PAUSED:
                raise _Cut(f"paused while {what}")
            return event

    def _silence(self, timeout: float, what: str) -> str:
        if self.idle_s is not None and timeout >= self.idle_s:
            return f"idle cut after {self.idle_s:g} s silent ({what})"
        return f"deadline of {timeout:g} s passed while {what}"

    async def _drain_request(self) -> None:
        while True:
            event = await self._event(self.client, self.reader, FIRST_REQUEST_TIMEOUT_S, "reading a request body")
            if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return

    async def _answer(self, status: int, body: bytes, content_type: bytes) -> None:
        headers = [(b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode())]
        out = self.client.send(h11.Response(status_code=status, headers=headers))
        out = (out or b"") + (self.client.send(h11.Data(data=body)) or b"")
        out += self.client.send(h11.EndOfMessage()) or b""
        self.writer.write(out)
        await self.writer.drain()

    async def _upstream(self) -> tuple[h11.Connection, asyncio.StreamReader, asyncio.StreamWriter]:
        if self.up is None or self.up_reader is None or self.up_writer is None:
            cfg = self.hop.config
            ctx = ssl.create_default_context(cafile=str(cfg.upstream_ca))
            if cfg.upstream_client_cert is not None:
                ctx.load_cert_chain(*cfg.upstream_client_cert)
            ctx.set_alpn_protocols(["http/1.1"])
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(cfg.upstream_host, cfg.upstream_port, ssl=ctx),
                    CONNECT_TIMEOUT_S,
                )
            except TimeoutError:
                raise _Cut(f"no connection to the upstream within {CONNECT_TIMEOUT_S:g} s") from None
            self.up_reader, self.up_writer = reader, writer
            self.up = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
            return self.up, reader, writer
        return self.up, self.up_reader, self.up_writer

    async def _forward(self, request: h11.Request, headers: list[Header], label: str) -> bool:
        """Forward one request and its response; True when the connection was upgraded (and is now done)."""
        up, up_reader, up_writer = await self._upstream()
        up_writer.write(up.send(h11.Request(method=request.method, target=request.target, headers=headers)) or b"")
        while True:
            event = await self._event(self.client, self.reader, FIRST_REQUEST_TIMEOUT_S, "reading a request body")
            if isinstance(event, h11.Data):
                up_writer.write(up.send(h11.Data(data=event.data)) or b"")
                await up_writer.drain()
            elif isinstance(event, h11.EndOfMessage):
                up_writer.write(up.send(h11.EndOfMessage()) or b"")
                await up_writer.drain()
                break
            else:
                raise _Cut("the client went away during its request")
        while True:
            event = await self._event(up, up_reader, self._timeout(RESPONSE_HEAD_TIMEOUT_S), "waiting for the response")
            await self._delay()
            if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                return await self._switch(event, label)
            if isinstance(event, h11.InformationalResponse):
                self.writer.write(self.client.send(event) or b"")
                continue
            if not isinstance(event, h11.Response):
                raise _Cut(f"{label}: the upstream closed before answering")
            self.hop.note(self.conn, f"{label} -> {event.status_code}")
            self.writer.write(
                self.client.send(
                    h11.Response(status_code=event.status_code, headers=event.headers.raw_items(), reason=event.reason)
                )
                or b""
            )
            await self.writer.drain()
            break
        while True:
            event = await self._event(up, up_reader, self._timeout(BODY_IDLE_S), "streaming a response body")
            if isinstance(event, h11.Data):
                await self._delay()
                self.writer.write(self.client.send(h11.Data(data=event.data)) or b"")
                await self.writer.drain()
            elif isinstance(event, h11.EndOfMessage):
                self.writer.write(self.client.send(h11.EndOfMessage()) or b"")
                await self.writer.drain()
                break
            else:
                raise _Cut(f"{label}: the upstream closed mid-body")
        if up.our_state is h11.MUST_CLOSE or up.their_state is not h11.DONE:
            await _close(up_writer)
            self.up = self.up_reader = self.up_writer = None
        else:
            up.start_next_cycle()
        return False

    async def _delay(self) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)

    async def _switch(self, response: h11.InformationalResponse, label: str) -> bool:
        assert self.up is not None and self.up_reader is not None and self.up_writer is not None
        headers = response.headers.raw_items()
        self.writer.write(
            self.client.send(h11.InformationalResponse(status_code=101, headers=headers, reason=response.reason)) or b""
        )
        await self.writer.drain()
        upgrade = _header(headers, b"upgrade")
        subprotocol = _header(headers, b"sec-websocket-protocol")
        self.hop.note(self.conn, f"{label} -> 101 {upgrade} {subprotocol}".rstrip())
        client_rest, _ = self.client.trailing_data
        up_rest, _ = self.up.trailing_data
        await _Relay(self, upgrade, subprotocol).run(bytes(client_rest), bytes(up_rest))
        return True


def _header(headers: list[Header], name: bytes) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return ""


class _Relay:
    """The upgraded byte streams, each through its fault filter, until one side ends or a fault ends it."""

    def __init__(self, session: _Session, upgrade: str, subprotocol: str) -> None:
        self.s = session
        fault = session.fault
        framing = framing_for(upgrade, subprotocol)
        self.s2c: StreamFilter = Passthrough()
        self.c2s: StreamFilter = Passthrough()
        if fault.kind is FaultKind.CORRUPT:
            self.s2c = Corruptor(fault.count, tracker_for(framing))
        elif fault.kind is FaultKind.CORRUPT_C2S:
            self.c2s = Corruptor(fault.count, tracker_for(framing))
        elif fault.kind is FaultKind.TRUNCATE:
            self.s2c = Truncator(fault.count, tracker_for(framing))
        elif fault.kind is FaultKind.SWALLOW_EOF:
            self.c2s = c2s_swallower(framing, subprotocol)
        self.idle_s = session.idle_s if session.idle_s is not None else UPGRADED_IDLE_S
        self.last = asyncio.get_running_loop().time()

    async def run(self, client_rest: bytes, up_rest: bytes) -> None:
        s = self.s
        assert s.up_reader is not None and s.up_writer is not None
        to_client, to_up = _Sender(s.writer, s.delay_s), _Sender(s.up_writer, s.delay_s)
        tasks = {
            asyncio.ensure_future(self._pump("server->client", s.up_reader, to_client, self.s2c, up_rest)),
            asyncio.ensure_future(self._pump("client->server", s.reader, to_up, self.c2s, client_rest)),
            asyncio.ensure_future(self._watchdog()),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            to_client.cancel()
            to_up.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, result in zip(tasks, results, strict=True):
            if task in done and isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result
        reason = next((task.result() for task in done if not task.cancelled() and task.exception() is None), "")
        if reason:
            s.hop.note(s.conn, reason)

    async def _pump(
        self, direction: str, reader: asyncio.StreamReader, sender: _Sender, filt: StreamFilter, first: bytes
    ) -> str:
        data, total, flipped, swallowed = first, 0, False, 0
        while True:
            if data:
                self.last = asyncio.get_running_loop().time()
                out = filt.feed(data)
                total += len(out)
                if isinstance(filt, Corruptor) and filt.flipped_at is not None and not flipped:
                    flipped = True
                    self.s.hop.note(self.s.conn, f"corrupted {direction} byte at offset {filt.flipped_at}")
                while getattr(filt, "swallowed", 0) > swallowed:
                    swallowed += 1
                    self.s.hop.note(self.s.conn, f"swallowed the client's end of stdin ({direction}, #{swallowed})")
                if out:
                    await sender.send(out)
                if filt.finished:
                    await sender.flush()
                    return f"truncated {direction} after {total} bytes (clean close)"
            data = await reader.read(READ_SIZE)
            if not data:
                await sender.flush()
                return ""

    async def _watchdog(self) -> str:
        loop = asyncio.get_running_loop()
        while True:
            remaining = self.last + self.idle_s - loop.time()
            if remaining <= 0:
                return f"idle cut after {self.idle_s:g} s silent (upgraded)"
            await asyncio.sleep(remaining)


async def _close(writer: asyncio.StreamWriter) -> None:
    """Close cleanly (TLS close_notify, FIN) within a deadline, else abort."""
    if writer.transport.is_closing():
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_S)
    except (TimeoutError, OSError, ssl.SSLError):
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise


# --- command line ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> HopConfig:
    parser = argparse.ArgumentParser(prog="python -m conformance.lab.fault_hop", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--upstream-ca", type=Path, required=True)
    parser.add_argument("--client-cert", type=Path, default=None)
    parser.add_argument("--client-key", type=Path, default=None)
    parser.add_argument("--fault", required=True, help="none, corrupt:N, truncate:N, idle-cut:S, ...")
    parser.add_argument("--signing-key", type=Path, default=None, help="the lab issuer's key (credential faults)")
    parser.add_argument("--issuer-url", default=None)
    args = parser.parse_args(argv)
    fault = parse_fault(args.fault)
    tokens = None
    if args.signing_key is not None and args.issuer_url:
        tokens = LabTokens(args.signing_key, args.issuer_url)
    client_cert = (args.client_cert, args.client_key) if args.client_cert and args.client_key else None
    return HopConfig(
        fault=fault,
        cert=args.cert,
        key=args.key,
        upstream_host=args.upstream_host,
        upstream_port=args.upstream_port,
        upstream_ca=args.upstream_ca,
        upstream_client_cert=client_cert,
        host=args.host,
        port=args.port,
        tokens=tokens,
    )


async def _serve(config: HopConfig) -> None:
    hop = FaultHop(config)
    port = await hop.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready https://{config.host}:{port} fault {config.fault}", flush=True)
    await stop.wait()
    await hop.aclose()


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except ConformanceError as exc:
        print(f"fault_hop: error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
