"""One client connection after the handshake: authentication (if the token did
not come with the upgrade), the connection cap, then the receive loop that
turns each frame into one command and answers it. Bad input gets an `error`
frame and the connection stays; the server never crashes on a frame."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from aurora.backends import redis_unavailable
from aurora.errors import AuroraError, AuthenticationError, UnavailableError
from aurora.sending import Accepted, Backpressure, Duplicate, RateLimited
from fanout import protocol as p

if TYPE_CHECKING:
    from aurora.tokens import Claims
    from fanout.connection import FanoutConnection
    from fanout.replica import Replica

log = logging.getLogger("aurora.fanout")

MAX_ROOMS_PER_CONNECTION = 100
TYPING_MIN_INTERVAL_S = 1.0  # a repeated typing=true more often than this is not relayed
_RETRY = "unavailable, retry"  # the close reason when Redis cannot admit a connection


class Session:
    # One per connection: slots keep it small at 10,000 connections.
    __slots__ = ("_expiry", "_typing_sent", "claims", "connection", "replica", "v0")

    def __init__(self, replica: Replica, connection: FanoutConnection) -> None:
        self.replica = replica
        self.connection = connection
        self.claims: Claims | None = connection.claims
        # v0, the original protocol: token in the URL, no subprotocol; such
        # clients are put in `general` and get no v1-only frames.
        self.v0 = connection.subprotocol != p.SUBPROTOCOL
        self._expiry: asyncio.TimerHandle | None = None
        self._typing_sent: dict[str, float] | None = None  # made on first use

    async def run(self) -> None:
        replica, connection = self.replica, self.connection
        try:
            if self.claims is None and not await self._authenticate_first_frame():
                return
            member = f"{replica.id}:{connection.id}"
            if not await self._acquire(member):
                return
            try:
                replica.metrics.connections.inc()
                replica.revocations.add(self)  # closed with 4001 if its token is revoked
                self._schedule_expiry()
                if self.v0:
                    if not await self._join_general():
                        return
                else:
                    await connection.send(p.ready_frame(self.claims.username, self.claims.user_id))
                while True:  # recv() rather than `async for`: one frame less per connection
                    reply = await self._on_frame(await connection.recv())
                    if reply is not None:
                        await connection.send(reply)
            finally:
                replica.metrics.connections.dec()
                replica.revocations.discard(self)
                if self._expiry is not None:
                    self._expiry.cancel()
                await replica.hub.leave_all(connection)
                await self._release(member)
        except ConnectionClosed:
            pass

    # -- what the revocation watch sees ------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.connection.protocol.state is State.OPEN

    async def close(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    # -- before the receive loop -------------------------------------------------

    async def _authenticate_first_frame(self) -> bool:
        """No token came with the upgrade: the first frame must be `auth`."""
        connection = self.connection
        try:
            raw = await asyncio.wait_for(
                connection.recv(), self.replica.settings.auth_timeout_seconds
            )
        except TimeoutError:
            return await self._refuse(p.CLOSE_AUTH_FAILED, "authentication timeout", "timeout")
        try:
            command = p.parse_client_frame(raw, max_text_chars=0)
        except AuroraError:
            command = None
        if not isinstance(command, p.Auth):
            return await self._refuse(p.CLOSE_AUTH_FAILED, "authentication required", "no_auth")
        try:
            self.claims = await self.replica.authenticate(command.token)
        except AuthenticationError as exc:
            return await self._refuse(exc.close_code, exc.message, "token")
        except AuroraError as exc:  # the check itself failed (e.g. Redis): not the client's fault
            return await self._refuse(exc.close_code, _RETRY, "unavailable")
        self.v0 = False
        self.connection.claims = self.claims  # room access reads whose connection it is
        return True

    async def _acquire(self, member: str) -> bool:
        try:
            with redis_unavailable():
                if await self.replica.limit.acquire(self.claims.user_id, member):
                    return True
        except UnavailableError as exc:
            log.warning("connection cap unavailable", extra={"error": repr(exc.__cause__)})
            return await self._refuse(exc.close_code, _RETRY, "unavailable")
        return await self._refuse(
            p.CLOSE_TOO_MANY_CONNECTIONS, "too many connections for this user", "user_cap"
        )

    async def _join_general(self) -> bool:
        """v0 clients are in `general` from the start."""
        try:
            with redis_unavailable():
                await self.replica.hub.join(self.connection, p.DEFAULT_ROOM, None, announce=False)
        except UnavailableError as exc:
            return await self._refuse(exc.close_code, _RETRY, "unavailable")
        return True

    async def _release(self, member: str) -> None:
        with contextlib.suppress(UnavailableError), redis_unavailable():
            await self.replica.limit.release(self.claims.user_id, member)  # else: lease expires

    async def _refuse(self, code: int, reason: str, metric: str) -> bool:
        self.replica.metrics.rejected.labels(metric).inc()
        await self.connection.close(code, reason)
        return False

    def _schedule_expiry(self) -> None:
        """Close with 4001 when the token expires (a re-auth moves this)."""
        if self._expiry is not None:
            self._expiry.cancel()
        delay = self.claims.expires_at + self.replica.settings.jwt_leeway_seconds - time.time()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(
            max(delay, 0),
            lambda: asyncio.ensure_future(
                self.connection.close(p.CLOSE_AUTH_FAILED, "token expired")
            ),
        )

    # -- the receive loop --------------------------------------------------------

    async def _on_frame(self, raw: str | bytes) -> str | None:
        settings = self.replica.settings
        command = None
        try:
            with redis_unavailable("Not done: Redis is unreachable, retry"):
                command = p.parse_client_frame(raw, max_text_chars=settings.max_text_chars)
                if command is None:
                    return None
                return await self._dispatch(command)
        except AuroraError as exc:
            return p.error_frame(exc.code, exc.message, client_id=_answering(command, raw))

    async def _dispatch(self, command: p.ClientFrame) -> str | None:
        replica, connection = self.replica, self.connection
        match command:
            case p.SendMessage():
                return await self._send(command)
            case p.Join(room=room, since=since):
                return await self._join(room, since)
            case p.Leave(room=room):
                await replica.hub.leave(connection, room)
                return p.left_frame(room)
            case p.Typing(room=room, typing=typing):
                if not (await replica.access.standing(self.claims, room)).may_post:
                    return p.error_frame("forbidden", f"You may not write to {room!r}")
                if not replica.hub.is_member(connection, room):
                    return p.error_frame("not_joined", f"Join {room!r} first")
                now = time.monotonic()
                sent = self._typing_sent = self._typing_sent or {}
                if typing and now - sent.get(room, 0.0) < TYPING_MIN_INTERVAL_S:
                    return None
                sent[room] = now if typing else 0.0
                frame = p.typing_frame(room, self.claims.username, self.claims.user_id, typing)
                await replica.sender.publish_ephemeral(room, frame)
                return None
            case p.Ping():
                return p.PONG
            case p.Auth(token=token):
                return await self._reauthenticate(token)
        return None  # unreachable: parse_client_frame returns only the types above

    async def _join(self, room: str, since: str | None) -> str | None:
        replica, connection = self.replica, self.connection
        before = replica.access.generation(room)
        standing = await replica.access.standing(self.claims, room)
        if not standing.may_read:
            return p.error_frame("forbidden", f"You may not join {room!r}")
        if replica.hub.is_member(connection, room):
            return p.joined_frame(room, recovered=True, missed=0)
        if len(replica.hub.rooms_of(connection)) >= MAX_ROOMS_PER_CONNECTION:
            return p.error_frame("too_many_rooms", "Leave a room first")
        await replica.access.record_join(self.claims, room, standing)
        replica.hub.await_snapshot(connection, room)
        snapshot = None
        try:
            await replica.hub.join(connection, room, since)  # writes `joined`, the replay
            if replica.access.generation(room) != before:
                # The room's membership changed while this join was on its way:
                # the re-check covers this connection too, now that it is in.
                replica.access.recheck_soon(room)
            with contextlib.suppress(UnavailableError):  # without it, the changes still come
                snapshot = p.presence_frame(await replica.presence.snapshot(room))
        finally:
            replica.hub.write_snapshot(connection, room, snapshot)
        return None

    async def _send(self, command: p.SendMessage) -> str | None:
        replica = self.replica
        if not (await replica.access.standing(self.claims, command.room)).may_post:
            return p.error_frame(
                "forbidden", f"You may not write to {command.room!r}", client_id=command.client_id
            )
        if not replica.hub.is_member(self.connection, command.room):
            return p.error_frame(
                "not_joined", f"Join {command.room!r} first", client_id=command.client_id
            )
        # Before the script: a refused attachment (or S3 out of reach) raises
        # an AuroraError, answered with an `error` frame; nothing is stored.
        attachments = await replica.attachments.verify(command.attachments, self.claims.user_id)
        started = time.perf_counter()
        outcome = await replica.sender.send(
            room=command.room,
            user_id=self.claims.user_id,
            username=self.claims.username,
            text=command.text,
            client_id=command.client_id,
            attachments=[a.model_dump() for a in attachments],
        )
        replica.metrics.send_latency.observe(time.perf_counter() - started)
        match outcome:
            case Accepted(id=message_id):
                replica.metrics.messages_in.inc()
                # After the send: a failure here leaves the file unlinkable
                # from this room (refused, never leaked); the message stands.
                with contextlib.suppress(AuroraError):
                    await replica.attachments.posted(command.room, attachments)
                if command.client_id is not None:
                    return p.ack_frame(command.client_id, message_id)
                return None  # the sender receives its own message through the room
            case Duplicate(id=message_id):
                return p.ack_frame(command.client_id, message_id, duplicate=True)
            case RateLimited(retry_after_ms=retry):
                replica.metrics.rate_limited.inc()
                return p.rate_limited_frame(retry, client_id=command.client_id)
            case Backpressure():
                return p.error_frame(
                    "backpressure",
                    "Not sent: message storage is behind, retry later",
                    client_id=command.client_id,
                )
        return None

    async def _reauthenticate(self, token: str) -> str:
        """A fresh token on an open connection extends it; another user's is refused."""
        try:
            claims = await self.replica.authenticate(token)
        except AuthenticationError as exc:
            await self.connection.close(p.CLOSE_AUTH_FAILED, exc.message)
            raise ConnectionClosed(None, None) from None
        # Any other AuroraError (unavailable) becomes an error frame; the session stays.
        if claims.user_id != self.claims.user_id:
            await self.connection.close(p.CLOSE_FORBIDDEN, "a connection cannot change user")
            raise ConnectionClosed(None, None) from None
        self.claims = self.connection.claims = claims
        self._schedule_expiry()
        return p.ready_frame(claims.username, claims.user_id)


def _answering(command: p.ClientFrame | None, raw: str | bytes) -> str | None:
    """The `client_id` a refusal answers: the send's own, or, for a frame that
    did not parse, whatever valid one it claims (so the client knows which)."""
    if command is None:
        return p.claimed_client_id(raw)
    return command.client_id if isinstance(command, p.SendMessage) else None
