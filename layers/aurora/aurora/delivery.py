"""Accepting a chat message: the rate-limit check, the append to the
persistence stream and the publish to the room's channel happen in one
server-side script, so a message is never published without being queued
for persistence, or queued without being published.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aurora.messages import frame_prefix
from aurora.settings import Settings
from aurora.stream import SCHEMA_VERSION, STREAM_KEY

if TYPE_CHECKING:
    import redis.asyncio

ROOM_CHANNEL_PREFIX = "aurora:room:"

# KEYS: rate-limit counter, stream.  ARGV: limit, window ms, channel, frame
# prefix, then the entry's field/value pairs.
_SEND = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return {0, ttl}
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
local frame = ARGV[4] .. ',"id":"' .. id .. '","ts":' .. string.match(id, '^(%d+)') .. '}'
redis.call('PUBLISH', ARGV[3], frame)
return {1, id, frame}
"""


def room_channel(room: str) -> str:
    return ROOM_CHANNEL_PREFIX + room


def rate_key(room: str, user_id: str) -> str:
    return f"aurora:rate:{room}:{user_id}"


@dataclass(frozen=True)
class Accepted:
    id: str
    frame: str


@dataclass(frozen=True)
class RateLimited:
    retry_after_ms: int


class Sender:
    """Sends messages through the script; one per Redis client."""

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self._script = client.register_script(_SEND)
        self._settings = settings

    async def send(
        self, *, room: str, user_id: str, username: str, text: str
    ) -> Accepted | RateLimited:
        fields = {
            "v": SCHEMA_VERSION,
            "room": room,
            "user_id": user_id,
            "username": username,
            "text": text,
        }
        args: list[str | int] = [
            self._settings.rate_limit_messages,
            self._settings.rate_limit_window_ms,
            room_channel(room),
            frame_prefix(room, user_id, username, text),
        ]
        for name, value in fields.items():
            args += [name, value]
        result = await self._script(keys=[rate_key(room, user_id), STREAM_KEY], args=args)
        if int(result[0]) == 1:
            return Accepted(id=str(result[1]), frame=str(result[2]))
        return RateLimited(retry_after_ms=max(int(result[1]), 1))
