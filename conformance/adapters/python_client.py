"""The official `kubernetes` Python client as a cell client: WebSocket only (v4.channel.k8s.io for exec and
attach, the legacy WebSocket port-forward), as FIELD.md says the Python and Java clients are.

The client is synchronous (websocket-client underneath); each operation runs in a worker thread under the
cell's deadline. Its User-Agent carries the cell marker, so the audit event can be found. The client's
WebSocket handshake (kubernetes.stream.ws_client) forwards only Authorization and the subprotocol, so attach
and port-forward requests would reach the API server without the marker and no audit event could be tied to
the cell: `_MarkedWebSocket` adds the calling thread's User-Agent to the handshake, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import io
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes import client as k8s
from kubernetes.stream import portforward, stream, ws_client
from kubernetes.stream.ws_client import V5_CHANNEL_PROTOCOL
from websocket import WebSocketConnectionClosedException

from conformance.adapters.base import OpResult, Session
from conformance.classify import classify_text
from conformance.kubeconfig_credentials import ClientCredential, certificate_files
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact

PROTOCOL = "ws-v4"
READ_CHUNK = 65536
_cell_user_agent = threading.local()


class _MarkedWebSocket(ws_client.WebSocket):  # type: ignore[misc]
    """websocket-client's WebSocket with the cell's User-Agent in the handshake (see the module docstring)."""

    def connect(self, url: str, **options: Any) -> None:
        agent = getattr(_cell_user_agent, "value", None)
        if agent:
            options["header"] = [*options.get("header", []), f"User-Agent: {agent}"]
        super().connect(url, **options)


ws_client.WebSocket = _MarkedWebSocket
STDIN_CHUNK = 32 * 1024


def _api(s: Session) -> Any:
    # proxy and no_proxy given: the client then never reads the environment's proxies (the path decides), and
    # never iterates os.environ, which another thread may change meanwhile (conformance.environ).
    conf = k8s.Configuration(proxy=s.endpoint.proxy_url or "", no_proxy="")
    conf.host = s.endpoint.server
    if s.token:
        conf.api_key = {"authorization": f"Bearer {s.token}"}
    if s.credential is not None and s.credential.cert_file and s.credential.key_file:
        conf.cert_file, conf.key_file = s.credential.cert_file, s.credential.key_file
    conf.ssl_ca_cert = s.endpoint.ca_file
    conf.verify_ssl = not s.endpoint.insecure_skip_tls_verify
    api = k8s.ApiClient(conf)
    api.user_agent = s.user_agent
    _cell_user_agent.value = s.user_agent  # this worker thread's WebSocket handshakes carry it too
    return k8s.CoreV1Api(api)


def _failure(evidence: Evidence, exc: BaseException) -> OpResult:
    text = redact(f"{type(exc).__name__}: {exc}")
    evidence.error = text[:1000]
    status = getattr(exc, "status", None)
    if isinstance(status, int) and status:
        evidence.status_line = f"HTTP/1.1 {status} {getattr(exc, 'reason', '')}".strip()
    return OpResult(classify_text(text), evidence, text[:300])


class PythonClientAdapter:
    name = "python"
    version = f"kubernetes-python {kubernetes.__version__}"

    def protocols(self, operation: str) -> tuple[str, ...]:
        if operation in ("exec", "exec-stdin", "cp-upload", "cp-download", "attach"):
            return (PROTOCOL,)
        if operation in ("port-forward", "port-forward-concurrent"):
            return ("ws-legacy",)
        return ()

    async def _in_thread(self, s: Session, fn: Any, *args: Any) -> OpResult:
        evidence = Evidence(protocol_requested=PROTOCOL)
        start = time.monotonic()
        try:
            with certificate_files(s.credential or ClientCredential()) as files:
                if files is not None and s.credential is not None:  # PEM data: files for this cell only
                    s = dataclasses.replace(s, credential=dataclasses.replace(
                        s.credential, cert_file=files[0], key_file=files[1]))
                result: OpResult = await asyncio.wait_for(asyncio.to_thread(fn, s, evidence, *args), s.timeout_s)
        except TimeoutError:
            evidence.error = f"no result within {s.timeout_s:.0f}s"
            result = OpResult(ErrorClass.TIMEOUT, evidence, evidence.error)
        except Exception as exc:
            result = _failure(evidence, exc)
        evidence.timings.total_s = time.monotonic() - start
        return result

    @staticmethod
    def _exec_sync(
        s: Session,
        evidence: Evidence,
        pod: str,
        container: str,
        command: list[str],
        stdin: bytes | None,
        expect_exit: int | None,
        needs_eof: bool,
    ) -> OpResult:
        resp = stream(
            _api(s).connect_get_namespaced_pod_exec,
            pod,
            s.namespace,
            container=container,
            command=command,
            stdin=stdin is not None,
            stdout=True,
            stderr=True,
            tty=False,
            _preload_content=False,
            binary=True,
        )
        subprotocol = getattr(resp, "subprotocol", None) or getattr(resp.sock, "subprotocol", None)
        evidence.protocol_negotiated = subprotocol or PROTOCOL
        stdin_closed: bool | None = None
        if stdin is not None:
            try:
                for i in range(0, len(stdin), STDIN_CHUNK):  # in pieces, as client-go and `kubectl cp` write
                    resp.write_stdin(stdin[i : i + STDIN_CHUNK])
            except (WebSocketConnectionClosedException, OSError) as exc:
                # The command may end before it has read everything (cp-upload's `head -c`): what it did
                # read, and its exit status, are still to be read.
                evidence.notes.append(f"stdin stopped after the server closed it: {exc}")
            if subprotocol == V5_CHANNEL_PROTOCOL:
                try:
                    resp.close_channel(0)  # v5's CLOSE signal: a real half-close of stdin
                    stdin_closed = True
                    evidence.notes.append("stdin half-closed (v5 CLOSE signal)")
                except (WebSocketConnectionClosedException, OSError) as exc:
                    evidence.notes.append(f"stdin could not be half-closed, the server had closed it: {exc}")
            elif needs_eof:
                # v4 has no half-close: the command would wait for end of input forever. Say so; never
                # pretend (the probe turns this into a skip with the reason).
                resp.close()
                text = f"{subprotocol or 'v4.channel.k8s.io'} has no half-close: the client cannot end stdin"
                evidence.notes.append(text)
                return OpResult(ErrorClass.NONE, evidence, text, stdin_closed=False)
            else:
                stdin_closed = False
        out, err, closed = read_until_closed(resp, s.timeout_s - 1)
        if not closed:
            resp.close()
            result = OpResult(ErrorClass.TIMEOUT, evidence, stdout=out, stderr=err, stdin_closed=stdin_closed)
            if stdin_closed:
                result.error_class = ErrorClass.EOF_LOST
                result.message = (
                    f"stdin was half-closed, and the command never exited within {s.timeout_s - 1:.0f} s "
                    f"({len(out)} bytes of output by then)"
                )
            else:
                result.message = f"the command did not end within {s.timeout_s - 1:.0f} s"
            evidence.error = result.message
            return result
        try:
            code = resp.returncode
        except (TypeError, KeyError, IndexError, ValueError):
            code = None  # the session ended without a Status on the error channel
        # The server ended the session, but the client keeps its socket until garbage collection (seconds to a
        # minute); a proxy in between logs the request only when that socket closes.
        resp.close()
        result = OpResult(
            ErrorClass.NONE, evidence, stdout=out, stderr=err, exit_code=code, stdin_closed=stdin_closed
        )
        evidence.exit_code = code
        if expect_exit is not None and code != expect_exit:
            result.error_class = ErrorClass.MISSING_EXIT_STATUS if code is None else ErrorClass.DATA_MISMATCH
            result.message = f"exit code {code}, expected {expect_exit}"
            evidence.error = result.message
        return result

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
        needs_eof: bool = True,
    ) -> OpResult:
        """`needs_eof`: the command only ends at end of stdin (cat); on v4 that cannot be said, and the result
        says so (`stdin_closed=False`) instead of running it."""
        return await self._in_thread(s, self._exec_sync, pod, container, command, stdin, expect_exit, needs_eof)

    async def cp_upload(
        self, s: Session, pod: str, container: str, local: Path, remote: str, *, protocol: str
    ) -> OpResult:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(local), arcname=remote)
        # On v4 the Python client cannot half-close stdin, so the archive is sent and the command reads exactly
        # its size: that is how a Python user has to do cp there, and it works on v5 as well.
        size = len(buf.getvalue())
        return await self.exec(
            s,
            pod,
            container,
            ["sh", "-c", f"head -c {size} | tar xmf -"],
            protocol=protocol,
            stdin=buf.getvalue() + b"\n",
            expect_exit=None,
            needs_eof=False,
        )

    async def cp_download(
        self, s: Session, pod: str, container: str, remote: str, local: Path, *, protocol: str
    ) -> OpResult:
        result = await self.exec(s, pod, container, ["tar", "cf", "-", remote], protocol=protocol)
        if result.error_class is not ErrorClass.NONE:
            return result
        problem, data = untar_one(result.stdout, remote)
        if problem is not None:
            result.error_class, result.message = problem
            result.evidence.error = result.message
            return result
        local.write_bytes(data)
        result.sha256 = hashlib.sha256(data).hexdigest()
        result.size = len(data)
        return result

    async def attach(self, s: Session, pod: str, container: str, *, protocol: str, seconds: float) -> OpResult:
        def run(s: Session, evidence: Evidence) -> OpResult:
            resp = stream(
                _api(s).connect_get_namespaced_pod_attach,
                pod,
                s.namespace,
                container=container,
                stdin=False,
                stdout=True,
                stderr=True,
                tty=False,
                _preload_content=False,
                binary=True,
            )
            out = bytearray()
            end = time.monotonic() + seconds
            while resp.is_open() and time.monotonic() < end:
                resp.update(timeout=0.5)
                if resp.peek_stdout():
                    out += resp.read_stdout()
            resp.close()
            return OpResult(ErrorClass.NONE, evidence, stdout=bytes(out))

        return await self._in_thread(s, run)

    async def logs_follow(
        self, s: Session, pod: str, container: str, *, seconds: float, timestamps: bool = False,
        tail_lines: int | None = None,
    ) -> OpResult:
        return OpResult(ErrorClass.HARNESS, Evidence(), "logs are a plain request: probed by the harness itself")

    async def port_forward(self, s: Session, pod: str, port: int, payloads: list[bytes], *, protocol: str) -> OpResult:
        def run(s: Session, evidence: Evidence) -> OpResult:
            evidence.protocol_requested = "ws-legacy"
            received = []
            for payload in payloads:  # the legacy WebSocket port-forward carries one connection per session
                pf = portforward(_api(s).connect_get_namespaced_pod_portforward, pod, s.namespace, ports=str(port))
                sock = pf.socket(port)
                sock.settimeout(s.timeout_s)
                # Sent from another thread while the echo is read: a payload larger than the socket buffers
                # would deadlock otherwise.
                sender = threading.Thread(target=_send_all, args=(sock, payload), daemon=True)
                sender.start()
                got = bytearray()
                while len(got) < len(payload):
                    try:
                        chunk = sock.recv(READ_CHUNK)
                    except TimeoutError:
                        break
                    if not chunk:
                        break
                    got += chunk
                sender.join(s.timeout_s)
                sock.close()
                pf.close()
                received.append(bytes(got))
            return OpResult(ErrorClass.NONE, evidence, received=received)

        return await self._in_thread(s, run)


def read_until_closed(resp: Any, within_s: float) -> tuple[bytes, bytes, bool]:
    """stdout, stderr, and whether the server closed the session within `within_s`.

    Any `update()` (also the one inside `peek_*`) may consume frames up to and including the close; the
    channel buffers are drained once more after the loop, or output that arrived with the close would be
    lost (the cause of a cp-download flake: a tar stream cut at a frame boundary, exit status Success).
    """
    out, err = bytearray(), bytearray()
    end = time.monotonic() + max(0.0, within_s)
    gone = False
    while resp.is_open() and time.monotonic() < end:
        try:
            resp.update(timeout=min(1.0, max(0.0, end - time.monotonic())))
            if resp.peek_stdout():
                out += resp.read_stdout()
            if resp.peek_stderr():
                err += resp.read_stderr()
        except (WebSocketConnectionClosedException, OSError):
            # websocket-client dropped its socket under the WSClient ("socket is already closed": the server's
            # close raced a read). The session is over; what arrived before it is still buffered, and the exit
            # status is whatever the error channel holds (none: the caller's missing-exit-status).
            gone = True
            break
    closed = gone or not resp.is_open()
    with contextlib.suppress(WebSocketConnectionClosedException, OSError):
        out += resp.read_stdout(timeout=0) or b""
    with contextlib.suppress(WebSocketConnectionClosedException, OSError):
        err += resp.read_stderr(timeout=0) or b""
    return bytes(out), bytes(err), closed


def untar_one(stream_bytes: bytes, name: str) -> tuple[tuple[ErrorClass, str] | None, bytes]:
    """The one file `name` from a tar stream; a short stream is TRUNCATED ("N of M bytes"), a malformed one
    DATA_MISMATCH."""
    try:
        with tarfile.open(fileobj=io.BytesIO(stream_bytes), mode="r:") as tar:
            info = tar.getmember(name)
            member = tar.extractfile(info)
            data = member.read() if member else b""
    except KeyError:
        return (ErrorClass.DATA_MISMATCH, f"the tar stream ({len(stream_bytes)} bytes) has no {name!r}"), b""
    except tarfile.ReadError as exc:
        if any(t in str(exc) for t in ("unexpected end of data", "empty file", "truncated header")):
            return (ErrorClass.TRUNCATED, _short_tar(stream_bytes, name, exc)), b""
        return (ErrorClass.DATA_MISMATCH, f"the tar stream is broken after {len(stream_bytes)} bytes: {exc}"), b""
    except tarfile.TarError as exc:
        return (ErrorClass.DATA_MISMATCH, f"the tar stream is broken after {len(stream_bytes)} bytes: {exc}"), b""
    return None, data


def _short_tar(stream_bytes: bytes, name: str, exc: Exception) -> str:
    try:
        size = tarfile.TarInfo.frombuf(stream_bytes[:512], "utf-8", "surrogateescape").size
    except tarfile.TarError:
        return f"the tar stream ended early, after {len(stream_bytes)} bytes ({exc})"
    got = max(0, min(size, len(stream_bytes) - 512))
    return f"the tar stream ended early: {got} of {size} bytes of {name!r} arrived"


def _send_all(sock: Any, payload: bytes) -> None:
    try:
        sock.sendall(payload)
    except OSError:
        pass  # the reader sees the short echo and says so
