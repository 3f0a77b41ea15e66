"""What a session may use of its replica: one object, built by the server,
so one client's frames reach the hub, the send path and the checks, and
nothing of the server's lifecycle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aurora.budget import SendBudget
    from aurora.changes import Changer
    from aurora.receipts import Cursors
    from aurora.sending import Sender
    from aurora.settings import Settings
    from aurora.tokens import Claims
    from fanout.access import RoomAccess
    from fanout.connection_limit import ConnectionLimit
    from fanout.expiry import TokenExpiry
    from fanout.hub import Hub
    from fanout.metrics import Metrics
    from fanout.presence import Presence
    from fanout.revocation import RevocationWatch
    from fanout.upload_check import AttachmentCheck
    from fanout.users import Users


@dataclass(eq=False)
class Replica:
    id: str  # names this replica's connection leases
    settings: Settings
    metrics: Metrics
    hub: Hub  # rooms, joins, broadcasts
    sender: Sender  # the send script, typing
    changer: Changer  # edits, deletes, reactions
    cursors: Cursors  # delivered and read
    budget: SendBudget  # each user's sends across all rooms, taken before the room's script
    attachments: AttachmentCheck
    limit: ConnectionLimit  # the per-user connection cap
    users: Users  # this replica's authenticated connections, by user
    revocations: RevocationWatch  # closes a connection whose token is revoked
    expiry: TokenExpiry  # closes a connection whose token expires
    # The one token check of the fan-out (URL, subprotocol, `auth`, re-auth):
    # AuthenticationError when refused, another AuroraError when it cannot decide.
    authenticate: Callable[[object], Awaitable[Claims]]
    # Who may read which room (`aurora.membership`, cached): asked on join,
    # send and typing; takes refused members out of their rooms.
    access: RoomAccess
    # Who is online in which room: the snapshot a join writes after `joined`.
    presence: Presence
    # Redis work a connection leaves running when it closes (its last typing
    # `false`): the server lets it end before closing its Redis client, which
    # a command sent after would open again, with nothing left to close it.
    lingering: set[asyncio.Task] = field(default_factory=set)
