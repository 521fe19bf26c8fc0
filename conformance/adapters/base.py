"""One interface over every client a cell can use: the native clients, real kubectl, the Python client.

Probes speak to `ClientAdapter`; each adapter runs the operation its own way and fills `Evidence` with what
it can see (the native client sees the wire; kubectl's verbose log says which protocol it used and whether
it fell back). Adapters never judge: they report what happened and an error class derived from evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from conformance.config import Endpoint
from conformance.kubeconfig_credentials import ClientCredential
from conformance.model import ErrorClass, Evidence

EXEC_PROTOCOLS = ("spdy", "ws-v5", "ws-v4", "ws-v1", "ws-base64", "ws-v4-base64")
PORT_FORWARD_PROTOCOLS = ("spdy", "ws-tunnel", "ws-legacy")
PLAIN = "http"  # plain requests: logs, watch, whoami, tls


@dataclass
class Session:
    """Where and as whom: one target through one path, with one user's token and/or client certificate."""

    endpoint: Endpoint
    token: str  # "" for a client-certificate user
    namespace: str
    user_agent: str  # carries the cell's marker so the audit event can be found
    timeout_s: float
    kubeconfig: Path | None = None  # written on demand for tools that need one (kubectl)
    expect_user: str | None = None  # the user name the API server should see
    # Mints a deliberately bad token of a kind ("expired", ...) for this user, or None where it cannot.
    bad_token: Callable[[str], str | None] = lambda kind: None
    # The whole credential (a client certificate, kubectl's user stanza); None: `token` is all there is.
    credential: ClientCredential | None = None
    # Known client races seen in any operation of this cell, checks included (conformance.client_races).
    client_races: list[str] = field(default_factory=list)


@dataclass
class OpResult:
    error_class: ErrorClass
    evidence: Evidence
    message: str = ""
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int | None = None
    received: list[bytes] = field(default_factory=list)  # port-forward: per connection
    sha256: str | None = None  # cp: digest of what arrived
    size: int | None = None  # cp: how many bytes arrived
    # exec with stdin: True when the client half-closed stdin, False when it could not (the protocol has no
    # half-close), None when there was no stdin or the client does not say.
    stdin_closed: bool | None = None


class ClientAdapter(Protocol):
    name: str  # cell coordinate, e.g. "native", "kubectl-1.35", "python"
    version: str

    def protocols(self, operation: str) -> tuple[str, ...]:
        """The protocols this client can be pinned to for an operation (empty: not supported)."""
        ...

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
        """Run a command; an exit code other than `expect_exit` is an error (None: any code is fine)."""
        ...

    async def port_forward(
        self, s: Session, pod: str, port: int, payloads: list[bytes], *, protocol: str
    ) -> OpResult: ...

    async def cp_upload(
        self, s: Session, pod: str, container: str, local: Path, remote: str, *, protocol: str
    ) -> OpResult: ...

    async def cp_download(
        self, s: Session, pod: str, container: str, remote: str, local: Path, *, protocol: str
    ) -> OpResult: ...

    async def attach(self, s: Session, pod: str, container: str, *, protocol: str, seconds: float) -> OpResult: ...

    async def logs_follow(
        self, s: Session, pod: str, container: str, *, seconds: float, timestamps: bool = False,
        tail_lines: int | None = None,
    ) -> OpResult:
        """Follow the log for `seconds`; `timestamps`: each line starts with its RFC 3339 time; `tail_lines`:
        at most that many lines of history."""
        ...
