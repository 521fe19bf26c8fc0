"""An incremental tar reader that writes members to disk as the bytes arrive (cp download).

Follows kubectl's extraction rules (PROTOCOLS.md 6): every member must start with the source
prefix ("tar contents corrupted" otherwise), names are made relative to the destination, entries that
would land outside it are skipped, and so are symlinks. PAX and GNU long-name headers are understood.
Only one header-sized block and one metadata record (bounded) are ever buffered.
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from pathlib import Path
from typing import BinaryIO

from conformance.transport.errors import PeerProtocolError, Truncated

BLOCK = 512
MAX_META = 1024 * 1024  # one PAX / long-name record


class TarExtractor:
    def __init__(self, dest: Path, prefix: str) -> None:
        self.dest = dest
        self.prefix = prefix
        self.sha256 = hashlib.sha256()  # of every regular file's content, in archive order
        self.content_bytes = 0
        self.files = 0
        self.notes: list[str] = []
        self._header = bytearray()
        self._remaining = 0  # content bytes of the current member still due
        self._padding = 0
        self._meta: bytearray | None = None
        self._meta_type = b""
        self._out: BinaryIO | None = None
        self._pending_name: str | None = None
        self._ended = False
        self._member_size = 0  # declared size of the current regular file

    async def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._ended:
                return  # bytes after the end-of-archive blocks (record padding) are ignored
            if self._remaining:
                take = view[: self._remaining]
                self._content(bytes(take))
                self._remaining -= len(take)
                view = view[len(take) :]
                if not self._remaining:
                    self._finish_member()
            elif self._padding:
                skip = min(self._padding, len(view))
                self._padding -= skip
                view = view[skip:]
            else:
                take = view[: BLOCK - len(self._header)]
                self._header += take
                view = view[len(take) :]
                if len(self._header) == BLOCK:
                    block, self._header = bytes(self._header), bytearray()
                    self._on_header(block)

    def _on_header(self, block: bytes) -> None:
        if block == b"\0" * BLOCK:
            self._ended = True
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise PeerProtocolError(f"tar stream corrupted: {exc}") from exc
        self._padding = (-info.size) % BLOCK
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME):
            if info.size > MAX_META:
                raise PeerProtocolError(f"tar metadata record of {info.size} B")
            self._meta, self._meta_type, self._remaining = bytearray(), info.type, info.size
            if not info.size:
                self._finish_member()
            return
        name = self._pending_name or info.name
        self._pending_name = None
        if info.isreg():
            target = self._target(name)
            self._remaining = info.size
            self._member_size = info.size
            if target is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._out = target.open("wb")
                self.files += 1
            if not info.size:
                self._finish_member()
        elif info.isdir():
            target = self._target(name)
            if target is not None:
                target.mkdir(parents=True, exist_ok=True)
        else:
            self.notes.append(f"skipped {name!r} (tar type {info.type!r})")
            self._remaining = info.size

    def _target(self, name: str) -> Path | None:
        clean = posixpath.normpath(name.lstrip("/"))
        if self.prefix and clean != self.prefix and not clean.startswith(self.prefix.rstrip("/") + "/"):
            raise PeerProtocolError(f"tar contents corrupted: {name!r} is outside {self.prefix!r}")
        rel = clean[len(self.prefix) :].lstrip("/") if self.prefix else clean
        target = (self.dest / rel) if rel else self.dest
        if rel and (".." in Path(rel).parts or Path(rel).is_absolute()):
            self.notes.append(f"skipped {name!r}: outside the destination")
            return None
        return target

    def _content(self, data: bytes) -> None:
        if self._meta is not None:
            self._meta += data
            return
        if self._out is not None:
            self._out.write(data)
            self.sha256.update(data)
            self.content_bytes += len(data)

    def _finish_member(self) -> None:
        if self._meta is not None:
            meta, self._meta = bytes(self._meta), None
            if self._meta_type == tarfile.GNUTYPE_LONGNAME:
                self._pending_name = meta.rstrip(b"\0").decode("utf-8", "surrogateescape")
            else:
                self._pending_name = _pax_path(meta) or self._pending_name
            return
        if self._out is not None:
            self._out.close()
            self._out = None

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def check_complete(self) -> None:
        """A stream that stops early is truncated (the bytes that did arrive were well-formed tar)."""
        if self._remaining and self._meta is None:
            got = self._member_size - self._remaining
            raise Truncated(f"tar stream ended early: {got} of {self._member_size} bytes of the file arrived")
        if self._remaining or self._header or not self._ended:
            raise Truncated(f"tar stream ended early ({self._remaining} content bytes due, no end-of-archive)")


def _pax_path(meta: bytes) -> str | None:
    """The ``path`` record of a PAX extended header ("<len> key=value\\n" records)."""
    pos = 0
    while pos < len(meta):
        space = meta.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(meta[pos:space])
        except ValueError:
            break
        record = meta[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        if key == b"path":
            return value.decode("utf-8", "surrogateescape")
        pos += length
    return None
