"""Native clients for every Kubernetes streaming protocol (see docs/clients.md).

    await exec_(endpoint, namespace, pod, container, command, protocol="spdy", stdin=..., timeouts=...)
    await attach(endpoint, namespace, pod, container, protocol="ws-v5", max_duration=3)
    async with await open_port_forward(endpoint, namespace, pod, protocol="ws-tunnel") as pf:
        conn = await pf.connect(8080)
    await port_forward_echo(endpoint, namespace, pod, 8080, protocol="spdy", size=..., connections=20)
    await cp_upload(endpoint, namespace, pod, container, local, remote, protocol="spdy")
    await cp_download(endpoint, namespace, pod, container, remote, local, protocol="ws-v5")
    await logs_follow(endpoint, namespace, pod, container, max_bytes=..., max_duration=...)

Results carry ``evidence`` (``conformance.model.Evidence``); failures raise
``conformance.transport.errors.StreamingError`` subclasses carrying ``error_class`` and ``evidence``.
"""

from conformance.clients.cp import cp_download, cp_upload
from conformance.clients.logs import logs_follow
from conformance.clients.portforward import ForwardedConnection, PortForwardSession, open_port_forward
from conformance.clients.protocols import CommandProtocol, PortForwardProtocol
from conformance.clients.remotecommand import attach, exec_
from conformance.clients.results import (
    ConnectionTransfer,
    CpResult,
    ExecResult,
    LogsResult,
    PortForwardResult,
    error_class_of,
)
from conformance.clients.transfer import echo_transfer, port_forward_echo
from conformance.transport.endpoint import Endpoint
from conformance.transport.timeouts import Timeouts
from conformance.wire.remotecommand import TerminalSize

__all__ = [
    "CommandProtocol",
    "ConnectionTransfer",
    "CpResult",
    "Endpoint",
    "ExecResult",
    "ForwardedConnection",
    "LogsResult",
    "PortForwardProtocol",
    "PortForwardResult",
    "PortForwardSession",
    "TerminalSize",
    "Timeouts",
    "attach",
    "cp_download",
    "cp_upload",
    "echo_transfer",
    "error_class_of",
    "exec_",
    "logs_follow",
    "open_port_forward",
    "port_forward_echo",
]
