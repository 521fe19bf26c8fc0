"""Parsing helpers that accept exactly what Go's parsers accept on the peer."""

from __future__ import annotations

_DIGITS = frozenset("0123456789")


def parse_uint(text: str, maximum: int) -> int | None:
    """Like Go's ``strconv.ParseUint(text, 10, bits)``: ASCII digits only, no sign, leading zeros
    allowed. Returns None when ``text`` is not such a number or exceeds ``maximum``.

    Never calls ``int()`` on an unbounded string: Python refuses more than 4300 digits with a
    ValueError, and a peer must not be able to trigger that.
    """
    if not text or not _DIGITS.issuperset(text):
        return None
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(maximum)):
        return None
    value = int(significant)
    return value if value <= maximum else None
