"""The WebSocket server: the opening handshake (health, readiness, metrics,
Origin, token), the lifecycle and graceful shutdown. What happens on one
connection after the handshake is in `fanout/session.py`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import logging
import re
import signal
import uuid
from collections.abc import Coroutine
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from aurora.backends import (
    async_redis_client,
    async_redis_client_for_single,
    layout,
    redis_mode,
    redis_unavailable,
)
from aurora.budget import SendBudget
from aurora.changes import Changer
from aurora.errors import AuroraError, ConfigurationError, UnavailableError
from aurora.keyspace import SINGLE
from aurora.origins import is_allowed_origin
from aurora.receipts import Cursors
from aurora.secrets import jwt_secrets
from aurora.sending import Sender
from aurora.settings import Settings, get_settings
from aurora.tokens import Claims, authenticate_async
from fanout.access import RoomAccess
from fanout.admission import Admission
from fanout.connection import FanoutConnection
from fanout.connection_limit import ConnectionLimit
from fanout.expiry import TokenExpiry
from fanout.hub import Hub
from fanout.keepalive import keepalive as pings
from fanout.memory import ALLOCATOR, allocator_stats, freeze_startup, release_after_waves
from fanout.metrics import CONTENT_TYPE_LATEST, Metrics
from fanout.presence import Presence
from fanout.protocol import BEARER_PREFIX, CLOSE_SERVER_RESTART, SUBPROTOCOL
from fanout.replica import Replica
from fanout.revocation import RevocationWatch
from fanout.session import Session
from fanout.subscriber import Subscriber
from fanout.upload_check import AttachmentCheck
from fanout.users import Users

log = logging.getLogger("aurora.fanout")

# Tokens travel in the URL (v0) and in the subprotocol offer;
# websockets logs both at DEBUG level. They never reach a log.
_SECRETS = re.compile(r"(token=|bearer\.)[^&\s,]+", re.IGNORECASE)


# Every held connection's request and response headers once the handshake has
# read them: one empty object, written by no one.
_READ = Headers()


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRETS.search(message):
            record.msg, record.args = _SECRETS.sub(r"\1[redacted]", message), None
        return True


def _redact_websockets_logs() -> None:
    ws_log = logging.getLogger("websockets.server")
    if not any(isinstance(f, RedactTokens) for f in ws_log.filters):
        ws_log.addFilter(RedactTokens())


class FanoutServer:
    def __init__(self, settings: Settings) -> None:
        _redact_websockets_logs()
        self.settings = settings
        self.metrics = Metrics()
        try:
            self.redis = async_redis_client(settings.redis_url)  # detects a cluster
            self.layout = layout(settings)
            self._mode_known = True
        except UnavailableError:
            # Redis is down at start: serve as a single Redis (not ready until
            # it answers); `_learn_mode` restarts this replica if it turns out
            # to be a cluster.
            log.warning("redis unreachable at start; its mode is found once it answers")
            self.redis = async_redis_client_for_single(settings.redis_url)
            self.layout = SINGLE
            self._mode_known = False
        self._restart_reason: str | None = None
        self.users = Users()
        self.revocations = RevocationWatch(self.redis, settings, self.metrics, self.users)
        replica_id = uuid.uuid4().hex[:12]
        self.access = RoomAccess(self.redis, settings, self.users)
        self.presence = Presence(self.redis, settings, replica_id, self.layout)
        self.subscriber = Subscriber(
            self.redis, settings, self.revocations, self.access, self.presence,
            layout=self.layout,
        )  # fmt: skip
        self.hub = Hub(
            self.redis, settings, self.metrics, channels=self.subscriber, layout=self.layout
        )
        self.access.hub = self.hub
        self.access.presence = self.presence
        self.hub.presence = self.presence
        self.presence.deliver = self.hub.write_presence
        self.presence.hidden = self.access.is_blocked
        self.admission = Admission(settings.admissions_per_second)
        self.limit = ConnectionLimit(
            self.redis,
            cap=settings.max_connections_per_user,
            lease_seconds=settings.connection_lease_seconds,
        )
        self.replica = Replica(
            id=replica_id,
            settings=settings,
            metrics=self.metrics,
            hub=self.hub,
            sender=Sender(self.redis, settings, self.layout),
            changer=Changer(self.redis, settings, self.layout),
            cursors=Cursors(self.redis, settings, self.layout),
            budget=SendBudget(self.redis, settings),
            attachments=AttachmentCheck(settings, self.redis),  # S3 client made on first use
            limit=self.limit,
            users=self.users,
            revocations=self.revocations,
            expiry=TokenExpiry(),
            authenticate=self.authenticate,
            access=self.access,
            presence=self.presence,
        )

    async def authenticate(self, token: object) -> Claims:
        """The one token check of the fan-out tier (URL, subprotocol, `auth`
        frame, re-auth all come here, through the replica): AuthenticationError
        when refused, another AuroraError (e.g. UnavailableError) when it
        cannot decide."""
        return await authenticate_async(token, self.settings, self.redis)

    # -- the opening handshake -------------------------------------------------

    async def process_request(
        self, connection: FanoutConnection, request: Request
    ) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if url.path == "/readyz":
            return await self._readiness(connection)
        if url.path == "/metrics":
            body = self.metrics.render()
            headers = Headers(
                [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))]
            )
            return Response(http.HTTPStatus.OK, "OK", headers, body)
        if not self.admission.admit():  # before any work: a reconnect storm waits outside
            self.metrics.rejected.labels("busy").inc()
            response = connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "busy, retry\n")
            response.headers["Retry-After"] = "1"
            return response
        if not is_allowed_origin(request.headers.get("Origin"), self.settings):
            self.metrics.rejected.labels("origin").inc()
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        # A token in the URL (v0) or in the subprotocol
        # offer; neither is ever logged. Without one, `auth` must come first.
        query = parse_qs(url.query, keep_blank_values=True)
        token = query["token"][0] if "token" in query else _bearer(request)
        if token is not None:
            try:
                connection.claims = await self.replica.authenticate(token)
            except AuroraError as exc:  # 401, or 503 if the check itself is unavailable
                self.metrics.rejected.labels("token").inc()
                response = connection.respond(http.HTTPStatus(exc.status), f"{exc.message}\n")
                if exc.status == http.HTTPStatus.UNAUTHORIZED:
                    response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return None

    async def _readiness(self, connection: ServerConnection) -> Response:
        try:
            await asyncio.wait_for(self.redis.ping(), 1.0)
            ready = self.subscriber.connected and self._mode_known
        except Exception:  # any failure means "not ready", never a crash
            ready = False
        if ready:
            return connection.respond(http.HTTPStatus.OK, "ready\n")
        return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "redis unreachable\n")

    @staticmethod
    def select_subprotocol(connection: ServerConnection, offered) -> str | None:
        # Answer `aurora.v1` only: the `bearer.<token>` offer is never echoed.
        return SUBPROTOCOL if SUBPROTOCOL in offered else None

    def handle(self, connection: FanoutConnection) -> Coroutine[Any, Any, None]:
        """The connection's session. Not a coroutine itself: the session's is
        the one the library awaits, one frame less per connection held."""
        # What only the handshake reads goes (docs/benchmarks.md, memory): the
        # upgrade's headers (15.8 -> ~11 KiB of RSS per held connection), and
        # the library's subprotocol callback, a closure over the connection
        # that makes each connection a reference cycle.
        connection.request.headers = connection.response.headers = _READ
        with contextlib.suppress(AttributeError):
            del connection.protocol.select_subprotocol  # back to the class's, never called again
        return Session(self.replica, connection).run()

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, stop: asyncio.Future, ready: asyncio.Future | None = None) -> None:
        mode = None if self._mode_known else asyncio.create_task(self._learn_mode(stop))
        subscriber = asyncio.create_task(self.subscriber.run(self.hub))
        renewer = asyncio.create_task(self._renew_leases())
        revocations = asyncio.create_task(self.revocations.run())
        access = asyncio.create_task(self.access.run())
        presence = asyncio.create_task(self.presence.run())
        async with serve(
            self.handle,
            self.settings.fanout_host,
            self.settings.fanout_port,
            process_request=self.process_request,
            select_subprotocol=self.select_subprotocol,
            # Tells the hub when a connection stops being a broadcast target.
            create_connection=functools.partial(
                FanoutConnection, self.hub, self.settings.socket_send_buffer_bytes
            ),
            # Timeouts: pings keep load balancers (60 s idle) from cutting us
            # off; one task pings everyone (fanout/keepalive.py), not one per connection.
            ping_interval=None,
            close_timeout=3,
            # Limits: a deep accept queue absorbs reconnect storms (a replica died).
            backlog=2048,
            max_size=self.settings.max_frame_bytes,
            max_queue=16,
            write_limit=self.settings.max_send_buffer_bytes,
            # Memory: permessage-deflate costs ~4x per connection.
            compression=None,
            server_header="AuroraChat",
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            where = {"host": self.settings.fanout_host, "port": port}
            log.info(
                "fan-out listening", extra={**where, "allocator": ALLOCATOR, **allocator_stats()}
            )
            if ready is not None:
                ready.set_result(port)
            keepalive = asyncio.create_task(
                pings(
                    server, self.settings.ping_interval_seconds, self.settings.max_send_buffer_bytes
                )
            )
            # Connections still closing count: a wave is over once they are gone.
            releases = asyncio.create_task(
                release_after_waves(
                    lambda: len(server.all_connections), lambda: self._tables(server)
                )
            )
            await stop
            keepalive.cancel()
            releases.cancel()
            # Stop accepting, free the clients' connection slots in a few round
            # trips (not one per client), then ask them to reconnect elsewhere.
            server.close(close_connections=False)
            await self._release_leases()
            await self.presence.release_all()  # its users go offline now, not at expiry
            await asyncio.gather(
                *(c.close(CLOSE_SERVER_RESTART, "server restart") for c in server.connections),
                return_exceptions=True,
            )
            await server.wait_closed()
        self.presence.stop()
        self.replica.expiry.stop()
        await asyncio.wait([presence], timeout=5)
        for task in (subscriber, renewer, revocations, access, presence, mode):
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # What closing connections left running against Redis ends first: a
        # command sent after the client closes would open it again.
        lingering = [*self.replica.lingering, *self.limit.under_way()]
        if lingering:
            await asyncio.wait(lingering, timeout=5)
        await self.subscriber.close()
        self.replica.attachments.close()
        await self.redis.aclose()
        if self._restart_reason:
            raise ConfigurationError(self._restart_reason)

    async def _learn_mode(self, stop: asyncio.Future) -> None:
        """Ask Redis its mode until it answers. A single Redis: carry on (this
        replica already serves as one). A cluster: stop, and exit with the
        reason, so that the restarted replica starts in cluster mode."""
        while True:
            try:
                mode = await asyncio.to_thread(redis_mode, self.settings.redis_url)
            except UnavailableError:
                await asyncio.sleep(1.0)
                continue
            if mode.cluster:
                self._restart_reason = "REDIS_URL is a cluster, unreachable at start: restart"
                if not stop.done():
                    stop.set_result(None)
            else:
                self._mode_known = True
            return

    def _tables(self, server: Server) -> list[dict | set]:
        """The registries that grow with the connections, for `memory.compact`
        after a wave: the WebSocket server's own sets, and this replica's."""
        own = [getattr(server, name, None) for name in ("all_connections", "handler_tasks")]
        # asyncio's registry of every task grows with the sessions too: a
        # WeakSet, `_all_tasks` in 3.11, `_scheduled_tasks` in 3.12 and 3.13.
        for name in ("_all_tasks", "_scheduled_tasks"):
            own.append(getattr(getattr(asyncio.tasks, name, None), "data", None))
        return [
            *(table for table in own if isinstance(table, set)),
            *self.limit.tables(),
            *self.users.tables(),
            *self.hub.tables(),
            *self.presence.tables(),
        ]

    async def _release_leases(self) -> None:
        try:
            with redis_unavailable():
                await self.limit.release_all()
        except UnavailableError as exc:  # they expire instead
            log.warning("could not release connection leases", extra={"error": str(exc.__cause__)})

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self.settings.connection_lease_seconds / 3)
            try:
                with redis_unavailable():
                    await self.limit.renew()
            except UnavailableError as exc:
                log.warning("lease renewal failed", extra={"error": str(exc.__cause__)})


def _bearer(request: Request) -> str | None:
    """The token of a `bearer.<token>` subprotocol offer, if any."""
    for header in request.headers.get_all("Sec-WebSocket-Protocol"):
        for offer in header.split(","):
            offer = offer.strip()
            if offer.startswith(BEARER_PREFIX):
                return offer[len(BEARER_PREFIX) :]
    return None


async def serve_forever(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    server = FanoutServer(settings)
    freeze_startup()
    await server.run(stop)


def configure_logging(console: bool = False) -> None:
    """One JSON object per line on stderr; with `console`, the local stack's
    readable lines instead (a person reads them, not a log service)."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler()
    if console:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    else:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    # One line per connection opened and closed is noise at 10,000 connections.
    logging.getLogger("websockets.server").setLevel(logging.WARNING)


def main() -> None:
    settings = get_settings()
    configure_logging(console=settings.fanout_console_logs)
    # A stored JWT secret that cannot be read, or is too weak, stops the task
    # here, where a deployment sees it, not at the first connection.
    jwt_secrets(settings)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_forever(settings))
    else:
        uvloop.run(serve_forever(settings))
