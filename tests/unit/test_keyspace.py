"""Every Redis key and channel name stays byte for byte what stored data and
running replicas already use."""

from __future__ import annotations

import inspect

import pytest

from aurora import keyspace

PINNED = {
    "STREAM_KEY": (keyspace.STREAM_KEY, "aurora:messages"),
    "DEAD_LETTER_KEY": (keyspace.DEAD_LETTER_KEY, "aurora:messages:dead"),
    "REVOCATIONS_CHANNEL": (keyspace.REVOCATIONS_CHANNEL, "aurora:revocations"),
    "room_channel": (keyspace.room_channel("dev"), "aurora:room:dev"),
    "window_key": (keyspace.window_key("dev"), "aurora:window:dev"),
    "rate_key": (keyspace.rate_key("dev", "u1"), "aurora:rate:dev:u1"),
    "idempotency_key": (keyspace.idempotency_key("u1", "c-9"), "aurora:idem:u1:c-9"),
    "connections_key": (keyspace.connections_key("u1"), "aurora:conns:u1"),
    "session_key": (keyspace.session_key("ab12"), "aurora:session:ab12"),
    "user_sessions_key": (keyspace.user_sessions_key("u1"), "aurora:user:u1:sessions"),
    "revoked_key": (keyspace.revoked_key("j1"), "aurora:revoked:j1"),
    "login_failures_key": (keyspace.login_failures_key("d1"), "aurora:throttle:login:d1"),
    "network_login_failures_key": (
        keyspace.network_login_failures_key("d2"),
        "aurora:throttle:login-ip:d2",
    ),
    "registrations_key": (keyspace.registrations_key("d3"), "aurora:throttle:register:d3"),
    "room_info_key": (keyspace.room_info_key("dev"), "aurora:roominfo:{dev}"),
    "room_members_key": (keyspace.room_members_key("dev"), "aurora:members:{dev}"),
    "room_bans_key": (keyspace.room_bans_key("dev"), "aurora:bans:{dev}"),
    "MEMBERSHIP_CHANNEL": (keyspace.MEMBERSHIP_CHANNEL, "aurora:membership"),
    "JOINS_STREAM_KEY": (keyspace.JOINS_STREAM_KEY, "aurora:joins"),
    "attachment_rooms_key": (
        keyspace.attachment_rooms_key("d4"),
        "aurora:attachment:d4:rooms",
    ),
    "room_creations_key": (keyspace.room_creations_key("u1"), "aurora:throttle:rooms:u1"),
    "blocks_key": (keyspace.blocks_key("u1"), "aurora:blocks:{u1}"),
    "room_lock_key": (keyspace.room_lock_key("dev"), "aurora:lock:{dev}"),
    "presence_key": (keyspace.presence_key("dev"), "aurora:presence:{dev}"),
    "presence_holders_key": (
        keyspace.presence_holders_key("dev", "u1"),
        "aurora:presence:{dev}:u1",
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_each_name_is_unchanged(name):
    built, stored = PINNED[name]
    assert built == stored


def test_every_public_name_of_the_keyspace_is_pinned():
    """A new key or channel gets its pin here when it is added."""
    public = {
        name
        for name, value in vars(keyspace).items()
        if not name.startswith("_") and (isinstance(value, str) or inspect.isfunction(value))
    }
    assert public - {"room_of_channel"} == set(PINNED)


def test_a_room_channel_names_its_room():
    assert keyspace.room_of_channel(keyspace.room_channel("a:b.c")) == "a:b.c"


def test_a_rooms_mirror_keys_share_one_cluster_slot():
    """Hash-tagged by room: the membership check is one round trip on one node."""
    tags = {key.split("{")[1].split("}")[0] for key in (
        keyspace.room_info_key("a:b"), keyspace.room_members_key("a:b"),
        keyspace.room_bans_key("a:b"), keyspace.presence_key("a:b"),
        keyspace.presence_holders_key("a:b", "u1"))}  # fmt: skip
    assert tags == {"a:b"}
