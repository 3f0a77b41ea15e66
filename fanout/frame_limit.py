"""The per-connection limit on inbound frames, every type included.

Two bounds. A token bucket (`INBOUND_FRAMES_PER_SECOND` sustained, bursts of
`INBOUND_FRAME_BURST`): a frame over it is answered `rate_limited` and not
acted on; the connection stays open. And a flood detector: a client that
keeps sending more than `FLOOD_FRAMES_PER_SECOND` for `FLOOD_SECONDS`
seconds in a row is closed with 1008 (policy violation) — answering it
would cost more than the frames.

`UNLIMITED_TYPES` is the one place a frame type opts out of the bucket (never
of the flood detector): frames whose refusal would lose state the client
cannot resend cheaply. `UNANSWERED_TYPES` are frames the server never
answers (clients match answers to frames in order): over the bucket they are
dropped without a `rate_limited`.
"""

from __future__ import annotations

import math
import time

from aurora.settings import Settings

# Read and delivery receipts must never be refused by a rate limit (they are
# coalesced by their own handler instead).
UNLIMITED_TYPES = frozenset({"read", "delivered"})
# Typing is relayed, never answered; a dropped one is superseded within a second.
UNANSWERED_TYPES = frozenset({"typing"})


class FrameLimiter:
    __slots__ = ("_burst", "_flood_limit", "_flood_run", "_flood_seconds", "_rate", "_second",
                 "_seen", "_stamp", "_tokens")  # fmt: skip

    def __init__(self, settings: Settings) -> None:
        self._rate = settings.inbound_frames_per_second
        self._burst = float(settings.inbound_frame_burst)
        self._tokens = self._burst
        self._stamp = time.monotonic()
        self._flood_limit = settings.flood_frames_per_second
        self._flood_seconds = settings.flood_seconds
        self._second = 0  # the whole second of monotonic time being counted
        self._seen = 0  # frames in it
        self._flood_run = 0  # whole seconds in a row over the flood limit, before it

    def flooding(self) -> bool:
        """Count one frame (any type); True once the client has been over the
        flood limit for FLOOD_SECONDS seconds in a row, this one included."""
        second = int(time.monotonic())
        if second != self._second:
            over = second == self._second + 1 and self._seen > self._flood_limit
            self._flood_run = self._flood_run + 1 if over else 0
            self._second, self._seen = second, 0
        self._seen += 1
        return self._seen > self._flood_limit and self._flood_run >= self._flood_seconds - 1

    def take(self, frame_type: str | None) -> int:
        """0 if a frame of this type (None: one that did not parse) may be
        acted on now, else the milliseconds until one may."""
        if frame_type in UNLIMITED_TYPES:
            return 0
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0
        return max(1, math.ceil((1 - self._tokens) / self._rate * 1000))
