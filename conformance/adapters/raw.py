"""The "raw" client of security cells: the probe writes its HTTP/1.1 requests itself (probes/security.py),
so that odd header casing and refused upgrades reach the wire and the evidence exactly as written."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

from conformance import __version__
from conformance.adapters.base import OpResult, Session


class RawRequests:
    name = "raw"
    version = f"k8s-streaming-conformance {__version__}"

    def protocols(self, operation: str) -> tuple[str, ...]:
        return ()  # security cells are enumerated by probes.security, not from a client's protocols

    @staticmethod
    def _not_a_streaming_client() -> NoReturn:
        raise NotImplementedError("raw requests are written by the security probes themselves")

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
        self._not_a_streaming_client()

    async def port_forward(self, s: Session, pod: str, port: int, payloads: list[bytes], *, protocol: str) -> OpResult:
        self._not_a_streaming_client()

    async def cp_upload(
        self, s: Session, pod: str, container: str, local: Path, remote: str, *, protocol: str
    ) -> OpResult:
        self._not_a_streaming_client()

    async def cp_download(
        self, s: Session, pod: str, container: str, remote: str, local: Path, *, protocol: str
    ) -> OpResult:
        self._not_a_streaming_client()

    async def attach(self, s: Session, pod: str, container: str, *, protocol: str, seconds: float) -> OpResult:
        self._not_a_streaming_client()

    async def logs_follow(
        self, s: Session, pod: str, container: str, *, seconds: float, timestamps: bool = False,
        tail_lines: int | None = None,
    ) -> OpResult:
        self._not_a_streaming_client()


RAW = RawRequests()
