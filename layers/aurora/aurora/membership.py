"""Who may be in a room: the one membership rule, asked before a WebSocket
`join` (the async face) and before REST reads a room's history, search or
recent activity (the sync face). Every room is open for now; private rooms
fill in these two functions and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aurora.tokens import Claims


def may_access(claims: Claims, room: str) -> bool:
    """Whether the caller may read `room` (REST functions)."""
    return True


async def may_access_async(claims: Claims, room: str) -> bool:
    """Whether the caller may join `room` (the fan-out's event loop)."""
    return may_access(claims, room)
