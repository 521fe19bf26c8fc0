"""The fault hop's credential faults: how a request's headers are rewritten before it is forwarded.

Pure apart from minting and verifying lab tokens (`LabTokens`, the lab issuer's signing key; no network).
`rewrite(fault, headers, tokens)` returns the headers to forward, or a status the hop answers itself (a
broken impersonating proxy still refuses a request without a valid token), and a note for the log that
never contains a token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jwt

from conformance.lab.fault_spec import Fault, FaultKind
from conformance.lab.issuer import LAB_AUDIENCE, LAB_USERS, SIGNING_ALGORITHM, load_signing_key, mint_token

Header = tuple[bytes, bytes]
AUTHORIZATION = b"authorization"
IMPERSONATE_PREFIX = b"impersonate-"
IMPERSONATE_USER = b"impersonate-user"
# Minted tokens live long enough for any probe and no longer.
MINTED_LIFETIME_S = 600


@dataclass(frozen=True, slots=True)
class Claims:
    user: str
    groups: tuple[str, ...]


class LabTokens:
    """Mints and verifies lab OIDC tokens with the issuer's signing key, as the lab's API server would."""

    def __init__(self, signing_key: Path, issuer_url: str, audience: str = LAB_AUDIENCE) -> None:
        self.signing_key = signing_key
        self.issuer_url = issuer_url
        self.audience = audience
        self._public = load_signing_key(signing_key).public_key()

    def mint(self, user: str, groups: Sequence[str] | None = None) -> str:
        return mint_token(
            self.signing_key,
            self.issuer_url,
            user=user,
            groups=list(LAB_USERS[user]) if groups is None else list(groups),
            audience=self.audience,
            lifetime_s=MINTED_LIFETIME_S,
        )

    def verify(self, token: str) -> Claims | None:
        """The token's user and groups if it is a valid lab token now, else None."""
        try:
            claims = jwt.decode(
                token, self._public, algorithms=[SIGNING_ALGORITHM], audience=self.audience, issuer=self.issuer_url
            )
        except jwt.PyJWTError:
            return None
        groups = claims.get("groups") or []
        if not isinstance(claims.get("sub"), str) or not isinstance(groups, list):
            return None
        return Claims(claims["sub"], tuple(str(g) for g in groups))


@dataclass(frozen=True, slots=True)
class Rewrite:
    headers: list[Header]
    answer: int | None = None  # the hop answers with this status instead of forwarding
    note: str = ""  # for the log: what was done, never a credential


def bearer(headers: Sequence[Header]) -> str | None:
    for name, value in headers:
        if name.lower() == AUTHORIZATION:
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _has_authorization(headers: Sequence[Header]) -> bool:
    return any(name.lower() == AUTHORIZATION for name, _ in headers)


def _without_authorization(headers: Sequence[Header]) -> list[Header]:
    return [(n, v) for n, v in headers if n.lower() != AUTHORIZATION]


def _with_token(headers: Sequence[Header], token: str) -> list[Header]:
    return [*_without_authorization(headers), (b"Authorization", f"Bearer {token}".encode("latin-1"))]


def rewrite(fault: Fault, headers: Sequence[Header], tokens: LabTokens | None) -> Rewrite:
    """The request headers as the faulty hop forwards them."""
    kind = fault.kind
    if kind not in (
        FaultKind.SWAP_CREDENTIAL,
        FaultKind.EXTRA_GROUP,
        FaultKind.ANONYMOUS_AS,
        FaultKind.PASS_IMPERSONATION,
    ):
        return Rewrite(list(headers))
    if tokens is None:
        raise ValueError(f"fault {fault} needs the lab issuer's signing key")
    token = bearer(headers)
    if kind is FaultKind.SWAP_CREDENTIAL:
        if token is None:
            return Rewrite(list(headers))
        return Rewrite(_with_token(headers, tokens.mint(fault.user)), note=f"credential replaced by {fault.user}'s")
    if kind is FaultKind.ANONYMOUS_AS:
        if _has_authorization(headers):
            return Rewrite(list(headers))
        return Rewrite(_with_token(headers, tokens.mint(fault.user)), note=f"anonymous request sent as {fault.user}")
    claims = tokens.verify(token) if token else None
    if kind is FaultKind.EXTRA_GROUP:
        if claims is None or claims.user not in LAB_USERS:
            return Rewrite(list(headers))  # not a valid lab token: the API server refuses it as it is
        groups = [*claims.groups, fault.group]
        return Rewrite(
            _with_token(headers, tokens.mint(claims.user, groups)), note=f"{claims.user} sent with group {fault.group}"
        )
    # pass-impersonation: authenticate, then forward under the proxy's own (client certificate) identity.
    if claims is None:
        return Rewrite([], answer=401, note="no valid token: refused")
    forwarded = _without_authorization(headers)
    if not any(name.lower() == IMPERSONATE_USER for name, _ in forwarded):
        forwarded.append((b"Impersonate-User", claims.user.encode()))
        forwarded += [(b"Impersonate-Group", g.encode()) for g in claims.groups]
        return Rewrite(forwarded, note=f"impersonating {claims.user}")
    passed = sorted({n.decode("latin-1").lower() for n, _ in forwarded if n.lower().startswith(IMPERSONATE_PREFIX)})
    return Rewrite(forwarded, note=f"client impersonation passed through ({', '.join(passed)})")
