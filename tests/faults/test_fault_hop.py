"""The fault hop between an in-process TLS client and an in-process TLS upstream: each fault does exactly
what it says, and `none` is byte-transparent. No lab."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable

import jwt
import pytest
from websockets.frames import Frame, Opcode

from conformance.lab.fault_credentials import LabTokens
from conformance.lab.fault_hop import HEALTH_PATH
from conformance.lab.pki import Pki, ensure_pki
from conformance.wire.spdy_codec import FrameReader, FrameWriter
from conformance.wire.spdy_frames import Data, SynReply, SynStream
from conformance.wire.spdy_frames import Frame as Frame_
from tests.faults.helpers import ISSUER_URL, Client, Upstream, cert_cn, hop_in_front, upgrade_headers, ws_payloads

PATTERN = bytes(i % 251 for i in range(300_000))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tokens(pki: Pki) -> LabTokens:
    return LabTokens(pki.oidc_signing_key, ISSUER_URL)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 60))


# --- none: the control --------------------------------------------------------------------------------------


def test_none_is_byte_transparent_both_ways_and_keeps_headers(pki: Pki) -> None:
    script = os.urandom(1 << 20)
    sent = os.urandom(1 << 20)

    async def go() -> None:
        upstream = Upstream(pki, script=script)
        async with hop_in_front(pki, upstream, "none") as hop:
            client = await Client.connect(pki, hop.port)
            status, _, rest = await client.request("POST", "/x?y=1", [*upgrade_headers(), ("X-Odd-CASE", "v")])
            assert status == 101
            received = bytearray(rest)
            client.writer.write(sent)
            await client.writer.drain()
            while len(received) < len(script):
                received += await asyncio.wait_for(client.reader.read(65536), 10)
            await client.close()
            await asyncio.wait_for(upstream.upgraded_done.wait(), 10)
            assert bytes(received) == script
            assert bytes(upstream.received) == sent
            request = upstream.requests[0]
            assert request.target == b"/x?y=1"
            assert (b"X-Odd-CASE", b"v") in request.headers.raw_items()

    run(go)


def test_keep_alive_requests_pass_and_the_health_path_is_answered_by_the_hop(pki: Pki) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "none") as hop:
            client = await Client.connect(pki, hop.port)
            for _ in range(3):
                status, _, body = await client.request("GET", "/api", [])
                assert (status, body) == (200, b"hello\n")
            status, _, body = await client.request("GET", HEALTH_PATH.decode(), [])
            assert (status, body) == (200, b"ok\n")
            await client.close()
            assert len(upstream.requests) == 3
            assert len(upstream.peer_certs) == 1  # one upstream connection, kept alive
            assert upstream.peer_certs[0] is None  # no client certificate unless pass-impersonation

    run(go)


# --- byte faults --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, 1, 65_535, 100_000, 299_999])
def test_corrupt_flips_exactly_the_byte_at_offset_n(pki: Pki, offset: int) -> None:
    async def go() -> None:
        upstream = Upstream(pki, script=PATTERN, close_after_script=True)
        log: list[str] = []
        async with hop_in_front(pki, upstream, f"corrupt:{offset}", log=log) as hop:
            client = await Client.connect(pki, hop.port)
            status, _, rest = await client.request("POST", "/x", upgrade_headers())
            assert status == 101
            received = rest + await client.read_to_eof()
            await client.close()
        assert len(received) == len(PATTERN)
        diff = [i for i in range(len(PATTERN)) if received[i] != PATTERN[i]]
        assert diff == [offset]
        assert received[offset] == PATTERN[offset] ^ 0xFF
        assert any(f"byte at offset {offset}" in line for line in log), log

    run(go)


def test_corrupt_c2s_flips_the_client_to_server_byte(pki: Pki) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "corrupt-c2s:70000") as hop:
            client = await Client.connect(pki, hop.port)
            assert (await client.request("POST", "/x", upgrade_headers()))[0] == 101
            client.writer.write(PATTERN)
            await client.writer.drain()
            while len(upstream.received) < len(PATTERN):
                await asyncio.sleep(0.01)
            await client.close()
        diff = [i for i in range(len(PATTERN)) if upstream.received[i] != PATTERN[i]]
        assert diff == [70000]

    run(go)


def test_corrupt_skips_spdy_frame_headers_and_control_frames(pki: Pki) -> None:
    """The offset falls inside a frame header: the first DATA payload byte after it is changed instead, so
    the client decodes every frame and sees wrong data."""
    writer = FrameWriter()
    reply = writer.encode(SynReply(stream_id=1, headers=(("streamtype", "stdout"),)))
    frames = [
        reply,
        writer.encode(Data(stream_id=1, data=b"a" * 100)),
        writer.encode(Data(stream_id=1, data=b"b" * 100)),
    ]
    script = b"".join(frames)
    offset = len(reply) + 108 + 3  # inside the second DATA frame's 8-byte header

    async def go() -> None:
        upstream = Upstream(pki, upgrade_headers=[(b"Upgrade", b"SPDY/3.1")], script=script, close_after_script=True)
        async with hop_in_front(pki, upstream, f"corrupt:{offset}") as hop:
            client = await Client.connect(pki, hop.port)
            status, _, rest = await client.request("POST", "/exec", upgrade_headers("SPDY/3.1"))
            assert status == 101
            received = rest + await client.read_to_eof()
            await client.close()
        reader = FrameReader()
        reader.receive_data(received)
        decoded = [reader.next_frame() for _ in range(3)]
        assert isinstance(decoded[2], Data)
        assert decoded[2].data == bytes([ord("b") ^ 0xFF]) + b"b" * 99
        assert isinstance(decoded[1], Data) and decoded[1].data == b"a" * 100

    run(go)


def test_corrupt_skips_websocket_headers_and_the_channel_byte(pki: Pki) -> None:
    first = Frame(Opcode.BINARY, b"\x01" + b"a" * 50).serialize(mask=False)
    second = Frame(Opcode.BINARY, b"\x01" + b"b" * 50).serialize(mask=False)
    offset = len(first)  # the second frame's header; its channel byte follows

    async def go() -> None:
        headers = [(b"Upgrade", b"websocket"), (b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io")]
        upstream = Upstream(pki, upgrade_headers=headers, script=first + second, close_after_script=True)
        async with hop_in_front(pki, upstream, f"corrupt:{offset}") as hop:
            client = await Client.connect(pki, hop.port)
            status, _, rest = await client.request("GET", "/exec", upgrade_headers("websocket"))
            assert status == 101
            received = rest + await client.read_to_eof()
            await client.close()
        assert received[: len(first)] == first
        tail = received[len(first) :]
        assert tail[:3] == second[:3]  # header (2 bytes) and channel byte untouched
        assert tail[3] == ord("b") ^ 0xFF and tail[4:] == second[4:]

    run(go)


@pytest.mark.parametrize("limit", [0, 1, 100_000])
def test_truncate_delivers_exactly_n_bytes_then_a_clean_close(pki: Pki, limit: int) -> None:
    async def go() -> None:
        upstream = Upstream(pki, script=PATTERN)
        async with hop_in_front(pki, upstream, f"truncate:{limit}") as hop:
            client = await Client.connect(pki, hop.port)
            status, _, rest = await client.request("POST", "/x", upgrade_headers())
            assert status == 101
            received = rest + await client.read_to_eof()  # EOF, not an error: a clean close
            await client.close()
            await asyncio.wait_for(upstream.upgraded_done.wait(), 10)  # the upstream side is closed too
        assert received == PATTERN[:limit]

    run(go)


def test_idle_cut_closes_a_silent_session_not_before_s_seconds(pki: Pki) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        log: list[str] = []
        async with hop_in_front(pki, upstream, "idle-cut:1", log=log) as hop:
            client = await Client.connect(pki, hop.port)
            assert (await client.request("POST", "/x", upgrade_headers()))[0] == 101
            loop = asyncio.get_running_loop()
            # Traffic every 0.1 s (a tenth of the limit) keeps it open past the idle limit.
            last_write = loop.time()
            for _ in range(20):
                client.writer.write(b"x")
                await client.writer.drain()
                last_write = loop.time()
                await asyncio.sleep(0.1)
            assert len(upstream.received) >= 10 and not client.reader.at_eof()
            assert await client.read_to_eof() == b""
            silent = loop.time() - last_write
            await client.close()
        assert silent >= 1 - 0.02  # never before S after the last byte (timer granularity aside)
        assert any("idle cut after 1 s" in line for line in log), log

    run(go)


def test_idle_cut_also_closes_an_idle_keep_alive_connection(pki: Pki) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "idle-cut:0.3") as hop:
            client = await Client.connect(pki, hop.port)
            assert (await client.request("GET", "/api", []))[0] == 200
            assert await client.read_to_eof() == b""
            await client.close()

    run(go)


def test_latency_delays_each_chunk_by_at_least_ms(pki: Pki) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "latency:300") as hop:
            client = await Client.connect(pki, hop.port)
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            assert (await client.request("POST", "/x", upgrade_headers()))[0] == 101
            assert loop.time() - t0 >= 0.3  # the 101 itself is delayed
            t1 = loop.time()
            client.writer.write(b"ping")
            await client.writer.drain()
            while bytes(upstream.received) != b"ping":
                await asyncio.sleep(0.01)
            assert loop.time() - t1 >= 0.3
            await client.close()

    run(go)


# --- swallow-eof ------------------------------------------------------------------------------------------


def test_swallow_eof_clears_fin_on_the_spdy_stdin_stream_only(pki: Pki) -> None:
    writer = FrameWriter()
    sent: list[Frame_] = [
        SynStream(stream_id=1, headers=(("streamtype", "error"),)),
        SynStream(stream_id=3, headers=(("streamtype", "stdin"),)),
        SynStream(stream_id=5, headers=(("streamtype", "stdout"),), fin=True),
        Data(stream_id=3, data=b"hello"),
        Data(stream_id=3, fin=True),  # the client's end of stdin
        Data(stream_id=5, data=b"z", fin=True),
        SynStream(stream_id=7, headers=(("streamtype", "stdin"),), fin=True),  # stdin closed at once
    ]
    wire = b"".join(writer.encode(f) for f in sent)

    async def go() -> None:
        upstream = Upstream(pki, upgrade_headers=[(b"Upgrade", b"SPDY/3.1")])
        log: list[str] = []
        async with hop_in_front(pki, upstream, "swallow-eof", log=log) as hop:
            client = await Client.connect(pki, hop.port)
            assert (await client.request("POST", "/exec", upgrade_headers("SPDY/3.1")))[0] == 101
            for i in range(0, len(wire), 7):  # split anywhere: frames cross reads
                client.writer.write(wire[i : i + 7])
                await client.writer.drain()
            while len(upstream.received) < len(wire):
                await asyncio.sleep(0.01)
            await client.close()
        reader = FrameReader()
        reader.receive_data(bytes(upstream.received))
        got = []
        while (frame := reader.next_frame()) is not None:
            got.append(frame)
        assert len(got) == len(sent)
        fins = [(type(f).__name__, f.stream_id, f.fin) for f in got]  # type: ignore[union-attr]
        assert fins == [
            ("SynStream", 1, False),
            ("SynStream", 3, False),
            ("SynStream", 5, True),
            ("Data", 3, False),
            ("Data", 3, False),
            ("Data", 5, True),
            ("SynStream", 7, False),
        ]
        assert got[3].data == b"hello"  # type: ignore[union-attr]
        assert sum("swallowed" in line for line in log) == 2

    run(go)


def test_swallow_eof_drops_the_websocket_v5_stdin_close_message_only(pki: Pki) -> None:
    messages = [b"\x00hello", b"\xff\x00", b"\xff\x02", b"\x00", b"\x00" + b"q" * 200]
    wire = b"".join(Frame(Opcode.BINARY, m).serialize(mask=True) for m in messages)

    async def go() -> None:
        headers = [(b"Upgrade", b"websocket"), (b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io")]
        upstream = Upstream(pki, upgrade_headers=headers)
        async with hop_in_front(pki, upstream, "swallow-eof") as hop:
            client = await Client.connect(pki, hop.port)
            assert (await client.request("GET", "/exec", upgrade_headers("websocket")))[0] == 101
            for i in range(0, len(wire), 3):
                client.writer.write(wire[i : i + 3])
                await client.writer.drain()
            expected = b"".join(Frame(Opcode.BINARY, m).serialize(mask=True) for m in messages if m != b"\xff\x00")
            while len(upstream.received) < len(expected):
                await asyncio.sleep(0.01)
            await client.close()
        assert ws_payloads(bytes(upstream.received)) == [m for m in messages if m != b"\xff\x00"]

    run(go)


# --- credential faults -------------------------------------------------------------------------------------


def _forwarded(upstream: Upstream) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in upstream.requests[-1].headers.raw_items():
        headers.setdefault(name.decode().lower(), []).append(value.decode())
    return headers


def _claims(headers: dict[str, list[str]]) -> dict[str, object]:
    token = headers["authorization"][0].removeprefix("Bearer ")
    return dict(jwt.decode(token, options={"verify_signature": False}))


async def _get(pki: Pki, port: int, headers: list[tuple[str, str]]) -> int:
    client = await Client.connect(pki, port)
    status, _, _ = await client.request("GET", "/api", headers)
    await client.close()
    return status


def test_swap_credential_replaces_the_token_with_another_users(pki: Pki, tokens: LabTokens) -> None:
    alice = tokens.mint("alice")

    async def go() -> None:
        upstream = Upstream(pki)
        log: list[str] = []
        async with hop_in_front(pki, upstream, "swap-credential:bob", log=log) as hop:
            assert await _get(pki, hop.port, [("Authorization", f"Bearer {alice}")]) == 200
            forwarded = _forwarded(upstream)
            assert len(forwarded["authorization"]) == 1
            assert _claims(forwarded)["sub"] == "bob" and _claims(forwarded)["groups"] == ["viewers"]
            assert tokens.verify(forwarded["authorization"][0].removeprefix("Bearer ")) is not None
            assert await _get(pki, hop.port, []) == 200
            assert "authorization" not in _forwarded(upstream)  # nothing to swap
        assert not any(alice in line or "Bearer" in line for line in log), log

    run(go)


def test_extra_group_keeps_the_user_and_adds_the_group(pki: Pki, tokens: LabTokens) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "extra-group:system:masters") as hop:
            assert await _get(pki, hop.port, [("Authorization", f"Bearer {tokens.mint('alice')}")]) == 200
            claims = _claims(_forwarded(upstream))
            assert claims["sub"] == "alice" and claims["groups"] == ["devs", "system:masters"]
            # A token that does not verify is passed as it is: the API server refuses it.
            assert await _get(pki, hop.port, [("Authorization", "Bearer not-a-jwt")]) == 200
            assert _forwarded(upstream)["authorization"] == ["Bearer not-a-jwt"]

    run(go)


def test_anonymous_as_sends_requests_without_a_credential_as_the_user(pki: Pki, tokens: LabTokens) -> None:
    bob = tokens.mint("bob")

    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "anonymous-as:alice") as hop:
            assert await _get(pki, hop.port, []) == 200
            assert _claims(_forwarded(upstream))["sub"] == "alice"
            assert await _get(pki, hop.port, [("Authorization", f"Bearer {bob}")]) == 200
            assert _forwarded(upstream)["authorization"] == [f"Bearer {bob}"]

    run(go)


def test_pass_impersonation_forwards_as_the_proxy_with_the_clients_impersonate_headers(
    pki: Pki, tokens: LabTokens
) -> None:
    alice = tokens.mint("alice")
    smuggled = [
        ("Impersonate-User", "lab-admin"),
        ("Impersonate-Group", "system:masters"),
        ("Impersonate-Uid", "0"),
        ("Impersonate-Extra-Scopes", "cluster-admin"),
    ]

    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "pass-impersonation", client_cert=True) as hop:
            assert await _get(pki, hop.port, []) == 401  # no token: the hop refuses, nothing forwarded
            assert await _get(pki, hop.port, [("Authorization", "Bearer forged")]) == 401
            assert upstream.requests == []
            assert await _get(pki, hop.port, [("Authorization", f"Bearer {alice}"), *smuggled]) == 200
            forwarded = _forwarded(upstream)
            assert "authorization" not in forwarded
            assert forwarded["impersonate-user"] == ["lab-admin"]
            assert forwarded["impersonate-group"] == ["system:masters"]
            assert forwarded["impersonate-uid"] == ["0"]
            assert forwarded["impersonate-extra-scopes"] == ["cluster-admin"]
            assert cert_cn(upstream.peer_certs[-1]) == "kube-oidc-proxy"
            # Without client impersonation it impersonates the token's user, as a proxy should.
            assert await _get(pki, hop.port, [("Authorization", f"Bearer {alice}")]) == 200
            forwarded = _forwarded(upstream)
            assert forwarded["impersonate-user"] == ["alice"] and forwarded["impersonate-group"] == ["devs"]
            # A group without a user gets the token's user added: the group elevates.
            headers = [("Authorization", f"Bearer {alice}"), ("Impersonate-Group", "system:masters")]
            assert await _get(pki, hop.port, headers) == 200
            forwarded = _forwarded(upstream)
            assert forwarded["impersonate-user"] == ["alice"]
            assert forwarded["impersonate-group"] == ["system:masters", "devs"]

    run(go)


def test_the_401_body_is_a_kubernetes_status(pki: Pki) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "pass-impersonation", client_cert=True) as hop:
            client = await Client.connect(pki, hop.port)
            status, _, body = await client.request("GET", "/api", [])
            await client.close()
        assert status == 401 and json.loads(body)["reason"] == "Unauthorized"

    run(go)


def test_cancelling_the_hop_closes_every_connection(pki: Pki) -> None:
    async def go() -> None:
        upstream = Upstream(pki)
        async with hop_in_front(pki, upstream, "none") as hop:
            client = await Client.connect(pki, hop.port)
            assert (await client.request("POST", "/x", upgrade_headers()))[0] == 101
            assert hop.connections == 1
            await hop.aclose()
            assert hop.connections == 0
            assert await client.read_to_eof() == b""
            await asyncio.wait_for(upstream.upgraded_done.wait(), 10)
            await client.close()

    run(go)
