"""Protocol names the clients accept. They are cell ids: keep the strings stable."""

from __future__ import annotations

from enum import StrEnum

from conformance.wire.portforward import PORT_FORWARD_PROTOCOL, tunnel_subprotocol
from conformance.wire.remotecommand import RemoteCommandProtocol


class CommandProtocol(StrEnum):
    """exec and attach."""

    SPDY = "spdy"  # SPDY/3.1 upgrade of a POST, offering what client-go offers
    WS_V5 = "ws-v5"  # v5.channel.k8s.io (CLOSE signal: stdin EOF works)
    WS_V4 = "ws-v4"  # v4.channel.k8s.io (JSON Status, no stdin EOF)
    WS_V1 = "ws-v1"  # channel.k8s.io (error text, no stdin EOF)
    WS_BASE64 = "ws-base64"  # base64.channel.k8s.io
    WS_V4_BASE64 = "ws-v4-base64"  # v4.base64.channel.k8s.io

    @property
    def is_websocket(self) -> bool:
        return self is not CommandProtocol.SPDY

    @property
    def subprotocol(self) -> str:
        """The one WebSocket subprotocol offered (each cell pins exactly one)."""
        return _WS_SUBPROTOCOL[self]

    @property
    def can_close_stdin(self) -> bool:
        """SPDY half-closes the stdin stream; v5 sends CLOSE; older WebSocket protocols cannot."""
        return self in (CommandProtocol.SPDY, CommandProtocol.WS_V5)


_WS_SUBPROTOCOL = {
    CommandProtocol.WS_V5: RemoteCommandProtocol.V5.value,
    CommandProtocol.WS_V4: RemoteCommandProtocol.V4.value,
    CommandProtocol.WS_V1: RemoteCommandProtocol.V1.value,
    CommandProtocol.WS_BASE64: RemoteCommandProtocol.BASE64.value,
    CommandProtocol.WS_V4_BASE64: RemoteCommandProtocol.V4_BASE64.value,
}

# client-go's SPDY offer, in its preference order (PROTOCOLS.md 2). Servers pick the first they
# support, so a kubelet answers v4: v5 over SPDY is reported as negotiated v4, never as v5.
SPDY_COMMAND_OFFER: tuple[str, ...] = (
    RemoteCommandProtocol.V5.value,
    RemoteCommandProtocol.V4.value,
    RemoteCommandProtocol.V3.value,
    RemoteCommandProtocol.V2.value,
    RemoteCommandProtocol.V1.value,
)


class PortForwardProtocol(StrEnum):
    SPDY = "spdy"  # SPDY/3.1 upgrade, portforward.k8s.io
    WS_TUNNEL = "ws-tunnel"  # KEP-4006: SPDY inside WebSocket binary messages
    WS_LEGACY = "ws-legacy"  # WebSocket channels, 2-byte port prefix, one WebSocket per connection

    @property
    def offer(self) -> tuple[str, ...]:
        return _PF_OFFER[self]


# Legacy WebSocket port-forward: "portforward.k8s.io is not a WebSocket subprotocol" (PROTOCOLS.md 5.4).
LEGACY_PORT_FORWARD_SUBPROTOCOL = "v4.channel.k8s.io"
_PF_OFFER = {
    PortForwardProtocol.SPDY: (PORT_FORWARD_PROTOCOL,),
    PortForwardProtocol.WS_TUNNEL: (tunnel_subprotocol(PORT_FORWARD_PROTOCOL),),
    PortForwardProtocol.WS_LEGACY: (LEGACY_PORT_FORWARD_SUBPROTOCOL,),
}


def command_protocol(name: str) -> CommandProtocol:
    try:
        return CommandProtocol(name)
    except ValueError:
        from conformance.errors import ConfigError

        raise ConfigError(f"unknown exec/attach protocol {name!r}: {', '.join(p.value for p in CommandProtocol)}") \
            from None


def port_forward_protocol(name: str) -> PortForwardProtocol:
    try:
        return PortForwardProtocol(name)
    except ValueError:
        from conformance.errors import ConfigError

        raise ConfigError(f"unknown port-forward protocol {name!r}: "
                          f"{', '.join(p.value for p in PortForwardProtocol)}") from None
