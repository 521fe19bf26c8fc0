"""The lab's OIDC issuer: discovery and JWKS over HTTPS on loopback, and the tokens it stands behind.

Stands in for a real OpenID provider (Dex, Keycloak, Entra ID). It is faithful for what the lab asks:
kube-apiserver and kube-oidc-proxy only ever fetch the discovery document and the JWKS, then verify ID
tokens offline. No browser login flow exists here; tokens are minted directly, by `mint_token` (no network)
or by POST /token for scripts that cannot import Python.

Routes, relative to the issuer URL's path (an issuer of https://127.0.0.1:8443/oidc serves
/oidc/.well-known/openid-configuration), except /healthz which is always at the root:

    GET  /.well-known/openid-configuration   discovery; "issuer" is the issuer URL exactly as given
    GET  /keys  (alias /jwks)                JWKS: one RSA key, kid = RFC 7638 thumbprint, use sig, RS256
    GET  /healthz                            "ok"
    POST /token                              form user=, [kind=valid], [audience=], [groups=]..., [lifetime=]
                                             -> text/plain token. Served only when bound to loopback.

Command line (prints one line "ready <issuer-url>" on stdout once listening; exits 0 on SIGTERM/SIGINT):

    python -m conformance.lab.issuer --port P --cert C --key K --signing-key S [--issuer-url URL]
        [--host 127.0.0.1] [--rogue-key R] [--audience A] [--no-token-endpoint]

Tokens are secrets: they appear in response bodies only, never in logs. The access log (stderr) shows
method, path without query, and status.

Errors: unreadable keys raise `LabError`; a bad user, lifetime or issuer URL raises `ConfigError`.
"""

from __future__ import annotations

import argparse
import base64
import enum
import hashlib
import ipaddress
import json
import secrets
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from conformance.errors import ConfigError, LabError
from conformance.lab.pki import OIDC_ROGUE_KEY_NAME

__all__ = [
    "LAB_AUDIENCE",
    "LAB_USERS",
    "SIGNING_ALGORITHM",
    "WRONG_AUDIENCE",
    "WRONG_ISSUER_URL",
    "IssuerConfig",
    "IssuerServer",
    "TokenKind",
    "discovery_document",
    "jwks_document",
    "key_id",
    "main",
    "mint_token",
]

# Lab users and their groups. mallory has none: she authenticates but should be authorised for nothing.
# carol (outsiders) has alice's RBAC rights by name; the openunison stand-in's group rule refuses her.
# dave (contractors) is the namespace-scoped user of somebody's cluster: streaming rights in `conformance` by
# name, but he may neither create pods nor read namespaces (the harness must not need either).
LAB_USERS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"alice": ("devs",), "bob": ("viewers",), "mallory": (), "carol": ("outsiders",), "dave": ("contractors",),
     "dana": ("devs",)}
)
LAB_AUDIENCE = "conformance-lab"  # the client id kube-apiserver and the proxies are configured with
LAB_EMAIL_DOMAIN = "lab.example"  # RFC 2606: never a real mailbox
WRONG_AUDIENCE = "not-the-conformance-lab"
WRONG_ISSUER_URL = "https://wrong-issuer.invalid"  # RFC 2606 .invalid: cannot resolve, cannot be trusted
SIGNING_ALGORITHM = "RS256"  # the one algorithm every OIDC verifier must support (OIDC Core 1.0 §15.1)

DEFAULT_LIFETIME_S = 3600
MAX_LIFETIME_S = 24 * 3600  # keep leaked lab tokens short-lived
# Expired and not-yet-valid tokens miss "now" by an hour, far beyond any verifier's clock-skew leeway
# (go-oidc allows 1 minute for nbf, pyjwt 0 by default), so they fail for the intended reason.
BAD_TIME_OFFSET_S = 3600

# Server limits: each bounds what a misbehaving client can make a handler thread hold.
TLS_HANDSHAKE_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 10.0  # also the keep-alive idle limit
MAX_FORM_BYTES = 4096  # a /token form is a few short fields
MAX_FORM_FIELDS = 32
MAX_USER_LENGTH = 253
# After refusing a body we did not read, keep reading (and dropping) it for a moment before closing:
# closing a socket with unread input sends a TCP RST, which can destroy our error reply in flight.
LINGER_TIMEOUT_S = 2.0
LINGER_MAX_BYTES = 256 * 1024


class TokenKind(enum.StrEnum):
    """What is wrong with a minted token, if anything. Values are what POST /token accepts as kind=."""

    VALID = "valid"
    EXPIRED = "expired"  # exp an hour ago; iat and nbf one lifetime before that
    NOT_YET_VALID = "not_yet_valid"  # nbf and iat an hour ahead
    WRONG_AUDIENCE = "wrong_audience"  # aud = WRONG_AUDIENCE
    WRONG_ISSUER = "wrong_issuer"  # iss = WRONG_ISSUER_URL
    BAD_SIGNATURE = "bad_signature"  # signed by the rogue key, but under the real kid
    UNKNOWN_KEY = "unknown_key"  # signed by the rogue key under its own kid, absent from the JWKS


# --- keys and documents ----------------------------------------------------------------------------------


# Parsed keys by file identity: parsing (with OpenSSL's key check) costs ~30 ms, and a run mints a token per
# cell, on the event loop that runs every cell. A replaced or rewritten file has a new identity: read again.
_KEYS: dict[tuple[str, int, int, int], rsa.RSAPrivateKey] = {}
_KEYS_LOCK = threading.Lock()


def load_signing_key(path: Path) -> rsa.RSAPrivateKey:
    """Load an RSA private key (PEM, unencrypted) or raise LabError naming the file."""
    try:
        st = path.stat()
        ident = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
        with _KEYS_LOCK:
            cached = _KEYS.get(ident)
        if cached is not None:
            return cached
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise LabError(f"cannot load signing key {path}: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise LabError(f"signing key {path} is not an RSA key; {SIGNING_ALGORITHM} needs one")
    with _KEYS_LOCK:
        _KEYS[ident] = key
    return key


def _b64url_uint(value: int) -> str:
    # RFC 7518 §6.3.1: base64url of the big-endian bytes, minimal length, no padding.
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def key_id(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256): stable for a key, different for every other key."""
    numbers = public_key.public_numbers()
    # RFC 7638 §3.2: required members only, lexicographic order, no whitespace.
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def public_jwk(public_key: rsa.RSAPublicKey) -> dict[str, str]:
    """The public key as a JWK, as published in the JWKS."""
    numbers = public_key.public_numbers()
    return {
        "kty": "RSA",
        "use": "sig",
        "alg": SIGNING_ALGORITHM,
        "kid": key_id(public_key),
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }


def jwks_document(signing_key_path: Path) -> dict[str, list[dict[str, str]]]:
    """The JWKS the issuer serves for `signing_key_path`."""
    return {"keys": [public_jwk(load_signing_key(signing_key_path).public_key())]}


def validate_issuer_url(issuer_url: str) -> str:
    """Return `issuer_url` unchanged if it can be an OIDC issuer, else raise ConfigError.

    OIDC Discovery 1.0 §3: the issuer is "a case sensitive URL using the https scheme that contains scheme,
    host, and optionally, port number and path components and no query or fragment components."
    """
    parts = urlsplit(issuer_url)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"issuer URL {issuer_url!r} must be https://host[:port][/path], no query or fragment"
        )
    return issuer_url


def discovery_document(issuer_url: str) -> dict[str, object]:
    """The OpenID Provider Metadata (OIDC Discovery 1.0 §3) for `issuer_url`."""
    base = validate_issuer_url(issuer_url).rstrip("/")
    return {
        # Verifiers compare this to their configured issuer byte for byte: never normalise it.
        "issuer": issuer_url,
        "jwks_uri": f"{base}/keys",
        # REQUIRED by §3 though the lab runs no browser flow: the endpoint is advertised but answers 404.
        "authorization_endpoint": f"{base}/authorize",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
        "scopes_supported": ["openid", "email", "profile", "groups"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "jti",
            "name",
            "preferred_username",
            "email",
            "email_verified",
            "groups",
        ],
    }


# --- minting ---------------------------------------------------------------------------------------------


def _groups_for(user: str, groups: Sequence[str] | None) -> list[str]:
    if groups is not None:
        return list(groups)
    if user not in LAB_USERS:
        known = ", ".join(sorted(LAB_USERS))
        raise ConfigError(f"unknown lab user {user!r} (known: {known}); pass groups explicitly for others")
    return list(LAB_USERS[user])


def _mint(
    signing_key: rsa.RSAPrivateKey,
    rogue_key: rsa.RSAPrivateKey | None,
    issuer_url: str,
    *,
    user: str,
    groups: Sequence[str] | None,
    audience: str,
    lifetime_s: int,
    kind: TokenKind,
    extra_claims: Mapping[str, object] | None,
) -> str:
    if not user or len(user) > MAX_USER_LENGTH:
        raise ConfigError(f"user must be 1 to {MAX_USER_LENGTH} characters")
    if not 0 < lifetime_s <= MAX_LIFETIME_S:
        raise ConfigError(f"lifetime_s must be between 1 and {MAX_LIFETIME_S}, not {lifetime_s}")
    now = int(time.time())
    issued = now
    if kind is TokenKind.EXPIRED:
        issued = now - BAD_TIME_OFFSET_S - lifetime_s
    elif kind is TokenKind.NOT_YET_VALID:
        issued = now + BAD_TIME_OFFSET_S
    claims: dict[str, object] = {
        "iss": WRONG_ISSUER_URL if kind is TokenKind.WRONG_ISSUER else issuer_url,
        "sub": user,
        "aud": WRONG_AUDIENCE if kind is TokenKind.WRONG_AUDIENCE else audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime_s,
        "jti": secrets.token_urlsafe(16),  # lets audit events tell two tokens for one user apart
        "name": user.capitalize(),
        "preferred_username": user,
        "email": f"{user}@{LAB_EMAIL_DOMAIN}",
        # kube-apiserver refuses an email username unless email_verified is true.
        "email_verified": True,
        "groups": _groups_for(user, groups),
    }
    # Last, so a test can deliberately override any claim above.
    claims.update(extra_claims or {})

    key, kid = signing_key, key_id(signing_key.public_key())
    if kind in (TokenKind.BAD_SIGNATURE, TokenKind.UNKNOWN_KEY):
        if rogue_key is None:
            raise LabError(f"a {kind} token needs the rogue key, and none was given")
        key = rogue_key
        if kind is TokenKind.UNKNOWN_KEY:
            kid = key_id(rogue_key.public_key())
    return jwt.encode(claims, key, algorithm=SIGNING_ALGORITHM, headers={"kid": kid})


def mint_token(
    signing_key_path: Path,
    issuer_url: str,
    *,
    user: str,
    groups: Sequence[str] | None = None,
    audience: str = LAB_AUDIENCE,
    lifetime_s: int = DEFAULT_LIFETIME_S,
    kind: TokenKind = TokenKind.VALID,
    extra_claims: Mapping[str, object] | None = None,
    rogue_key_path: Path | None = None,
) -> str:
    """Mint an ID token for `user`, correct or wrong in the way `kind` says. No network is used.

    `groups` defaults to LAB_USERS[user]. `rogue_key_path` (for BAD_SIGNATURE and UNKNOWN_KEY) defaults
    to oidc-rogue.key beside the signing key. `extra_claims` are applied last and may override any claim.
    """
    rogue_key = None
    if kind in (TokenKind.BAD_SIGNATURE, TokenKind.UNKNOWN_KEY):
        rogue_key = load_signing_key(rogue_key_path or signing_key_path.with_name(OIDC_ROGUE_KEY_NAME))
    return _mint(
        load_signing_key(signing_key_path),
        rogue_key,
        issuer_url,
        user=user,
        groups=groups,
        audience=audience,
        lifetime_s=lifetime_s,
        kind=kind,
        extra_claims=extra_claims,
    )


# --- server ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerConfig:
    """How to run the issuer. `issuer_url` None means https://<host>:<bound port>."""

    cert: Path
    key: Path
    signing_key: Path
    host: str = "127.0.0.1"
    port: int = 0
    issuer_url: str | None = None
    rogue_key: Path | None = None
    audience: str = LAB_AUDIENCE
    token_endpoint: bool = True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class IssuerServer(ThreadingHTTPServer):
    """HTTPS server for discovery, JWKS, health and (on loopback) token minting."""

    daemon_threads = True
    # Don't wait for idle keep-alive connections on close; SIGTERM should exit now.
    block_on_close = False

    def __init__(self, config: IssuerConfig) -> None:
        if config.token_endpoint and not _is_loopback(config.host):
            raise ConfigError(f"refusing to serve /token on non-loopback address {config.host}")
        if config.issuer_url is not None:
            validate_issuer_url(config.issuer_url)  # before binding, so a typo leaves no socket behind
        self.config = config
        self.signing_key = load_signing_key(config.signing_key)
        self.rogue_key = load_signing_key(config.rogue_key) if config.rogue_key else None
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            self.tls.load_cert_chain(config.cert, config.key)
        except (OSError, ssl.SSLError) as exc:
            raise LabError(f"cannot load serving cert {config.cert} / {config.key}: {exc}") from exc
        # Go clients offer h2 first; say plainly that we speak HTTP/1.1.
        self.tls.set_alpn_protocols(["http/1.1"])
        self.address_family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        super().__init__((config.host, config.port), _IssuerHandler)

        port = self.server_address[1]
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.issuer_url = validate_issuer_url(config.issuer_url or f"https://{host}:{port}")
        self.prefix = urlsplit(self.issuer_url).path.rstrip("/")
        self.discovery_body = _json_bytes(discovery_document(self.issuer_url))
        self.jwks_body = _json_bytes({"keys": [public_jwk(self.signing_key.public_key())]})

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name = self.config.host
        self.server_port = self.server_address[1]

    def finish_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        # TLS is wrapped here, in the connection's own thread, so a slow handshake never blocks accept().
        if not isinstance(request, socket.socket):
            return
        request.settimeout(TLS_HANDSHAKE_TIMEOUT_S)
        try:
            tls_socket = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            sys.stderr.write(f"issuer: TLS handshake with {client_address[0]} failed: {exc}\n")
            return
        with tls_socket:
            handler = _IssuerHandler(tls_socket, client_address, self)
            if handler.body_left_unread:
                _linger(tls_socket)


def _linger(sock: socket.socket) -> None:
    """Half-close, then drain what the peer still sends, within LINGER_TIMEOUT_S and LINGER_MAX_BYTES."""
    deadline = time.monotonic() + LINGER_TIMEOUT_S
    drained = 0
    try:
        sock.shutdown(socket.SHUT_WR)  # the peer sees our reply end, then EOF
        while drained < LINGER_MAX_BYTES and (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            chunk = sock.recv(16384)
            if not chunk:
                return
            drained += len(chunk)
    except OSError:
        return  # the peer went away first: nothing left to protect


def _json_bytes(document: object) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8")


class _IssuerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: verifiers refetch the JWKS on unknown kids
    server_version = "conformance-lab-issuer"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S
    body_left_unread = False  # set when we close with request bytes still unread; see _linger

    @property
    def issuer(self) -> IssuerServer:
        assert isinstance(self.server, IssuerServer)
        return self.server

    # -- logging: never the query, never a body, so no token can reach the log --

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        status = code.value if isinstance(code, HTTPStatus) else code
        path = urlsplit(self.path).path if hasattr(self, "path") else "-"
        self.log_message("%s %s %s", self.command or "-", path, status)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"issuer: {self.client_address[0]} {format % args}\n")

    # -- routes --

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        prefix = self.issuer.prefix
        if path == "/healthz":
            self._reply(HTTPStatus.OK, b"ok", "text/plain; charset=utf-8")
        elif path == f"{prefix}/.well-known/openid-configuration":
            self._reply(HTTPStatus.OK, self.issuer.discovery_body, "application/json")
        elif path in (f"{prefix}/keys", f"{prefix}/jwks"):
            self._reply(HTTPStatus.OK, self.issuer.jwks_body, "application/jwk-set+json")
        else:
            self._error(HTTPStatus.NOT_FOUND, "no such route")

    def do_POST(self) -> None:
        if urlsplit(self.path).path != f"{self.issuer.prefix}/token" or not self.issuer.config.token_endpoint:
            self._discard_body()
            self._error(HTTPStatus.NOT_FOUND, "no such route")
            return
        # Bound to loopback already; checking the peer too costs nothing and survives a config mistake.
        if not _is_loopback(self.client_address[0]):
            self._error(HTTPStatus.FORBIDDEN, "tokens are minted for loopback clients only")
            return
        form = self._read_form()
        if form is None:
            return
        try:
            token = self._mint_from_form(form)
        except ConfigError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except LabError as exc:
            self._error(HTTPStatus.NOT_IMPLEMENTED, str(exc))
            return
        self._reply(HTTPStatus.OK, token.encode("ascii"), "text/plain; charset=utf-8")

    def _mint_from_form(self, form: dict[str, list[str]]) -> str:
        def single(name: str, default: str | None = None) -> str | None:
            values = form.get(name)
            if not values:
                return default
            if len(values) > 1:
                raise ConfigError(f"field {name!r} given more than once")
            return values[0]

        user = single("user")
        if user is None:
            raise ConfigError("field 'user' is required")
        kind_text = single("kind", TokenKind.VALID.value) or TokenKind.VALID.value
        try:
            kind = TokenKind(kind_text)
        except ValueError:
            raise ConfigError(f"kind must be one of {', '.join(k.value for k in TokenKind)}") from None
        lifetime_text = single("lifetime", str(DEFAULT_LIFETIME_S)) or ""
        if not lifetime_text.isdigit():
            raise ConfigError("lifetime must be a whole number of seconds")
        return _mint(
            self.issuer.signing_key,
            self.issuer.rogue_key,
            self.issuer.issuer_url,
            user=user,
            groups=form.get("groups"),
            audience=single("audience", self.issuer.config.audience) or self.issuer.config.audience,
            lifetime_s=int(lifetime_text),
            kind=kind,
            extra_claims=None,
        )

    # -- plumbing --

    def _content_length(self) -> int | None:
        """The body length, or None when it cannot be known without chunked decoding (not supported)."""
        if "Transfer-Encoding" in self.headers:
            return None
        text = self.headers.get("Content-Length")
        if text is None:
            return 0  # RFC 9112 §6.3: a request with neither header has no body
        return int(text) if text.isdigit() else None

    def _discard_body(self) -> None:
        length = self._content_length()
        if length is not None and length <= MAX_FORM_BYTES:
            self.rfile.read(length)
        else:
            self.close_connection = True  # unread bytes would be parsed as the next request
            self.body_left_unread = True

    def _read_form(self) -> dict[str, list[str]] | None:
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        length = self._content_length()
        if length is None:
            self.close_connection = True
            self.body_left_unread = True
            self._error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length; chunked bodies are not accepted")
            return None
        if length > MAX_FORM_BYTES:
            self.close_connection = True
            self.body_left_unread = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"form larger than {MAX_FORM_BYTES} bytes")
            return None
        body = self.rfile.read(length)
        # An empty body is an empty form whatever its type, so the reply names the missing field.
        if body and content_type != "application/x-www-form-urlencoded":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/x-www-form-urlencoded")
            return None
        try:
            return parse_qs(
                body.decode("utf-8"),
                keep_blank_values=False,
                strict_parsing=False,
                max_num_fields=MAX_FORM_FIELDS,
            )
        except (UnicodeDecodeError, ValueError):
            self._error(HTTPStatus.BAD_REQUEST, "malformed form")
            return None

    def _reply(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        # Discovery and keys may change between lab runs; tokens must never be cached.
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")  # tell the client not to reuse what we will close
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._reply(
            status, f"{status.value} {status.phrase}: {message}\n".encode(), "text/plain; charset=utf-8"
        )


# --- command line ----------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> IssuerConfig:
    parser = argparse.ArgumentParser(
        prog="python -m conformance.lab.issuer",
        description="Serve the lab's OIDC discovery and JWKS over HTTPS; print 'ready <issuer-url>'.",
    )
    parser.add_argument("--port", type=int, required=True, help="TCP port; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--cert", type=Path, required=True, help="serving certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="serving certificate's private key (PEM)")
    parser.add_argument("--signing-key", type=Path, required=True, help="RSA key that signs ID tokens")
    parser.add_argument(
        "--issuer-url",
        default=None,
        help="issuer URL, exactly as verifiers expect it (default https://host:port)",
    )
    parser.add_argument(
        "--rogue-key",
        type=Path,
        default=None,
        help="RSA key for bad_signature/unknown_key tokens (default oidc-rogue.key beside --signing-key)",
    )
    parser.add_argument("--audience", default=LAB_AUDIENCE, help=f"default token audience ({LAB_AUDIENCE})")
    parser.add_argument("--no-token-endpoint", action="store_true", help="do not serve POST /token")
    args = parser.parse_args(argv)

    rogue_key: Path | None = args.rogue_key
    if rogue_key is None:
        beside = args.signing_key.with_name(OIDC_ROGUE_KEY_NAME)
        rogue_key = beside if beside.exists() else None
    return IssuerConfig(
        cert=args.cert,
        key=args.key,
        signing_key=args.signing_key,
        host=args.host,
        port=args.port,
        issuer_url=args.issuer_url,
        rogue_key=rogue_key,
        audience=args.audience,
        token_endpoint=not args.no_token_endpoint,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the issuer until SIGTERM or SIGINT. Returns the process exit code."""
    config = _parse_args(argv)
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # Installed before binding, so a SIGTERM during start-up still ends in a clean exit.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server = IssuerServer(config)
    except (OSError, ConfigError, LabError) as exc:
        sys.stderr.write(f"issuer: cannot start: {exc}\n")
        return 1
    if stop.is_set():
        server.server_close()
        return 0
    # shutdown() must be called from a thread other than serve_forever's, so serve in a worker thread.
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="issuer")
    serving.start()
    print(f"ready {server.issuer_url}", flush=True)
    # A timed wait keeps the main thread responsive to signals and notices a dead server thread.
    while not stop.wait(timeout=0.5) and serving.is_alive():
        pass
    server.shutdown()
    serving.join()
    server.server_close()
    if not stop.is_set():
        sys.stderr.write("issuer: server thread died\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
