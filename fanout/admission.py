"""Bounded admission of new connections: a token bucket per replica.

When a replica restarts, or another dies, thousands of clients reconnect at
once. Each handshake costs a token check and a Redis round trip or two; taken
all at once they starve the connections already open (their broadcasts wait
behind the handshakes). Over the rate, an upgrade is answered `503` with
`Retry-After` before any of that work: the client backs off (with jitter, see
`frontend/socket.js`) and comes back, here or to another replica.
"""

from __future__ import annotations

import time


class Admission:
    """`rate` new connections per second, in bursts of up to `burst`."""

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self._rate = rate
        self._burst = burst if burst is not None else rate
        self._tokens = self._burst
        self._last = time.monotonic()

    def admit(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
