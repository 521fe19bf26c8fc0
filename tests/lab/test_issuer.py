"""The lab OIDC issuer: token minting, and the HTTPS server run as a subprocess. No lab needed."""

from __future__ import annotations

import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conformance.errors import ConfigError
from conformance.lab.issuer import (
    LAB_AUDIENCE,
    LAB_USERS,
    WRONG_AUDIENCE,
    WRONG_ISSUER_URL,
    TokenKind,
    discovery_document,
    jwks_document,
    key_id,
    load_signing_key,
    mint_token,
)
from conformance.lab.pki import Pki, ensure_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


@dataclass
class RunningIssuer:
    process: subprocess.Popen[str]
    url: str
    pki: Pki

    def client(self) -> httpx.Client:
        return client_for(self.pki)


def client_for(pki: Pki) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca.cert)), timeout=5.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_issuer(pki: Pki, *extra: str, port: int = 0) -> tuple[subprocess.Popen[str], str]:
    argv = [
        sys.executable,
        "-m",
        "conformance.lab.issuer",
        f"--port={port}",
        f"--cert={pki.serving.issuer.cert}",
        f"--key={pki.serving.issuer.key}",
        f"--signing-key={pki.oidc_signing_key}",
        *extra,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("ready "):
        process.kill()
        _, err = process.communicate(timeout=STOP_TIMEOUT_S)
        pytest.fail(f"issuer did not become ready: stdout={line!r} stderr={err!r}")
    return process, line.split(" ", 1)[1].strip()


def stop(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=STOP_TIMEOUT_S)
    return process.returncode, out, err


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return ensure_pki(tmp_path_factory.mktemp("issuer") / "pki")


@pytest.fixture(scope="module")
def issuer(pki: Pki) -> Iterator[RunningIssuer]:
    # As the orchestration runs it: a chosen port and an explicit issuer URL.
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    process, ready_url = start_issuer(pki, f"--issuer-url={url}", port=port)
    assert ready_url == url
    yield RunningIssuer(process=process, url=url, pki=pki)
    if process.poll() is None:
        process.kill()
        process.communicate(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="module")
def served_jwks(issuer: RunningIssuer) -> jwt.PyJWKSet:
    with issuer.client() as client:
        discovery = client.get(f"{issuer.url}/.well-known/openid-configuration").json()
        return jwt.PyJWKSet.from_dict(client.get(discovery["jwks_uri"]).json())


def verify(token: str, jwks: jwt.PyJWKSet, issuer_url: str) -> dict[str, Any]:
    """Verify as an OIDC relying party does: key by kid from the JWKS, then iss, aud and times."""
    kid = jwt.get_unverified_header(token)["kid"]
    matching = [k for k in jwks.keys if k.key_id == kid]
    if not matching:
        raise jwt.PyJWKError(f"kid {kid} not in JWKS")
    claims: dict[str, Any] = jwt.decode(
        token,
        matching[0].key,
        algorithms=["RS256"],
        audience=LAB_AUDIENCE,
        issuer=issuer_url,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf"]},
    )
    return claims


# --- minting, no network ---------------------------------------------------------------------------------


def test_lab_users_and_their_groups() -> None:
    assert dict(LAB_USERS) == {
        "alice": ("devs",), "bob": ("viewers",), "mallory": (), "carol": ("outsiders",), "dave": ("contractors",),
        "dana": ("devs",),
    }


def test_valid_token_claims(pki: Pki) -> None:
    url = "https://127.0.0.1:1"
    token = mint_token(pki.oidc_signing_key, url, user="alice")
    claims = verify(token, jwt.PyJWKSet.from_dict(jwks_document(pki.oidc_signing_key)), url)
    assert claims["iss"] == url
    assert claims["sub"] == "alice"
    assert claims["aud"] == LAB_AUDIENCE
    assert claims["groups"] == ["devs"]
    assert claims["email"] == "alice@lab.example" and claims["email_verified"] is True
    assert claims["name"] == "Alice"
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["nbf"] == claims["iat"] <= time.time()


def test_kid_is_the_rfc7638_thumbprint(pki: Pki) -> None:
    public = load_signing_key(pki.oidc_signing_key).public_key()
    jwk = jwt.PyJWK.from_dict(jwks_document(pki.oidc_signing_key)["keys"][0])
    assert jwk.key_id == key_id(public)
    assert key_id(public) != key_id(load_signing_key(pki.oidc_rogue_key).public_key())


def test_rfc7638_example_thumbprint() -> None:
    # RFC 7638 §3.1 worked example.
    n = int.from_bytes(
        jwt.utils.base64url_decode(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n"
            "3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgd"
            "AZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur"
            "-kEgU8awapJzKnqDKgw"
        ),
        "big",
    )
    public = rsa.RSAPublicNumbers(65537, n).public_key()
    assert key_id(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_groups_override_and_unknown_users(pki: Pki) -> None:
    url = "https://127.0.0.1:1"
    jwks = jwt.PyJWKSet.from_dict(jwks_document(pki.oidc_signing_key))
    assert verify(mint_token(pki.oidc_signing_key, url, user="mallory"), jwks, url)["groups"] == []
    claims = verify(mint_token(pki.oidc_signing_key, url, user="zoe", groups=["a", "b"]), jwks, url)
    assert claims["groups"] == ["a", "b"]
    with pytest.raises(ConfigError, match="unknown lab user"):
        mint_token(pki.oidc_signing_key, url, user="zoe")
    with pytest.raises(ConfigError, match="lifetime"):
        mint_token(pki.oidc_signing_key, url, user="alice", lifetime_s=0)


def test_extra_claims_are_added_last(pki: Pki) -> None:
    url = "https://127.0.0.1:1"
    token = mint_token(pki.oidc_signing_key, url, user="bob", extra_claims={"groups": ["x"], "tenant": "t1"})
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["groups"] == ["x"] and claims["tenant"] == "t1"


def test_discovery_rejects_issuers_verifiers_would_reject() -> None:
    for bad in ("http://127.0.0.1:1", "https://127.0.0.1:1/?q=1", "https://127.0.0.1:1/#f", "127.0.0.1:1"):
        with pytest.raises(ConfigError):
            discovery_document(bad)


# --- the server ------------------------------------------------------------------------------------------


def test_healthz(issuer: RunningIssuer) -> None:
    with issuer.client() as client:
        response = client.get(f"{issuer.url}/healthz")
    assert response.status_code == 200 and response.text == "ok"


def test_discovery_issuer_matches_exactly(issuer: RunningIssuer) -> None:
    with issuer.client() as client:
        response = client.get(f"{issuer.url}/.well-known/openid-configuration")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["issuer"] == issuer.url
    assert doc["jwks_uri"] == f"{issuer.url}/keys"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "id_token" in doc["response_types_supported"]
    assert doc["subject_types_supported"] == ["public"]


def test_jwks_publishes_the_signing_key(issuer: RunningIssuer, served_jwks: jwt.PyJWKSet) -> None:
    with issuer.client() as client:
        keys = client.get(f"{issuer.url}/keys").json()["keys"]
        assert client.get(f"{issuer.url}/jwks").json()["keys"] == keys
    assert len(keys) == 1
    (key,) = keys
    assert key["kty"] == "RSA" and key["use"] == "sig" and key["alg"] == "RS256"
    assert key["kid"] == key_id(load_signing_key(issuer.pki.oidc_signing_key).public_key())


def test_served_jwks_verifies_a_valid_token(issuer: RunningIssuer, served_jwks: jwt.PyJWKSet) -> None:
    token = mint_token(issuer.pki.oidc_signing_key, issuer.url, user="alice")
    claims = verify(token, served_jwks, issuer.url)
    assert claims["sub"] == "alice" and claims["groups"] == ["devs"]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (TokenKind.EXPIRED, jwt.ExpiredSignatureError),
        (TokenKind.NOT_YET_VALID, jwt.ImmatureSignatureError),
        (TokenKind.WRONG_AUDIENCE, jwt.InvalidAudienceError),
        (TokenKind.WRONG_ISSUER, jwt.InvalidIssuerError),
        (TokenKind.BAD_SIGNATURE, jwt.InvalidSignatureError),
        (TokenKind.UNKNOWN_KEY, jwt.PyJWKError),
    ],
)
def test_each_bad_kind_fails_its_own_check(
    issuer: RunningIssuer, served_jwks: jwt.PyJWKSet, kind: TokenKind, error: type[Exception]
) -> None:
    token = mint_token(issuer.pki.oidc_signing_key, issuer.url, user="alice", kind=kind)
    with pytest.raises(error):
        verify(token, served_jwks, issuer.url)


def test_bad_kinds_are_wrong_in_one_way_only(pki: Pki) -> None:
    url = "https://127.0.0.1:1"
    real_kid = key_id(load_signing_key(pki.oidc_signing_key).public_key())
    for kind in TokenKind:
        token = mint_token(pki.oidc_signing_key, url, user="alice", kind=kind)
        claims = jwt.decode(token, options={"verify_signature": False})
        kid = jwt.get_unverified_header(token)["kid"]
        assert claims["iss"] == (WRONG_ISSUER_URL if kind is TokenKind.WRONG_ISSUER else url)
        assert claims["aud"] == (WRONG_AUDIENCE if kind is TokenKind.WRONG_AUDIENCE else LAB_AUDIENCE)
        assert (kid == real_kid) is (kind is not TokenKind.UNKNOWN_KEY)
        now = time.time()
        timely = claims["nbf"] <= now < claims["exp"]
        assert timely is (kind not in (TokenKind.EXPIRED, TokenKind.NOT_YET_VALID))
        if kind is TokenKind.EXPIRED:
            assert claims["iat"] == claims["nbf"] < claims["exp"] < now


def test_token_endpoint_mints_for_scripts(issuer: RunningIssuer, served_jwks: jwt.PyJWKSet) -> None:
    with issuer.client() as client:
        response = client.post(f"{issuer.url}/token", data={"user": "bob"})
        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        claims = verify(response.text, served_jwks, issuer.url)
        assert claims["sub"] == "bob" and claims["groups"] == ["viewers"]

        expired = client.post(f"{issuer.url}/token", data={"user": "alice", "kind": "expired"})
        assert expired.status_code == 200
        with pytest.raises(jwt.ExpiredSignatureError):
            verify(expired.text, served_jwks, issuer.url)

        rogue = client.post(f"{issuer.url}/token", data={"user": "alice", "kind": "bad_signature"})
        with pytest.raises(jwt.InvalidSignatureError):
            verify(rogue.text, served_jwks, issuer.url)

        custom = client.post(f"{issuer.url}/token", data={"user": "carol", "groups": ["g1", "g2"]})
        assert verify(custom.text, served_jwks, issuer.url)["groups"] == ["g1", "g2"]


@pytest.mark.parametrize(
    ("data", "status"),
    [
        ({}, 400),
        ({"user": "eve"}, 400),
        ({"user": "alice", "kind": "forged"}, 400),
        ({"user": "alice", "lifetime": "-5"}, 400),
        ({"user": "alice", "lifetime": "999999"}, 400),
    ],
)
def test_token_endpoint_refuses_bad_forms(issuer: RunningIssuer, data: dict[str, str], status: int) -> None:
    with issuer.client() as client:
        response = client.post(f"{issuer.url}/token", data=data)
    assert response.status_code == status


def test_token_endpoint_limits(issuer: RunningIssuer) -> None:
    with issuer.client() as client:
        big = client.post(f"{issuer.url}/token", data={"user": "a" * 5000})
        assert big.status_code == 413
        as_json = client.post(f"{issuer.url}/token", json={"user": "alice"})
        assert as_json.status_code == 415
        chunked = client.post(f"{issuer.url}/token", content=iter([b"user=alice"]))
        assert chunked.status_code == 411
        no_body = client.post(f"{issuer.url}/token")
        assert no_body.status_code == 400 and "user" in no_body.text
        assert client.get(f"{issuer.url}/nowhere").status_code == 404


def test_unknown_routes_and_token_endpoint_can_be_disabled(pki: Pki) -> None:
    process, url = start_issuer(pki, "--no-token-endpoint")
    try:
        with client_for(pki) as client:
            assert client.post(f"{url}/token", data={"user": "alice"}).status_code == 404
    finally:
        code, _, _ = stop(process)
    assert code == 0


def test_port_zero_and_issuer_path_prefix(pki: Pki) -> None:
    # Port 0: the ready line tells the real URL. A path in the issuer URL moves every route under it.
    port = free_port()
    url = f"https://localhost:{port}/oidc"
    process, ready_url = start_issuer(pki, f"--issuer-url={url}", port=port)
    try:
        assert ready_url == url
        with client_for(pki) as client:
            doc = client.get(f"{url}/.well-known/openid-configuration").json()
            assert doc["issuer"] == url and doc["jwks_uri"] == f"{url}/keys"
            assert client.get(doc["jwks_uri"]).status_code == 200
            assert client.get(f"https://localhost:{port}/healthz").status_code == 200
    finally:
        stop(process)

    process, ready_url = start_issuer(pki)
    try:
        assert ready_url.startswith("https://127.0.0.1:") and not ready_url.endswith(":0")
    finally:
        stop(process)


def test_refuses_to_start_with_a_bad_issuer_url(pki: Pki) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance.lab.issuer",
            "--port=0",
            f"--cert={pki.serving.issuer.cert}",
            f"--key={pki.serving.issuer.key}",
            f"--signing-key={pki.oidc_signing_key}",
            "--issuer-url=http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=START_TIMEOUT_S,
    )
    assert completed.returncode == 1
    assert "https" in completed.stderr and completed.stdout == ""


def test_sigterm_exits_cleanly_and_tokens_never_reach_the_log(pki: Pki) -> None:
    process, url = start_issuer(pki)
    with client_for(pki) as client:
        token = client.post(f"{url}/token", data={"user": "alice"}).text
        # An idle keep-alive connection must not hold up the exit.
        assert client.get(f"{url}/healthz").status_code == 200
        started = time.monotonic()
        code, out, err = stop(process)
    assert code == 0
    assert time.monotonic() - started < 5.0
    assert out == ""  # the ready line was read already; nothing else goes to stdout
    assert "POST /token 200" in err
    assert token not in err and token.split(".")[1] not in err
