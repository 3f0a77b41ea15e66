"""This replica's share of room presence (`aurora.presence` has the Redis side).

The hub tells it when a connection enters or leaves a room. A user's first
local connection in a room holds an entry for this replica, the last one lets
go: O(1) Redis work per connect and disconnect, whatever the room's size. One
task runs everything against Redis in order, in pipelines: holds, releases,
the snapshots joins wait for (read after the joiner's own hold, so they
include the joiner), and every third of `PRESENCE_TTL_SECONDS` the refresh of
what this replica holds and the sweep of lapsed entries in its rooms (a dead
replica's users), so they are announced offline within the TTL.

Changes come back over the room's channel and are coalesced before they are
written: at most one change per user per room per second reaches a member
(a reconnect storm is a burst of frames otherwise), and a change undone
within the second (offline, then online again) is not written at all.
Nobody is told about themselves; clients of the original protocol get no
presence frames.

A Redis failure loses no state: what this replica holds is held again by the
next refresh (announced if it had lapsed), and what it let go of lapses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from aurora import presence, untrusted_json
from aurora.backends import redis_unavailable
from aurora.errors import UnavailableError
from aurora.keyspace import SINGLE, Layout
from aurora.presence import Scripts

if TYPE_CHECKING:
    import redis.asyncio
    from websockets.asyncio.server import ServerConnection

    from aurora.settings import Settings

log = logging.getLogger("aurora.fanout")

COALESCE_S = 1.0  # at most one change per user per room per second, to each member
PIPELINE_SLICE = 50  # operations per pipeline: ~1-2 ms of the loop each
Key = tuple[str, str]  # (room, user id)
# What the task does, in order: (what, room, user id, username, who waits).
Op = tuple[str, str, str, str, "asyncio.Future | None"]


class Presence:
    def __init__(
        self, client: redis.asyncio.Redis, settings: Settings, replica: str, layout: Layout = SINGLE
    ) -> None:
        self._redis = client
        self._layout = layout
        self._scripts = Scripts(client)
        self._replica = replica
        self.period = settings.presence_ttl_seconds / 3
        # Entries written live two periods: refreshed every period, swept every
        # period, so a dead replica's users are announced within three.
        self._entry_ms = int(self.period * 2 * 1000)
        # Whether a user is kept out of a room's presence (blocked in a direct
        # room): set by the server to room access's answer.
        self.hidden: Callable[[str, str], bool] = lambda room, user_id: False
        # Written to: the room's members (set by the server once the hub exists).
        self.deliver: Callable[[str, str, str], None] = lambda room, user_id, frame: None
        self._held: dict[Key, int] = {}  # local connections per (room, user)
        self._shown: set[Key] = set()  # of those, held in Redis (not hidden)
        self._names: dict[Key, str] = {}
        self._ops: list[Op] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._sent: dict[Key, tuple[float, str]] = {}  # last change written, and when
        self._pending: dict[Key, tuple[str, str]] = {}  # newest change (frame, status) waiting

    # -- from the hub (synchronous: nothing waits for Redis) ---------------------------

    def tables(self) -> list[dict | set]:
        """What grows with the connections (`memory.compact`)."""
        return [self._held, self._shown, self._names, self._sent, self._pending]

    def enter(self, connection: ServerConnection, room: str) -> None:
        claims = connection.claims
        key = (room, claims.user_id)
        count = self._held.get(key, 0)
        self._held[key] = count + 1
        if count == 0:
            self._names[key] = claims.username
            self._show(key, not self.hidden(room, claims.user_id))

    def exit(self, connection: ServerConnection, room: str) -> None:
        key = (room, connection.claims.user_id)
        count = self._held.get(key, 0)
        if count > 1:
            self._held[key] = count - 1
        elif count == 1:
            del self._held[key]
            self._show(key, False)
            del self._names[key]

    def recheck(self, room: str, user_id: str) -> None:
        """Room access re-read the user's standing: shown or hidden as it says."""
        key = (room, user_id)
        if key in self._held:
            self._show(key, not self.hidden(room, user_id))

    def _show(self, key: Key, shown: bool) -> None:
        if shown and key not in self._shown:
            self._shown.add(key)
            self._queue(("hold", *key, self._names[key], None))
        elif not shown and key in self._shown:
            self._shown.discard(key)
            self._queue(("release", *key, self._names[key], None))

    async def snapshot(self, room: str) -> dict[str, Any]:
        """The frame after `joined`: read after every hold queued before it."""
        future = asyncio.get_running_loop().create_future()
        self._queue(("snapshot", room, "", "", future))
        return await future

    def _queue(self, op: Op) -> None:
        self._ops.append(op)
        self._wake.set()

    # -- the one task that talks to Redis ----------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.period
        while not self._stopping or self._ops:
            try:
                async with asyncio.timeout_at(next_beat):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if loop.time() >= next_beat:
                next_beat = loop.time() + self.period
                self._forget_sent(loop.time())
                for key in self._shown:
                    self._ops.append(("hold", *key, self._names[key], None))
                for room in {room for room, _ in self._held}:
                    self._ops.append(("sweep", room, "", "", None))
            ops, self._ops = self._ops, []
            # A pipeline per slice, in order: a beat's 1,000 refreshes in one
            # held the loop for tens of milliseconds (bench/loop_stalls.py).
            for start in range(0, len(ops), PIPELINE_SLICE):
                try:
                    await self._apply(ops[start : start + PIPELINE_SLICE])
                except Exception:  # a bug must not end presence here: the next beat repairs
                    log.exception("presence update failed")

    async def _apply(self, ops: list[Op]) -> None:
        replies: list[Any] = []
        try:
            with redis_unavailable():
                replies = await self._pipelined(ops)
                # A cluster pipeline sends EVALSHA without loading the script
                # first (a fresh or restarted primary lacks it): load them all
                # and go again from the first refused, so the order holds.
                # A refused script did not run; those after it that did are
                # idempotent (a hold, a release, a sweep, a read).
                refused = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
                if refused:
                    for source in Scripts.SOURCES:
                        await self._redis.script_load(source)
                    replies[refused[0] :] = await self._pipelined(ops[refused[0] :])
        except UnavailableError as exc:
            log.warning("presence update failed; the next refresh repairs it",
                        extra={"error": str(exc.__cause__)})  # fmt: skip
            replies = [exc] * len(ops)
        for (op, room, _, _, future), reply in zip(ops, replies, strict=True):
            if future is None or future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(UnavailableError("Presence unavailable now"))
            elif op == "snapshot":
                future.set_result(presence.snapshot_frame(room, reply))
            else:
                future.set_result(None)

    async def _pipelined(self, ops: list[Op]) -> list[Any]:
        """Each op's reply, or its error, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for op in ops:
                await self._call(pipe, *op[:4])
            return await pipe.execute(raise_on_error=False)

    async def _call(self, pipe: Any, op: str, room: str, user_id: str, name: str) -> None:
        if op == "barrier":  # everything before it is done
            # Any cheap command will do; a cluster pipeline refuses PING (no key).
            pipe.exists(self._layout.presence_key(""))
            return
        if op == "snapshot":
            keys, args = presence.snapshot_call(room, self._layout)
            await self._scripts.page(keys=keys, args=args, client=pipe)
            return
        if op == "sweep":
            keys, args = presence.sweep_call(room, self._layout)
            await self._scripts.sweep(keys=keys, args=args, client=pipe)
            return
        if op == "hold":
            keys, args = presence.hold_call(
                room, user_id, name, self._replica, self._entry_ms, self._layout
            )
            await self._scripts.hold(keys=keys, args=args, client=pipe)
        else:
            keys, args = presence.release_call(room, user_id, name, self._replica, self._layout)
            await self._scripts.release(keys=keys, args=args, client=pipe)

    def stop(self) -> None:
        """End `run` once what is queued is done (cancelling it mid-pipeline
        could leave a half-opened Redis connection behind)."""
        self._stopping = True
        self._wake.set()

    async def release_all(self) -> None:
        """Shutting down: let go of everything now, rather than lapse (in
        order after whatever the task is doing, a refresh included)."""
        for key in list(self._shown):
            self._show(key, False)
        done = asyncio.get_running_loop().create_future()
        self._queue(("barrier", "", "", "", done))
        with contextlib.suppress(UnavailableError):
            await asyncio.wait_for(done, 5)

    # -- changes coming back (the subscriber) ------------------------------------------

    def change(self, room: str, frame: str) -> None:
        """A published change: written now, or held for the rest of its second."""
        try:
            found = untrusted_json.loads(frame)
            key, status = (room, str(found["user_id"])), str(found["status"])
        except Exception:  # anyone with Redis access can publish: never a crash
            log.warning("malformed presence change ignored", extra={"frame": frame[:200]})
            return
        now = asyncio.get_running_loop().time()
        if key in self._pending:
            self._pending[key] = (frame, status)  # the newest wins; its flush is scheduled
            return
        last = self._sent.get(key)
        if last is None or now - last[0] >= COALESCE_S:
            self._write(key, frame, status, now)
            return
        self._pending[key] = (frame, status)
        asyncio.get_running_loop().call_at(last[0] + COALESCE_S, self._flush, key)

    def _flush(self, key: Key) -> None:
        if key not in self._pending:
            return
        frame, status = self._pending.pop(key)
        if self._sent.get(key, (0.0, ""))[1] != status:  # else: undone within the second
            self._write(key, frame, status, asyncio.get_running_loop().time())

    def _write(self, key: Key, frame: str, status: str, now: float) -> None:
        self._sent[key] = (now, status)
        self.deliver(*key, frame)

    def _forget_sent(self, now: float) -> None:
        self._sent = {
            k: v for k, v in self._sent.items() if now - v[0] < COALESCE_S or k in self._pending
        }
