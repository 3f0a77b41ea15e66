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
    "budget_key": (keyspace.budget_key("u1"), "aurora:budget:{u1}"),
    "reads_key": (keyspace.reads_key("u1"), "aurora:reads:{u1}"),
    "storage_key": (keyspace.storage_key("u1"), "aurora:storage:{u1}"),
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
    "reactions_key": (keyspace.reactions_key("dev", "1-0"), "aurora:reactions:{dev}:1-0"),
    "reaction_counts_key": (
        keyspace.reaction_counts_key("dev", "1-0"),
        "aurora:reactions:{dev}:counts:1-0",
    ),
    "room_counter_key": (keyspace.room_counter_key("dev"), "aurora:count:{dev}"),
    "own_messages_key": (keyspace.own_messages_key("dev", "u1"), "aurora:own:{dev}:u1"),
    "deleted_numbers_key": (keyspace.deleted_numbers_key("dev"), "aurora:deletedn:{dev}"),
    "cursors_key": (keyspace.cursors_key("dev", "read"), "aurora:read:{dev}"),
    "tombstones_key": (keyspace.tombstones_key("dev"), "aurora:tombstones:{dev}"),
    "change_rate_key": (keyspace.change_rate_key("dev", "u1"), "aurora:changerate:{dev}:u1"),
    "attachment_withdrawn_key": (
        keyspace.attachment_withdrawn_key("d5"),
        "aurora:attachment:d5:withdrawn",
    ),
    "blocks_key": (keyspace.blocks_key("u1"), "aurora:blocks:{u1}"),
    "room_lock_key": (keyspace.room_lock_key("dev"), "aurora:lock:{dev}"),
    "rooms_floor_key": (keyspace.rooms_floor_key("u1"), "aurora:roomsfloor:{u1}"),
    "my_rooms_key": (keyspace.my_rooms_key("u1"), "aurora:myrooms:{u1}"),
    "room_copied_key": (keyspace.room_copied_key("dev"), "aurora:roomcopied:{dev}"),
    "room_last_key": (keyspace.room_last_key("dev"), "aurora:roomlast:{dev}"),
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
    assert public - {"room_of_channel", "dataclass", "lru_cache"} == set(PINNED)


def test_a_room_channel_names_its_room():
    assert keyspace.room_of_channel(keyspace.room_channel("a:b.c")) == "a:b.c"


def test_a_rooms_mirror_keys_share_one_cluster_slot():
    """Hash-tagged by room: the membership check is one round trip on one node."""
    tags = {key.split("{")[1].split("}")[0] for key in (
        keyspace.room_info_key("a:b"), keyspace.room_members_key("a:b"),
        keyspace.room_bans_key("a:b"), keyspace.presence_key("a:b"),
        keyspace.presence_holders_key("a:b", "u1"))}  # fmt: skip
    assert tags == {"a:b"}


# -- the cluster layout: names are stored data there too ------------------------

CLUSTER = keyspace.Layout(cluster=True, partitions=12)
PINNED_CLUSTER = {
    "stream_key": (CLUSTER.stream_key(0), "aurora:messages:{m0.54}"),
    "dead_letter_key": (CLUSTER.dead_letter_key(11), "aurora:messages:dead:{m11.43}"),
    "partition_of": (CLUSTER.partition_of("dev"), 9),
    "window_key": (CLUSTER.window_key("dev"), "aurora:window:{m9.47}:dev"),
    "rate_key": (CLUSTER.rate_key("dev", "u1"), "aurora:rate:{m9.47}:dev:u1"),
    "idempotency_key": (
        CLUSTER.idempotency_key("dev", "u1", "c-9"),
        "aurora:idem:{m9.47}:dev:u1:c-9",
    ),
    "room_channel": (CLUSTER.room_channel("dev"), "aurora:room:{m9.47}:dev"),
    # Partitions on a single Redis: only the streams are renamed.
    "single_partitioned_stream": (
        keyspace.Layout(partitions=4).stream_key(1),
        "aurora:messages:{m1}",
    ),
    "single_partitioned_window": (
        keyspace.Layout(partitions=4).window_key("dev"),
        "aurora:window:dev",
    ),
}


@pytest.mark.parametrize("name", sorted(PINNED_CLUSTER))
def test_each_cluster_name_is_unchanged(name):
    built, stored = PINNED_CLUSTER[name]
    assert built == stored


def test_the_single_layout_keeps_the_original_names():
    single = keyspace.SINGLE
    assert single.stream_keys() == [keyspace.STREAM_KEY]
    assert single.dead_letter_key(0) == keyspace.DEAD_LETTER_KEY
    assert single.window_key("dev") == keyspace.window_key("dev")
    assert single.rate_key("dev", "u1") == keyspace.rate_key("dev", "u1")
    assert single.idempotency_key("dev", "u1", "c") == keyspace.idempotency_key("u1", "c")
    assert single.room_channel("dev") == keyspace.room_channel("dev")


@pytest.mark.parametrize("partitions", [1, 3, 12, 16, 256])
def test_every_key_of_a_room_is_in_its_partition_slot(partitions):
    """So the send script (rate, idempotency, stream, window, channel) runs on one node."""
    from redis.crc import key_slot

    layout = keyspace.Layout(cluster=True, partitions=partitions)
    for room in ("dev", "a:b.c", "dm:" + "f" * 40, "x" * 64):
        slots = {
            key_slot(name.encode())
            for name in (
                layout.room_stream_key(room),
                layout.dead_letter_key(layout.partition_of(room)),
                layout.window_key(room),
                layout.rate_key(room, "u1"),
                layout.idempotency_key(room, "u1", "c"),
                layout.room_channel(room),
                # and what the change and read scripts touch
                layout.tombstones_key(room),
                layout.reactions_key(room, "1-0"),
                layout.reaction_counts_key(room, "1-0"),
                layout.room_counter_key(room),
                layout.own_messages_key(room, "u1"),
                layout.deleted_numbers_key(room),
                layout.cursors_key(room, "read"),
                layout.change_rate_key(room, "u1"),
                # and the presence scripts, which publish on the room's channel
                layout.presence_key(room),
                layout.presence_holders_key(room, "u1"),
            )
        }
        assert len(slots) == 1
        assert layout.room_of_channel(layout.room_channel(room)) == room


@pytest.mark.parametrize("partitions", [3, 12, 48, 256])
def test_partitions_take_equal_shares_of_the_slot_space(partitions):
    """Partition i hashes into the i-th of P equal slot ranges, so P a multiple
    of the master count spreads partitions evenly over evenly split masters."""
    from redis.crc import key_slot

    for i in range(partitions):
        slot = key_slot(keyspace.Layout(cluster=True, partitions=partitions).stream_key(i).encode())
        assert i * 16384 // partitions <= slot < (i + 1) * 16384 // partitions
