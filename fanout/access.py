"""Room access on this replica: the membership rule's answers, cached, and the
connections taken out of a room the moment their user may no longer read it.

Answers come from the Redis mirror (`aurora.membership`), one round trip per
miss, and are cached per (room, user). A membership notice (published after
every change) drops the room's cached answers and re-checks this replica's
members of that room: a refused one gets `left` with a `reason` and nothing
more from the room. The users a notice names in `relist` (their list of
rooms changed: an invitation, a new direct room, a role, a removal, a ban)
get `rooms_changed` on their v1 connections here (a notice names at most
`membership.MAX_RELIST`; a deleted room's members come in as many notices
as it takes); it carries nothing, so a forged notice costs them one re-read
of their own rooms and tells nothing.
Notices are at-most-once, so every joined connection is
re-checked every `MEMBERSHIP_CHECK_SECONDS` and after the subscriber
reconnects: a lost notice is enforced within that bound. The fan-out never
reads MongoDB.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

from aurora import membership, throttling, untrusted_json
from aurora.backends import redis_unavailable
from aurora.errors import UnavailableError
from aurora.membership import Standing
from aurora.rooms import RESERVED_PREFIX, check_room
from fanout.protocol import ROOMS_CHANGED, left_frame

if TYPE_CHECKING:
    import redis.asyncio
    from websockets.asyncio.server import ServerConnection

    from aurora.settings import Settings
    from aurora.tokens import Claims
    from fanout.hub import Hub
    from fanout.presence import Presence
    from fanout.users import Users

log = logging.getLogger("aurora.fanout")

SWEEP_SLICE = 25  # members per round trip of a sweep: ~4 commands each, ~1-2 ms of the loop
MAX_CACHED_ROOMS = 50_000  # past this the cache starts afresh (a sweep refills it)


class RoomAccess:
    def __init__(self, client: redis.asyncio.Redis, settings: Settings, users: Users) -> None:
        self._redis = client
        self._settings = settings
        self._users = users
        self._interval = settings.membership_check_seconds
        self.hub: Hub | None = None  # set by the server once the hub exists
        self.presence: Presence | None = None  # told when a standing is re-read
        self._cache: dict[str, dict[str, Standing]] = {}  # room -> user id -> standing
        # Bumped by each notice for the room: an answer read across a bump is not cached.
        self._generation: dict[str, int] = {}
        self._epoch = 0  # bumped by each sweep, for the same reason
        self._due: set[str] = set()
        self._check_all = False
        self._wake = asyncio.Event()

    # -- asking ------------------------------------------------------------------------

    def generation(self, room: str) -> tuple[int, int]:
        return self._epoch, self._generation.get(room, 0)

    async def standing(self, claims: Claims, room: str) -> Standing:
        """The caller's standing in `room`: cached, else one round trip
        (UnavailableError if Redis cannot answer: the caller refuses)."""
        cached = self._cache.get(room)
        if cached is not None and (found := cached.get(claims.user_id)) is not None:
            return found
        before = self.generation(room)
        with redis_unavailable("Cannot check room membership now, retry"):
            (found,) = await membership.standings_async(self._redis, [(room, claims.user_id)])
        if self.generation(room) == before:
            self._remember(room, claims.user_id, found)
        return found

    async def record_join(self, claims: Claims, room: str, found: Standing) -> None:
        """A join of a public room makes the user a member (kept until they
        leave over REST): in the mirror and, through the drain, in MongoDB."""
        if found.role is not None or found.visibility in membership.MEMBERS_ONLY:
            return
        with redis_unavailable("Cannot record the join now, retry"):
            if found.visibility is None and not await membership.room_in_use_async(
                self._redis, room
            ):
                # RateLimitedError past ROOM_CREATIONS_PER_MINUTE: nothing recorded.
                await throttling.take_room_creation_async(
                    self._redis, self._settings, claims.user_id
                )
            await membership.record_join_async(self._redis, room, claims.user_id, claims.username)
        cached = self._cache.get(room)
        if cached is not None and claims.user_id in cached:
            cached[claims.user_id] = dataclasses.replace(found, role=membership.MEMBER)

    def is_blocked(self, room: str, user_id: str) -> bool:
        """The cached answer: is the user blocked by the other member of this
        direct room? (Then presence keeps them out of it.)"""
        found = self._cache.get(room, {}).get(user_id)
        return found is not None and found.blocked

    def _remember(self, room: str, user_id: str, found: Standing) -> None:
        if len(self._cache) >= MAX_CACHED_ROOMS and room not in self._cache:
            self._cache.clear()
        self._cache.setdefault(room, {})[user_id] = found

    # -- triggers (from the replica's subscriber and sessions) ---------------------------

    def notice(self, data: object) -> None:
        """A message on MEMBERSHIP_CHANNEL: forget the room's answers, re-check it."""
        try:
            body = untrusted_json.loads(data)
            room = check_room(body["room"])
            relist = body.get("relist", [])
            if not isinstance(relist, list) or len(relist) > membership.MAX_RELIST:
                raise TypeError("relist")
        except Exception:  # any malformed notice: ignored, it has no authority anyway
            log.warning("malformed membership notice ignored", extra={"notice": repr(data)[:200]})
            return
        self._generation[room] = self._generation.get(room, 0) + 1
        self._cache.pop(room, None)
        self.recheck_soon(room)
        for user_id in {each for each in relist if isinstance(each, str)}:
            if user_id in self._users:
                for connection in self._users.of(user_id):
                    connection.tell(ROOMS_CHANGED)

    def recheck_soon(self, room: str) -> None:
        self._due.add(room)
        self._wake.set()

    def check_all_soon(self) -> None:
        """Notices may have been missed (the subscriber was disconnected)."""
        self._check_all = True
        self._wake.set()

    # -- the one checking task -----------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time() + self._interval
        while True:
            try:
                async with asyncio.timeout_at(next_sweep):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if self._check_all or loop.time() >= next_sweep:
                self._check_all, self._due = False, set()
                next_sweep = loop.time() + self._interval
                self._epoch += 1
                self._cache.clear()
                rooms = self.hub.rooms() if self.hub is not None else []
            else:
                rooms, self._due = list(self._due), set()
            await self._recheck(rooms)

    async def _recheck(self, rooms: list[str]) -> None:
        if self.hub is None:
            return
        members = [(room, c) for room in rooms for c in self.hub.members(room)]
        members = [(room, c) for room, c in members if c.claims is not None]
        if not members:
            return
        pairs = sorted({(room, c.claims.user_id) for room, c in members})
        before = {room: self.generation(room) for room in rooms}
        found: dict[tuple[str, str], Standing] = {}
        # A slice per round trip: asked all at once, 1,000 members held the
        # loop for tens of milliseconds, and every broadcast waited (bench/loop_stalls.py).
        for start in range(0, len(pairs), SWEEP_SLICE):
            part = pairs[start : start + SWEEP_SLICE]
            try:
                with redis_unavailable():
                    standings = await membership.standings_async(self._redis, part)
            except UnavailableError:
                # Keep serving; the next sweep retries (as the revocation watch does).
                log.warning("membership re-check failed; retrying at the next sweep")
                return
            found.update(zip(part, standings, strict=True))
        for (room, user_id), standing in found.items():
            if self.generation(room) == before[room]:
                self._remember(room, user_id, standing)
        for room, connection in members:
            standing = found[(room, connection.claims.user_id)]
            if not standing.may_read:
                await self.expel(connection, room, standing.refusal)
            elif self.presence is not None and room.startswith(RESERVED_PREFIX):
                self.presence.recheck(room, connection.claims.user_id)  # blocked or not

    async def expel(self, connection: ServerConnection, room: str, reason: str) -> None:
        """Out of the room at once (no more frames from it), told why."""
        if self.hub is not None and self.hub.is_member(connection, room):
            self.hub.stop_writing(connection, room)
            await self.hub.leave(connection, room)
            self.hub.write(connection, left_frame(room, reason=reason))
