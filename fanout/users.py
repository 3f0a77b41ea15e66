"""This replica's authenticated connections, by user: whom a notice naming a
user concerns (a revocation closes them; a change to the user's rooms is told
to them). Each session adds itself once authenticated and discards itself in
`finally`; a re-auth never changes the user (it is refused with 4003)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aurora.tokens import Claims


class UserConnection(Protocol):
    """An authenticated connection, as the notices' handlers see it."""

    @property
    def claims(self) -> Claims:
        """The token it holds now (a re-auth replaces it, for the same user)."""

    @property
    def is_open(self) -> bool: ...

    async def close(self, code: int, reason: str) -> None: ...

    def tell(self, frame: str) -> None:
        """Write a frame addressed to this user (dropped for an original-protocol client)."""


class Users:
    def __init__(self) -> None:
        # A list per user, not a set: a few each (the connection cap), and 64
        # bytes where a set takes 216.
        self._by_user: dict[str, list[UserConnection]] = {}

    def tables(self) -> list[dict]:
        """What grows with the connections (`memory.compact`)."""
        return [self._by_user]

    def add(self, connection: UserConnection) -> None:
        group = self._by_user.setdefault(connection.claims.user_id, [])
        if connection not in group:
            group.append(connection)

    def discard(self, connection: UserConnection) -> None:
        user_id = connection.claims.user_id
        group = self._by_user.get(user_id)
        if group is not None and connection in group:
            group.remove(connection)
            if not group:
                del self._by_user[user_id]

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._by_user

    def of(self, user_id: str) -> tuple[UserConnection, ...]:
        return tuple(self._by_user.get(user_id, ()))

    def __iter__(self) -> Iterator[UserConnection]:
        return (each for group in list(self._by_user.values()) for each in group)
