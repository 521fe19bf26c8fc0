"""The incremental tar reader behind cp download: any chunking, long names, kubectl's name rules."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.clients.tar_stream import TarExtractor
from conformance.transport.errors import PeerProtocolError, Truncated


def _tar(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _extract(archive: bytes, dest: Path, prefix: str, step: int) -> TarExtractor:
    extractor = TarExtractor(dest, prefix)

    async def feed() -> None:
        for i in range(0, len(archive), step):
            await extractor.feed(archive[i : i + step])

    asyncio.run(feed())
    extractor.close()
    extractor.check_complete()
    return extractor


@pytest.mark.parametrize("step", [1, 7, 511, 512, 513, 4096, 1 << 20])
def test_single_file_any_chunking(tmp_path: Path, step: int) -> None:
    data = bytes(range(256)) * 41 + b"tail"
    out = tmp_path / f"out-{step}.bin"
    extractor = _extract(_tar([("dir/file.bin", data)]), out, "dir/file.bin", step)
    assert out.read_bytes() == data
    assert extractor.sha256.hexdigest() == hashlib.sha256(data).hexdigest() and extractor.files == 1


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_in_a_directory(tmp_path: Path, fmt: int) -> None:
    long = "d/" + "n" * 150 + ".txt"
    archive = _tar([("d/a.txt", b"a"), (long, b"long"), ("d/empty", b"")], fmt)
    _extract(archive, tmp_path / "copy", "d", 100)
    assert (tmp_path / "copy" / "a.txt").read_bytes() == b"a"
    assert (tmp_path / "copy" / ("n" * 150 + ".txt")).read_bytes() == b"long"
    assert (tmp_path / "copy" / "empty").read_bytes() == b""


def test_member_outside_the_prefix_is_corruption(tmp_path: Path) -> None:
    with pytest.raises(PeerProtocolError, match="corrupted"):
        _extract(_tar([("etc/passwd", b"x")]), tmp_path / "o", "tmp/file", 512)


def test_truncated_archive_is_reported(tmp_path: Path) -> None:
    archive = _tar([("f", b"x" * 2000)])
    extractor = TarExtractor(tmp_path / "f", "f")
    asyncio.run(extractor.feed(archive[:1000]))
    extractor.close()
    with pytest.raises(Truncated, match="488 of 2000 bytes"):
        extractor.check_complete()


FILE = bytes(range(256)) * 40  # 10 KiB
ARCHIVE = _tar([("f", FILE)])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(min_value=0, max_value=len(ARCHIVE) - 1))
def test_a_stream_cut_after_any_n_bytes_is_truncated_or_mismatched(tmp_path_factory: pytest.TempPathFactory,
                                                                    n: int) -> None:
    """Cut anywhere before the end-of-archive block: Truncated; a short file never passes as complete."""
    extractor = TarExtractor(tmp_path_factory.mktemp("cut") / "f", "f")
    asyncio.run(extractor.feed(ARCHIVE[:n]))
    extractor.close()
    complete = n >= 512 + len(FILE) + 512  # header, content, the first end-of-archive block
    if complete:
        extractor.check_complete()  # everything that matters arrived (only record padding is missing)
        assert extractor.sha256.hexdigest() == hashlib.sha256(FILE).hexdigest()
    else:
        with pytest.raises(Truncated):
            extractor.check_complete()
