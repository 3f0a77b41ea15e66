"""Closing this replica's open connections whose token or session was revoked.

`aurora.sessions` publishes a notice naming the user on `REVOCATIONS_CHANNEL`
with every revocation; the replica's subscriber hands it here. A notice carries no
authority: it only says whose connections to re-check against the revocation
keys in Redis (`aurora.tokens.find_revoked_async`, the same keys the upgrade
checks), so a forged or repeated notice costs a round trip and closes nothing.

Pub/sub is at-most-once, so every connection is also re-checked every
`REVOCATION_CHECK_SECONDS` and as soon as the subscriber has reconnected: a
lost notice is enforced within that bound. One task does all checks, one
round trip each, however many notices or connections.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aurora import untrusted_json
from aurora.errors import UnavailableError
from aurora.tokens import find_revoked_async
from fanout.protocol import CLOSE_AUTH_FAILED

if TYPE_CHECKING:
    import redis.asyncio

    from aurora.settings import Settings
    from fanout.metrics import Metrics
    from fanout.users import UserConnection, Users

log = logging.getLogger("aurora.fanout")

CLOSE_REASON = "token revoked"


class RevocationWatch:
    def __init__(
        self, client: redis.asyncio.Redis, settings: Settings, metrics: Metrics, users: Users
    ) -> None:
        self._redis = client
        self._interval = settings.revocation_check_seconds
        self._metrics = metrics
        self._users = users  # authenticated local connections
        self._due: set[str] = set()  # users named by notices, not re-checked yet
        self._check_all = False
        self._wake = asyncio.Event()
        self._closing: set[asyncio.Task] = set()

    # -- triggers (from the replica's subscriber) ---------------------------------------

    def notice(self, data: object) -> None:
        """A message on REVOCATIONS_CHANNEL: re-check that user's connections soon."""
        try:
            user_id = untrusted_json.loads(data)["user_id"]
            if not isinstance(user_id, str):
                raise TypeError(user_id)
        except (ValueError, KeyError, TypeError):
            log.warning("malformed revocation notice ignored", extra={"notice": repr(data)[:200]})
            return
        if user_id in self._users:
            self._due.add(user_id)
            self._wake.set()

    def check_all_soon(self) -> None:
        """Notices may have been missed (the subscriber was disconnected)."""
        self._check_all = True
        self._wake.set()

    # -- the one checking task ---------------------------------------------------------

    async def run(self) -> None:
        """Re-check the users named by notices as they come, and everyone every
        interval, until cancelled."""
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
                # The lists are arguments, not locals: kept in this frame, they
                # would hold every session of the last sweep until the next one.
                await self._close_revoked(list(self._users), trigger="sweep")
            else:
                users, self._due = self._due, set()
                await self._close_revoked(
                    [w for user in users for w in self._users.of(user)], trigger="notice"
                )

    async def _close_revoked(self, watched: list[UserConnection], *, trigger: str) -> None:
        if not watched:
            return
        checked = [w.claims for w in watched]
        try:
            revoked = await find_revoked_async(self._redis, checked)
        except UnavailableError:
            # Keep serving: closing everyone on a Redis blip would be a
            # reconnect storm. The next sweep retries.
            log.warning("revocation re-check failed; retrying at the next sweep")
            return
        for each, claims, gone in zip(watched, checked, revoked, strict=True):
            # A re-auth during the check replaced the claims: the new token
            # was checked on its own and stays.
            if gone and each.claims is claims and each.is_open:
                self._metrics.revoked.labels(trigger).inc()
                # Not awaited: a client slow to answer the close must not hold up the others.
                task = asyncio.create_task(each.close(CLOSE_AUTH_FAILED, CLOSE_REASON))
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
