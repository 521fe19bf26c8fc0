"""Sans-IO codecs for the Kubernetes streaming protocols: bytes in, events out (see docs/wire.md).

SPDY/3: ``spdy_connection.SpdyConnection`` over ``spdy_codec``, ``spdy_frames``, ``spdy_headers`` and
``spdy_state``. WebSocket channels: ``channels.ChannelCodec``. Exec/attach payloads: ``remotecommand``.
Port-forward: ``portforward``. Errors: ``errors``; limits: ``limits``.
"""
