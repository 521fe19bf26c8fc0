"""asyncio transports under the streaming clients (see docs/clients.md).

``timeouts`` (Timeouts, Deadline), ``endpoint`` (Endpoint, kubeconfig loading), ``errors`` (the typed
error tree and the one exception mapping), ``stream`` (ByteStream), ``connect`` (TCP, CONNECT, TLS),
``http1`` (h11 request/response), ``upgrade`` (SPDY/3.1 upgrade), ``websocket`` (websockets sessions),
``channel`` (what a SPDY session runs on, including the WebSocket tunnel), ``spdy_session``.
"""

from conformance.transport.endpoint import Endpoint
from conformance.transport.errors import StreamingError, UnsupportedByProtocol
from conformance.transport.timeouts import Timeouts

__all__ = ["Endpoint", "StreamingError", "Timeouts", "UnsupportedByProtocol"]
