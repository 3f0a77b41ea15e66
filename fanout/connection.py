"""The replica's WebSocket connection: websockets' own, plus the claims of the
token it came with, and two signals the hub needs to write broadcasts
without checking every member every time.

A broadcast is written straight to each member's transport (`Hub.deliver_many`).
That is safe only while the member is open (no data frame may follow a close
frame) and within its send-buffer limit. Instead of asking each member both
questions for every broadcast, which under load cost 0.5 to 1 µs of a 7 to 8 µs
delivery (docs/benchmarks.md), the connection says so, synchronously, the
moment either stops being true:

- a close frame reaches the transport only through `send_data` (the closing
  handshake, started by either side, and protocol failures), and a lost
  connection ends in `connection_lost`: after either, `hub.forget(self)`;
- the transport calls `pause_writing` when its buffer goes over the limit
  (`write_limit` = MAX_SEND_BUFFER_BYTES): `hub.too_slow(self)`.

The kernel's own send buffer comes first: Linux grows it, for a client
that stops reading, to ~3 MiB before the transport buffers a byte. It is
fixed (SOCKET_SEND_BUFFER_BYTES) so that a stalled client is found after a
known amount of data, and holds no more of the host's memory than that.

Broadcasts are whole frames written between websockets' own frames, so this
connection never sends fragmented messages.

Memory (an idle connection's RSS, docs/benchmarks.md): two of the
library's per-connection queues are deques, 760 bytes each even when empty
(a deque allocates a 64-slot block up front); they hold at most a few items
here, so they become lists (56 bytes). The library also wraps its logger in
an adapter per connection (~600 bytes with its dictionaries) only to name
the connection in its log records, which our log formats never print: every
connection shares the plain logger.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

if TYPE_CHECKING:
    from aurora.tokens import Claims
    from fanout.hub import Hub


_LOG = logging.getLogger("websockets.server")  # where the token redaction filter is


class ShortQueue(list):
    """The deque operations websockets uses, on a list: for queues that hold
    a handful of items (frames received but not yet read: at most
    `max_queue`; writers waiting for the buffer to drain)."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def extendleft(self, items: Any) -> None:
        for item in items:  # as deque.extendleft: each one goes to the front
            self.insert(0, item)


class FanoutConnection(ServerConnection):
    # Ours in slots: the library's own 27 attributes fit in a key-sharing
    # instance dictionary (~300 bytes); 30 would not, and each connection's
    # dictionary would cost 1,584 bytes.
    __slots__ = ("claims", "hub", "send_buffer")

    def __init__(self, hub: Hub, send_buffer: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drain_waiters = ShortQueue()
        self.logger = self.protocol.logger = _LOG
        self.hub = hub
        self.send_buffer = send_buffer
        # Set by the handshake when the upgrade carried a valid token (URL or
        # subprotocol); None means the first frame must be `auth`.
        self.claims: Claims | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.recv_messages.frames.queue = ShortQueue()
        sock = transport.get_extra_info("socket")
        if self.send_buffer and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)

    def send_data(self) -> None:
        super().send_data()
        if self.protocol.state is not State.OPEN:  # a close frame may just have gone out
            self.hub.forget(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.hub.forget(self)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.hub.too_slow(self)

    async def send(self, message: Any, *, text: bool | None = None) -> None:
        if not isinstance(message, str | bytes):
            raise TypeError("fan-out connections send whole messages only")
        await super().send(message, text=text)
