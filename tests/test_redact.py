from __future__ import annotations

from conformance.redact import REDACTED, redact, redact_headers, redact_obj, register_secret

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLWJ5dGVz"


def test_jwt_and_bearer_patterns_are_redacted_without_registration() -> None:
    text = f"GET / Authorization: Bearer {JWT} then token={JWT}"
    out = redact(text)
    assert JWT not in out and "eyJ" not in out
    assert out.count(REDACTED) == 2


def test_registered_opaque_secret_is_redacted_anywhere() -> None:
    secret = register_secret("opaque-static-token-123456")
    assert redact(f"x{secret}y") == f"x{REDACTED}y"


def test_websocket_bearer_subprotocol() -> None:
    proto = "base64url.bearer.authorization.k8s.io.ZXlKaGJHY2lPaUpTVXpJMU5pSjku"
    assert redact(proto) == f"base64url.bearer.authorization.k8s.io.{REDACTED}"


def test_private_key_pem() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----"
    assert redact(f"key: {pem}") == f"key: {REDACTED}"


def test_headers_and_nested_objects() -> None:
    assert redact_headers({"Authorization": "Basic abc", "X-Ok": "fine"}) == {"Authorization": REDACTED, "X-Ok": "fine"}
    doc = {"a": [{"error": f"bad token {JWT}"}], "authorization": "Bearer x"}
    out = redact_obj(doc)
    assert JWT not in str(out)
    assert out["authorization"] == REDACTED


def test_a_www_authenticate_challenge_is_evidence_not_a_secret() -> None:
    from conformance.redact import redact

    assert redact('Bearer realm="kubernetes",scope="auth"') == 'Bearer realm="kubernetes",scope="auth"'
    assert redact("Authorization: Bearer abcdefgh12345") == "Authorization: Bearer <redacted>"
    assert redact("Bearer realmish-token-value") == "Bearer <redacted>"


def test_thousands_of_secrets_sharing_a_prefix_are_each_found() -> None:
    # A run registers a token per cell, most with one prefix: each must still be found, and only it.
    secrets = [register_secret(f"shared-prefix-opaque-{i:05d}-tail") for i in range(3000)]
    text = f"a {secrets[1234]} b {secrets[2999]} c shared-prefix-opaque-99999-tail"
    assert redact(text) == f"a {REDACTED} b {REDACTED} c shared-prefix-opaque-99999-tail"


def test_a_secret_holding_another_is_replaced_whole() -> None:
    short = register_secret("nested-secret-abc")
    long = register_secret(f"{short}-and-more-of-it")
    assert redact(f"[{long}] [{short}]") == f"[{REDACTED}] [{REDACTED}]"
