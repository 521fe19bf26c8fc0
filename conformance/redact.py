"""Keep secrets out of everything the harness writes: logs, evidence, reports, exceptions.

Two layers: known secrets (the tokens this run minted or read) are replaced wherever they appear, and
patterns that look like credentials (JWTs, bearer headers, the WebSocket bearer subprotocol, PEM private
keys) are replaced even if nobody registered them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
# A bearer credential, but not a WWW-Authenticate challenge (`Bearer realm="..."`), which is evidence.
_BEARER = re.compile(r"(?i)(bearer\s+)(?!(realm|scope|error|error_description)=)[^\s\"',;]+")
_WS_BEARER = re.compile(r"(base64url\.bearer\.authorization\.k8s\.io\.)[A-Za-z0-9_-]+")
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-auth-token"})
# Secrets shorter than this are not registered: replacing every "a" in a report helps nobody.
MIN_SECRET_LENGTH = 8

# Known secrets grouped by their first MIN_SECRET_LENGTH characters: a run registers a token per cell, and
# most share a prefix (every JWT starts `eyJhbGci`), so a text is searched for a handful of prefixes and only
# a group whose prefix it holds is searched secret by secret. Replaced, never mutated: readers take no lock.
_groups: dict[str, frozenset[str]] = {}
_lock = threading.Lock()


def register_secret(secret: str) -> str:
    """Remember a secret so that `redact` replaces it anywhere; returns it for chaining."""
    global _groups
    if len(secret) >= MIN_SECRET_LENGTH:
        prefix = secret[:MIN_SECRET_LENGTH]
        with _lock:
            group = _groups.get(prefix, frozenset())
            if secret not in group:
                _groups = {**_groups, prefix: group | {secret}}
    return secret


def redact(text: str) -> str:
    groups = _groups
    found = [s for prefix, group in groups.items() if prefix in text for s in group if s in text]
    for secret in sorted(found, key=len, reverse=True):  # longest first: a secret may hold another
        text = text.replace(secret, REDACTED)
    text = _PEM_KEY.sub(REDACTED, text)
    text = _WS_BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _JWT.sub(REDACTED, text)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else redact(v)) for k, v in headers.items()}


def redact_obj(value: Any) -> Any:
    """Redact every string inside nested dicts and lists (e.g. a results document before writing)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: (REDACTED if isinstance(k, str) and k.lower() in SECRET_HEADERS and isinstance(v, str)
                    else redact_obj(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_obj(v) for v in value]
    return value
