"""Reading a kubeconfig's fields: named entries, paths relative to the file, base64 data (shared by the
endpoint and the credential readers)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from conformance.errors import ConfigError


def named(doc: dict[str, Any], key: str, inner: str, name: object, where: str) -> dict[str, Any]:
    for item in doc.get(key) or []:
        if isinstance(item, dict) and item.get("name") == name:
            value = item.get(inner) or {}
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {key} entry {name!r} has no {inner} mapping")
            return value
    have = [str(i.get("name")) for i in doc.get(key) or [] if isinstance(i, dict)]
    raise ConfigError(f"{where}: no {key[:-1]} named {name!r} (have: {', '.join(have) or 'none'})")


def resolve(base: Path, value: object) -> str | None:
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def b64(value: object, where: str, key: str) -> bytes | None:
    if not value:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: {key} is not base64") from None
