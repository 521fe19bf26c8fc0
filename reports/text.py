"""Making untrusted evidence text safe to print: no control characters, one line when asked."""

from __future__ import annotations

import re

# C0/C1 controls (bar tab and newline), lone surrogates and the two XML non-characters: an escape
# sequence in evidence must not drive the reader's terminal, and XML 1.0 cannot carry any of them.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACE = re.compile(r"\s+")
ELLIPSIS = "..."


def printable(text: str) -> str:
    """Replace control characters with visible escapes (`\\x1b`), keeping tabs and newlines."""
    return _UNPRINTABLE.sub(
        lambda m: f"\\x{ord(m.group(0)):02x}" if ord(m.group(0)) < 0x100 else f"\\u{ord(m.group(0)):04x}", text
    )


def one_line(text: str | None, limit: int = 160) -> str:
    """Printable, whitespace collapsed to single spaces, cut to `limit` characters."""
    if not text:
        return ""
    flat = _SPACE.sub(" ", printable(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - len(ELLIPSIS)] + ELLIPSIS
