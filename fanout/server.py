"""The WebSocket server: authentication at the upgrade, the receive loop,
health checks and graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import signal
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from aurora.backends import async_redis_client
from aurora.delivery import RateLimited, Sender
from aurora.errors import AuroraError
from aurora.origins import is_allowed_origin
from aurora.settings import Settings, get_settings
from aurora.tokens import authenticate_async
from fanout.hub import Hub
from fanout.protocol import DEFAULT_ROOM, error_frame, parse_client_frame, rate_limited_frame

log = logging.getLogger("aurora.fanout")

SERVER_RESTART_CLOSE = 1012


class FanoutServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = async_redis_client(settings.redis_url)
        self.hub = Hub(self.redis)
        self.sender = Sender(self.redis, settings)

    # -- the opening handshake -------------------------------------------------

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        url = urlsplit(request.path)
        if url.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        if not is_allowed_origin(request.headers.get("Origin"), self.settings):
            return connection.respond(http.HTTPStatus.FORBIDDEN, "Origin not allowed\n")
        token = parse_qs(url.query).get("token", [None])[0]
        try:
            # The same check as the REST functions, revocation included.
            connection.claims = await authenticate_async(token, self.settings, self.redis)
        except AuroraError as exc:
            response = connection.respond(http.HTTPStatus(exc.status), f"{exc.message}\n")
            if exc.status == http.HTTPStatus.UNAUTHORIZED:
                response.headers["WWW-Authenticate"] = "Bearer"
            return response
        return None

    # -- one connection ----------------------------------------------------------

    async def handle(self, connection: ServerConnection) -> None:
        claims = connection.claims
        await self.hub.join(DEFAULT_ROOM, connection)
        try:
            async for raw in connection:
                reply = await self._on_frame(raw, claims)
                if reply is not None:
                    await connection.send(reply)
        except ConnectionClosed:
            pass
        finally:
            await self.hub.leave_all(connection)

    async def _on_frame(self, raw: str | bytes, claims) -> str | None:
        import redis

        try:
            command = parse_client_frame(raw, max_text_chars=self.settings.max_text_chars)
            if command is None:
                return None
            outcome = await self.sender.send(
                room=command.room,
                user_id=claims.user_id,
                username=claims.username,
                text=command.text,
            )
        except AuroraError as exc:
            return error_frame(exc.code, exc.message)
        except (redis.ConnectionError, redis.TimeoutError):
            return error_frame("unavailable", "Message not sent: storage unavailable, retry")
        if isinstance(outcome, RateLimited):
            return rate_limited_frame(outcome.retry_after_ms)
        return None  # the sender receives its own message through the room

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, stop: asyncio.Future, ready: asyncio.Future | None = None) -> None:
        await self.hub.start()
        subscriber = asyncio.create_task(self.hub.run())
        async with serve(
            self.handle,
            self.settings.fanout_host,
            self.settings.fanout_port,
            process_request=self.process_request,
            # Timeouts
            ping_interval=self.settings.ping_interval_seconds,
            ping_timeout=self.settings.ping_interval_seconds,
            close_timeout=5,
            # Limits
            max_size=self.settings.max_frame_bytes,
            max_queue=16,
            # Memory: permessage-deflate costs ~4x per connection.
            compression=None,
            server_header="AuroraChat",
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            log.info("fan-out listening on ws://%s:%s", self.settings.fanout_host, port)
            print(f"fan-out listening on ws://{self.settings.fanout_host}:{port}", flush=True)
            if ready is not None:
                ready.set_result(port)
            await stop
            server.close(close_connections=False)
            await asyncio.gather(
                *(c.close(SERVER_RESTART_CLOSE, "server restart") for c in server.connections)
            )
            await server.wait_closed()
        subscriber.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await subscriber
        await self.hub.close()
        await self.redis.aclose()


async def serve_forever(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await FanoutServer(settings).run(stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_forever(settings))
    else:
        uvloop.run(serve_forever(settings))
