"""Which end of a streaming connection a codec plays."""

from __future__ import annotations

from enum import Enum


class Role(Enum):
    """CLIENT sent the HTTP upgrade request (kubectl's side); SERVER accepted it.

    SPDY: the client uses odd stream and ping ids, the server even ones. WebSocket channels: only
    the client may send the v5 CLOSE signal.
    """

    CLIENT = "client"
    SERVER = "server"
