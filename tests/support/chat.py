"""Chat participants for integration tests: WebSocket clients that fold what
they receive into the state a user sees, beside the people, REST calls and
drain of `tests.support.rooms`."""

from __future__ import annotations

from websockets.asyncio.client import connect

from tests.support.fanout import receive_json, send_json
from tests.support.rooms import Person, drain, person, rest

__all__ = ["Client", "LiveState", "Person", "client", "drain", "person", "rest"]


class LiveState:
    """What a client makes of the frames it receives: the client's fold."""

    def __init__(self) -> None:
        self.messages: dict[str, dict] = {}
        self.reactions: dict[str, list[dict]] = {}  # message id -> [{emoji, count}], when any
        self.frames: list[dict] = []

    def see(self, frame: dict) -> None:
        self.frames.append(frame)
        match frame["type"]:
            case "message":
                self.messages[frame["id"]] = {"text": frame["text"], "deleted": False}
            case "edit" if not self.messages[frame["message_id"]]["deleted"]:
                self.messages[frame["message_id"]]["text"] = frame["text"]
            case "delete":
                self.messages[frame["message_id"]] = {"text": "", "deleted": True}
                self.reactions.pop(frame["message_id"], None)
            case "react" if frame["reactions"]:
                self.reactions[frame["message_id"]] = frame["reactions"]
            case "react":
                self.reactions.pop(frame["message_id"], None)


class Client:
    """One connection, joined to a room, folding what it receives."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.live = LiveState()
        self._sent = 0

    async def request(self, frame: dict) -> dict:
        """Send with a fresh client_id; the answer (ack, error, rate_limited)."""
        self._sent += 1
        await send_json(self.ws, frame | {"client_id": f"c{self._sent}"})
        while True:
            got = await receive_json(self.ws)
            if got["type"] in ("ack", "error", "rate_limited"):
                return got
            self.live.see(got)

    async def join(self, room: str, since: str | None = None) -> dict:
        """Join `room`; the `joined` frame (or the `error` refusing it)."""
        await send_json(
            self.ws, {"type": "join", "room": room} | ({"since": since} if since else {})
        )
        while True:
            got = await receive_json(self.ws)
            if got["type"] in ("joined", "error"):
                return got
            self.live.see(got)

    async def read_until(self, last_id: str) -> None:
        """Fold frames until the one with `last_id` has been seen."""
        while not any(f.get("id") == last_id for f in self.live.frames):
            self.live.see(await receive_json(self.ws))


async def client(url: str, who: Person, room: str | None = None, since: str | None = None):
    ws = await connect(url, subprotocols=["aurora.v1"])
    await send_json(ws, {"type": "auth", "token": who.token})
    assert (await receive_json(ws))["type"] == "ready"
    joined = Client(ws)
    if room is not None:
        assert (await joined.join(room, since))["type"] == "joined"
    return joined
