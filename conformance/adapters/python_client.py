"""The official `kubernetes` Python client as a cell client: WebSocket only (v4.channel.k8s.io for exec and
attach, the legacy WebSocket port-forward), as FIELD.md says the Python and Java clients are.

The client is synchronous (websocket-client underneath); each operation runs in a worker thread under the
cell's deadline. Its User-Agent carries the cell marker, so the audit event can be found.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import time
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes import client as k8s
from kubernetes.stream import portforward, stream

from conformance.adapters.base import OpResult, Session
from conformance.classify import classify_text
from conformance.model import ErrorClass, Evidence
from conformance.redact import redact

PROTOCOL = "ws-v4"
READ_CHUNK = 65536


def _api(s: Session) -> Any:
    conf = k8s.Configuration()
    conf.host = s.endpoint.server
    conf.api_key = {"authorization": f"Bearer {s.token}"}
    conf.ssl_ca_cert = s.endpoint.ca_file
    conf.verify_ssl = not s.endpoint.insecure_skip_tls_verify
    if s.endpoint.proxy_url:
        conf.proxy = s.endpoint.proxy_url
    api = k8s.ApiClient(conf)
    api.user_agent = s.user_agent
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
        evidence.protocol_negotiated = resp.sock.subprotocol if getattr(resp.sock, "subprotocol", None) else PROTOCOL
        out, err = bytearray(), bytearray()
        if stdin is not None:
            resp.write_stdin(stdin)
            # v4 has no half-close: the Python client cannot signal EOF on stdin, so `cat` would never end.
            # Close our side once the data is written; that is all the protocol allows.
        closed_by_us = False
        while resp.is_open():
            resp.update(timeout=1)
            if resp.peek_stdout():
                out += resp.read_stdout()
            if resp.peek_stderr():
                err += resp.read_stderr()
            if stdin is not None and len(out) >= len(stdin):
                resp.close()
                closed_by_us = True
        # After we hang up there is no Status to read: the exit code is unknown, by the protocol's design.
        code = None if closed_by_us else resp.returncode
        if not closed_by_us:
            # The server ended the session, but the client keeps its socket until garbage collection (seconds
            # to a minute); a proxy in between logs the request only when that socket closes.
            resp.close()
        result = OpResult(ErrorClass.NONE, evidence, stdout=bytes(out), stderr=bytes(err), exit_code=code)
        evidence.exit_code = code
        if expect_exit is not None and code != expect_exit and stdin is None:
            result.error_class = ErrorClass.MISSING_EXIT_STATUS if code is None else ErrorClass.PROTOCOL_ERROR
            result.message = f"exit code {code}, expected {expect_exit}"
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
    ) -> OpResult:
        return await self._in_thread(s, self._exec_sync, pod, container, command, stdin, expect_exit)

    async def cp_upload(
        self, s: Session, pod: str, container: str, local: Path, remote: str, *, protocol: str
    ) -> OpResult:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(str(local), arcname=remote)
        # The Python client cannot half-close stdin (v4), so the archive is sent and the command reads exactly
        # its size: that is how a Python user has to do cp, and what this cell checks.
        size = len(buf.getvalue())
        return await self.exec(
            s,
            pod,
            container,
            ["sh", "-c", f"head -c {size} | tar xmf -"],
            protocol=protocol,
            stdin=buf.getvalue() + b"\n",
            expect_exit=None,
        )

    async def cp_download(
        self, s: Session, pod: str, container: str, remote: str, local: Path, *, protocol: str
    ) -> OpResult:
        result = await self.exec(s, pod, container, ["tar", "cf", "-", remote], protocol=protocol)
        if result.error_class is not ErrorClass.NONE:
            return result
        try:
            with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
                member = tar.extractfile(remote)
                data = member.read() if member else b""
        except tarfile.TarError as exc:
            result.error_class = ErrorClass.DATA_MISMATCH
            result.message = f"the tar stream from the pod is broken after {len(result.stdout)} bytes: {exc}"
            result.evidence.error = result.message
            return result
        local.write_bytes(data)
        result.sha256 = hashlib.sha256(data).hexdigest()
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

    async def logs_follow(self, s: Session, pod: str, container: str, *, seconds: float) -> OpResult:
        return OpResult(ErrorClass.HARNESS, Evidence(), "logs are a plain request: probed by the harness itself")

    async def port_forward(self, s: Session, pod: str, port: int, payloads: list[bytes], *, protocol: str) -> OpResult:
        def run(s: Session, evidence: Evidence) -> OpResult:
            evidence.protocol_requested = "ws-legacy"
            received = []
            for payload in payloads:  # the legacy WebSocket port-forward carries one connection per session
                pf = portforward(_api(s).connect_get_namespaced_pod_portforward, pod, s.namespace, ports=str(port))
                sock = pf.socket(port)
                sock.settimeout(s.timeout_s)
                sock.sendall(payload)
                got = bytearray()
                while len(got) < len(payload):
                    try:
                        chunk = sock.recv(READ_CHUNK)
                    except TimeoutError:
                        break
                    if not chunk:
                        break
                    got += chunk
                sock.close()
                pf.close()
                received.append(bytes(got))
            return OpResult(ErrorClass.NONE, evidence, received=received)

        return await self._in_thread(s, run)
