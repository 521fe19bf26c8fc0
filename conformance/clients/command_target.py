"""Exec/attach request targets, built as kubectl builds them (PROTOCOLS.md 3.1)."""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    subresource: str  # "exec" or "attach"
    namespace: str
    pod: str
    container: str | None = None
    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False

    def __post_init__(self) -> None:
        if self.subresource not in ("exec", "attach"):
            raise ValueError(f"subresource {self.subresource!r}")
        if not (self.stdin or self.stdout or self.stderr):
            raise ValueError("at least one of stdin, stdout or stderr must be requested")

    @property
    def effective_stderr(self) -> bool:
        # "With tty, kubectl drops stderr (stdout and stderr share the tty)".
        return self.stderr and not self.tty

    def target(self) -> str:
        """Path and query; keys sorted and one ``command=`` per argv element, as Go encodes them."""
        query: list[tuple[str, str]] = [("command", arg) for arg in self.command]
        if self.container:
            query.append(("container", self.container))
        flags = {"stderr": self.effective_stderr, "stdin": self.stdin, "stdout": self.stdout, "tty": self.tty}
        query.extend((name, "true") for name, on in sorted(flags.items()) if on)
        path = (f"/api/v1/namespaces/{_seg(self.namespace)}/pods/{_seg(self.pod)}/{self.subresource}")
        return f"{path}?{urllib.parse.urlencode(query)}"


def _seg(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def port_forward_target(namespace: str, pod: str, ports: Sequence[int] = ()) -> str:
    path = f"/api/v1/namespaces/{_seg(namespace)}/pods/{_seg(pod)}/portforward"
    return f"{path}?{urllib.parse.urlencode([('ports', str(p)) for p in ports])}" if ports else path


def logs_target(namespace: str, pod: str, container: str | None, *, follow: bool = True,
                since_seconds: int | None = None, tail_lines: int | None = None, timestamps: bool = False) -> str:
    query: list[tuple[str, str]] = []
    if container:
        query.append(("container", container))
    if follow:
        query.append(("follow", "true"))
    if since_seconds is not None:
        query.append(("sinceSeconds", str(since_seconds)))
    if tail_lines is not None:
        query.append(("tailLines", str(tail_lines)))
    if timestamps:
        query.append(("timestamps", "true"))
    path = f"/api/v1/namespaces/{_seg(namespace)}/pods/{_seg(pod)}/log"
    return f"{path}?{urllib.parse.urlencode(query)}" if query else path
