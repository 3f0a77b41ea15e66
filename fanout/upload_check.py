"""The attachment check on the send path: the layer's HEAD check against the
stored objects, run off the event loop with one S3 client per process; and
the record of the rooms each file was posted in.

boto3 is imported (and the client built) on the first message that carries an
attachment, not when the fan-out starts: most replicas' messages carry none.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from aurora.attachments import (
    Attachment,
    record_posted_async,
    s3_client,
    verify_attachments,
    withdraw_async,
)
from aurora.backends import redis_unavailable
from aurora.errors import UnavailableError
from aurora.settings import Settings

if TYPE_CHECKING:
    import redis.asyncio

# Checks waiting for a thread, per thread, before more are refused `unavailable`:
# a slow S3 holds a few seconds of sends, not an unbounded queue.
QUEUED_PER_THREAD = 16


class AttachmentCheck:
    def __init__(self, settings: Settings, client: redis.asyncio.Redis | None = None) -> None:
        self._settings = settings
        self._redis = client
        self._client: Any = None
        # boto3's client factory is not thread-safe: the first checks may race.
        self._lock = threading.Lock()
        # A pool of their own: a slow S3 never starves the loop's default
        # executor (DNS lookups, other blocking work), and the other way round.
        threads = settings.attachment_check_threads
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="attachment-check")
        self._room = threads * (1 + QUEUED_PER_THREAD)  # checks in flight at most

    async def verify(self, items: list[Any] | None, user_id: str) -> list[Attachment]:
        """The message's attachments, checked; `AuroraError` if one is refused
        (`ValidationError`) or S3 cannot be asked (`UnavailableError`)."""
        if not items:
            return []
        if self._room <= 0:
            raise UnavailableError("Attachment checks are busy, retry")
        self._room -= 1
        try:
            # Blocking network I/O (one HEAD per attachment): never on the loop.
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._verify, items, user_id)
        finally:
            self._room += 1

    def close(self) -> None:
        """Let running checks finish; start no more."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def posted(self, room: str, attachments: list[Attachment]) -> None:
        """Record the room a message carrying these files was accepted in: the
        download link serves a file only to those who may read such a room."""
        if attachments and self._redis is not None:
            with redis_unavailable():
                await record_posted_async(self._redis, room, [a.url for a in attachments])

    async def withdrawn(self, room: str, urls: tuple[str, ...]) -> None:
        """The message carrying these files was deleted: no more download links."""
        if urls and self._redis is not None:
            with redis_unavailable():
                await withdraw_async(self._redis, room, urls)

    def _verify(self, items: list[Any], user_id: str) -> list[Attachment]:
        return verify_attachments(items, user_id, self._settings, self._s3())

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = s3_client(self._settings.s3_endpoint_url)
            return self._client
