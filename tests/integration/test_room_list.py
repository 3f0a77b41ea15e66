"""`GET /api/rooms`' order on real Redis and SecantusDB: newest activity
first whether a room's key is copied into its memberships or read from a big
room, key-paged so that rooms moving while someone pages are never listed
twice and the others are each listed once; deleted and left rooms never
listed; stored memberships migrated to the new shape list the same. Each
both from the user's cached list of rooms and from their memberships (what
a listing reads without Redis); every change to the list drops the cache."""

from __future__ import annotations

import asyncio

import pytest

from aurora import membership, migrations, room_admin, room_list, rooms, users
from aurora.backends import async_redis_client, database, layout, redis_client
from aurora.drain import Drain, ensure_group, partitions_of
from aurora.keyspace import my_rooms_key, room_last_key, room_members_key, rooms_floor_key
from aurora.settings import Settings
from aurora.stream import StreamEntry
from aurora.tokens import Claims
from tests.conftest import on_single_and_cluster

USER = Claims("u-reader", "reader", issued_at=0, expires_at=2**40, token_id="t")
BIG = 3  # rooms of more members than this are read when listed, not copied


def emptied(settings: Settings):
    db, cache = database(settings), redis_client(settings.redis_url)
    for name in (rooms.COLLECTION, rooms.MEMBERSHIPS):
        db[name].delete_many({})
    cache.delete(
        rooms_floor_key(USER.user_id),
        my_rooms_key(USER.user_id),
        *cache.scan_iter("aurora:roomcopied:*"),
        *cache.scan_iter("aurora:roomlast:*"),
    )
    return db, cache


@pytest.fixture(params=["cached list", "memberships"])
def stores(request, settings: Settings, monkeypatch):
    if request.param == "memberships":
        monkeypatch.setattr(room_list, "my_rooms", lambda *args: None)
    return emptied(settings)


@pytest.fixture
def memberships_read(settings: Settings, monkeypatch):
    """The listing as it reads without the cached list (no Redis for it)."""
    monkeypatch.setattr(room_list, "my_rooms", lambda *args: None)
    return emptied(settings)


def changed(cache) -> None:
    """What every writer of memberships does after MongoDB's write (the
    tests here write them directly)."""
    room_list.lists_changed(cache, [USER.user_id])


def member_of(db, cache, names: list[str], *, big: tuple[str, ...] = (), stored_before=False):
    """The user a member of each room, as an invitation leaves it (no key
    yet), or stored before memberships had the field; the rooms in `big` have
    more than BIG members in the mirror."""
    fresh = {} if stored_before else {"activity": room_list.UNCOPIED}
    db[rooms.COLLECTION].insert_many(
        [{"_id": r, "visibility": "private", "title": r, "deleted": False,
          "last": rooms.NO_ACTIVITY, "last_ts": 0} for r in names]
    )  # fmt: skip
    db[rooms.MEMBERSHIPS].insert_many(
        [{"room": r, "user_id": USER.user_id, "username": USER.username,
          "role": "admin" if r.endswith("0") else "member"} | fresh for r in names]
    )  # fmt: skip
    for room in names:
        others = BIG + 1 if room in big else 1
        cache.hset(room_members_key(room), mapping={f"m{i}": "member" for i in range(others)})
    changed(cache)


def activity(db, cache, at: dict[str, int]) -> None:
    """What the drain does for a batch with a message at `ms` in each room."""
    stored = [{"room": room, "ms": ms, "seq": 0} for room, ms in at.items()]
    room_list.record_activity(db, cache, stored, max_members=BIG)


def listed(db, cache, limit: int, cursor: str | None = None) -> tuple[list[tuple], str | None]:
    page = room_admin.listing(db, USER, scope=None, cursor=cursor, limit=limit,
                              max_time_ms=5000, client=cache)  # fmt: skip
    return [(r["room"], r["role"], r["last_ts"]) for r in page["rooms"]], page["next_cursor"]


def everything(db, cache, limit: int) -> list[tuple]:
    rows, cursor = listed(db, cache, limit)
    while cursor:
        more, cursor = listed(db, cache, limit, cursor)
        rows += more
    return rows


def test_pages_are_newest_first_and_rooms_moving_meanwhile_are_never_listed_twice(stores):
    db, cache = stores
    names = [f"r{i}" for i in range(10)]
    member_of(db, cache, names, big=("r3", "r8"))
    activity(db, cache, {room: 1000 + 10 * i for i, room in enumerate(names)})
    newest_first = [(f"r{i}", "admin" if i == 0 else "member", 1000 + 10 * i)
                    for i in reversed(range(10))]  # fmt: skip
    assert everything(db, cache, limit=3) == newest_first
    # Big rooms' memberships are not written per batch: they hold no key.
    held = {m["room"]: m.get("activity") for m in db[rooms.MEMBERSHIPS].find()}
    assert [room for room, key in held.items() if not key] == ["r3", "r8"]
    # Copied (r5) and big (r8) rooms alike keep the newest key whatever order
    # batches arrive in.
    activity(db, cache, {"r5": 1001, "r8": 1002})
    assert everything(db, cache, limit=4) == newest_first
    # A room that grows past the bound stops being copied: read from then on.
    cache.hset(room_members_key("r5"), mapping={f"n{i}": "member" for i in range(BIG)})
    activity(db, cache, {"r5": 1050})
    assert db[rooms.MEMBERSHIPS].find_one({"room": "r5"})["activity"] is None
    assert everything(db, cache, limit=4) == newest_first

    # While the user pages: an unseen room (r1, big r3) and a seen one (r8)
    # move to the top (r1's copy lags: its room's `last` places it).
    first, cursor = listed(db, cache, limit=3)
    assert [r[0] for r in first] == ["r9", "r8", "r7"]
    activity(db, cache, {"r1": 5000, "r3": 5001, "r8": 5002})
    seen = [r[0] for r in first]
    while cursor:
        page, cursor = listed(db, cache, 3, cursor)
        assert [r[2] for r in page] == sorted((r[2] for r in page), reverse=True)
        seen += [r[0] for r in page]
    assert len(seen) == len(set(seen))
    assert set(seen) >= set(names) - {"r1", "r3"}  # every room that stayed put, once
    assert [r[0] for r in everything(db, cache, limit=3)][:3] == ["r8", "r3", "r1"]


def test_copies_lag_their_rooms_by_less_than_the_bound_and_pages_stay_exact(stores):
    db, cache = stores
    member_of(db, cache, ["p0", "p1", "p2", "p3"])
    activity(db, cache, {"p0": 350, "p1": 200, "p2": 300, "p3": 100})

    def copy(room: str) -> str:
        return db[rooms.MEMBERSHIPS].find_one({"room": room})["activity"]

    # p0's next message is within the bound: its copy is not rewritten, yet
    # it lists first, and pages of one cut by real activity repeat nothing.
    activity(db, cache, {"p0": 4000})
    assert copy("p0") == room_list.activity_of(rooms.activity_key(350, 0), "p0")
    assert [r[0] for r in everything(db, cache, limit=1)] == ["p0", "p2", "p1", "p3"]
    activity(db, cache, {"p0": 351 + room_list.COPY_LAG_MS})
    assert copy("p0") == room_list.activity_of(rooms.activity_key(5351, 0), "p0")


@on_single_and_cluster
def test_rooms_active_at_once_are_ordered_by_their_mirror_and_only_the_page_is_read(
    stores, monkeypatch
):
    db, cache = stores
    names = [f"b{i}" for i in range(12)]
    member_of(db, cache, names, big=("b4",))
    # Batches out of order: the mirror of each room's `last` keeps the newest.
    activity(db, cache, {room: 3000 + i for i, room in enumerate(names)})
    activity(db, cache, {"b2": 1000, "b9": 2000})
    assert cache.get(room_last_key("b9")) == rooms.activity_key(3009, 0)
    # All within the copy lag of each other: every copy near the page's edge
    # is placed by its mirror, and only the page's rooms (and the next one)
    # are read from MongoDB.
    read = []
    by_ids = rooms.by_ids
    monkeypatch.setattr(rooms, "by_ids", lambda db, ids, *a, **k: read.extend(ids)
                        or by_ids(db, ids, *a, **k))  # fmt: skip
    assert [r[0] for r in listed(db, cache, 3)[0]] == ["b11", "b10", "b9"]
    assert sorted(read) == ["b10", "b11", "b8", "b9"]
    assert [r[0] for r in everything(db, cache, 5)] == list(reversed(names))


@on_single_and_cluster
def test_a_lost_or_older_mirror_is_read_from_the_room_and_never_misplaces_it(stores):
    db, cache = stores
    names = [f"c{i}" for i in range(6)]
    member_of(db, cache, names)
    activity(db, cache, {room: 100 + i for i, room in enumerate(names)})
    newest_first = everything(db, cache, 2)
    # Redis lost every mirror, or came back with an older one: the rooms'
    # documents place them, and refill the mirrors.
    cache.delete(*(room_last_key(room) for room in names))
    cache.set(room_last_key("c5"), rooms.activity_key(1, 0))
    cache.set(room_last_key("c4"), "not a key")
    assert everything(db, cache, 2) == newest_first
    assert [cache.get(room_last_key(r)) for r in names] == [
        rooms.activity_key(100 + i, 0) for i in range(6)
    ]
    # A drain between its two writes (the mirror raised, not yet the room):
    # the room is shown as it is placed.
    cache.set(room_last_key("c0"), rooms.activity_key(900, 0))
    assert listed(db, cache, 1)[0] == [("c0", "admin", 900)]


def test_deleted_and_left_rooms_are_never_listed(stores):
    db, cache = stores
    member_of(db, cache, ["a0", "a1", "a2", "a3"], big=("a2",))
    activity(db, cache, {"a0": 10, "a1": 20, "a2": 30, "a3": 40})
    # A deletion caught between its two writes, a big room and a copied one left.
    db[rooms.COLLECTION].update_one({"_id": "a1"}, {"$set": {"deleted": True}})
    db[rooms.MEMBERSHIPS].delete_many({"room": {"$in": ["a2", "a3"]}})
    changed(cache)
    assert everything(db, cache, limit=1) == [("a0", "admin", 10)]


def test_the_first_page_hint_never_hides_a_room(memberships_read, monkeypatch):
    db, cache = memberships_read
    monkeypatch.setattr(room_list, "FLOOR_DEPTH", 2)
    names = [f"h{i}" for i in range(8)]
    member_of(db, cache, names)
    activity(db, cache, {room: 100 + i for i, room in enumerate(names)})
    assert [r[0] for r in listed(db, cache, 2)[0]] == ["h7", "h6"]
    assert cache.get(rooms_floor_key(USER.user_id)).endswith("~h5")
    # A room from below the hint moves up; then the top three are left: the
    # hint holds fewer than a page, and the read goes on without it.
    activity(db, cache, {"h0": 900})
    assert [r[0] for r in listed(db, cache, 2)[0]] == ["h0", "h7"]
    db[rooms.MEMBERSHIPS].delete_many({"room": {"$in": ["h0", "h7", "h6"]}})
    assert [r[0] for r in listed(db, cache, 2)[0]] == ["h5", "h4"]
    assert [r[0] for r in everything(db, cache, 2)] == ["h5", "h4", "h3", "h2", "h1"]


def test_stored_memberships_get_their_rooms_activity_and_list_the_same(stores):
    db, cache = stores
    names = [f"m{i}" for i in range(6)]
    member_of(db, cache, names, stored_before=True)
    # Rooms with messages, memberships of the shape before (no `activity`),
    # one room bigger than the copy bound, one with no message yet.
    rooms.record_activity(db, [{"room": r, "ms": 50 + i, "seq": 0} for i, r in enumerate(names)
                               if r != "m4"])  # fmt: skip
    db[rooms.MEMBERSHIPS].insert_many(
        [{"room": "m2", "user_id": f"x{i}", "role": "member"} for i in range(BIG)]
    )
    before = everything(db, cache, limit=2)  # read through the rooms
    assert [r[0] for r in before] == ["m5", "m3", "m2", "m1", "m0", "m4"]

    for _ in range(2):  # idempotent
        assert migrations.copy_room_activity(db, max_members=BIG) == 5
        shape = {m["room"]: m.get("activity")
                 for m in db[rooms.MEMBERSHIPS].find({"user_id": USER.user_id})}  # fmt: skip
        assert shape["m2"] is None and shape["m4"] == f"{rooms.NO_ACTIVITY}~m4"
        assert shape["m5"] == f"{rooms.activity_key(55, 0)}~m5"
        assert everything(db, cache, limit=2) == before


# -- the cached list of rooms ------------------------------------------------------


def names_of(db, cache, claims: Claims) -> list[tuple[str, str]]:
    page = room_admin.listing(db, claims, scope=None, cursor=None, limit=50,
                              max_time_ms=5000, client=cache)  # fmt: skip
    return sorted((r["room"], r["role"]) for r in page["rooms"])


def test_every_change_to_a_users_rooms_drops_their_cached_list(settings, app_env):
    """Through the real writers (REST's and the drain's joins pass): after
    each, the lister's cached list is gone, and the next listing shows it."""
    db, cache = emptied(settings)
    ana_id = users.create_user(db, "ana", "-")
    ben_id = users.create_user(db, "ben", "-")
    ana = Claims(ana_id, "ana", issued_at=0, expires_at=2**40, token_id="a")
    ben = Claims(ben_id, "ben", issued_at=0, expires_at=2**40, token_id="b")
    cached = my_rooms_key(ben_id)

    def listed_after(change) -> list[tuple[str, str]]:
        assert names_of(db, cache, ben) is not None  # the list is cached
        assert cache.hget(cached, "rows") is not None
        change()
        assert cache.hget(cached, "rows") is None, "the change left the cached list"
        return names_of(db, cache, ben)

    private = room_admin.NewRoom(room="club", visibility="private")
    room_admin.create(db, cache, settings, ana, private)
    invite = room_admin.MemberChange(role="member")
    promote = room_admin.MemberChange(role="admin")
    assert listed_after(lambda: room_admin.put_member(db, cache, ana, "club", "ben", invite)) == [
        ("club", "member")]  # fmt: skip
    assert listed_after(lambda: room_admin.put_member(db, cache, ana, "club", "ben", promote)) == [
        ("club", "admin")]  # fmt: skip
    assert listed_after(lambda: room_admin.remove_member(db, cache, ana, "club", "ben")) == []
    room_admin.put_member(db, cache, ana, "club", "ben", invite)
    assert listed_after(lambda: room_admin.ban(db, cache, ana, "club", "ben")) == []

    dm = room_admin.NewDirect(username="ana")
    direct = rooms.direct_room(ana_id, ben_id)
    assert listed_after(lambda: room_admin.open_direct(db, cache, ben, dm)) == [
        (direct, "member")]  # fmt: skip
    den = room_admin.NewRoom(room="den", visibility="private")
    assert listed_after(lambda: room_admin.create(db, cache, settings, ben, den)) == [
        ("den", "owner"), (direct, "member")]  # fmt: skip
    assert listed_after(lambda: room_admin.delete(db, cache, ben, "den")) == [(direct, "member")]

    def joined_and_drained() -> None:
        async def join() -> None:
            client = async_redis_client(settings.redis_url)
            assert await membership.record_join_async(client, "lobby", ben_id, "ben")
            await client.aclose()

        asyncio.run(join())
        ensure_group(cache)
        drain = Drain(cache, db, consumer="joins", block_ms=10,
                      partitions=partitions_of(layout(settings)))  # fmt: skip
        drain.run(lambda: True, exit_when_idle=True)

    assert listed_after(joined_and_drained) == [(direct, "member"), ("lobby", "member")]


class Rows(list):
    def max_time_ms(self, _ms: int) -> Rows:
        return self


class ChangedWhileRead:
    """A database whose memberships read is followed, before the reader
    goes on, by the user leaving `room` (as another request would)."""

    def __init__(self, db, cache, room: str) -> None:
        self.db, self.cache, self.room = db, cache, room

    def __getitem__(self, name: str):
        collection, outer = self.db[name], self

        class Collection:
            def find(self, *args, **kwargs):
                rows = Rows(collection.find(*args, **kwargs))
                outer.db[rooms.MEMBERSHIPS].delete_one({"room": outer.room,
                                                        "user_id": USER.user_id})  # fmt: skip
                changed(outer.cache)
                return rows

        return Collection()


def test_a_change_during_the_read_that_fills_the_cache_is_never_kept(settings):
    """The version is read before the memberships: a change landing between
    that read and the cache's write leaves no cache, never a stale one."""
    db, cache = emptied(settings)
    member_of(db, cache, ["k0", "k1"])
    seen = room_list.my_rooms(ChangedWhileRead(db, cache, "k1"), cache, USER.user_id, 5000)
    assert sorted(row[0] for row in seen) == ["k0", "k1"]  # what that request read
    assert cache.hget(my_rooms_key(USER.user_id), "rows") is None
    activity(db, cache, {"k0": 10, "k1": 20})
    assert [r[0] for r in listed(db, cache, 5)[0]] == ["k0"]


def test_a_user_in_more_rooms_than_the_cache_holds_is_listed_from_memberships(
    settings, monkeypatch
):
    """Past MAX_LISTED the list is not cached, and that is remembered: the
    next listings read the memberships at once, with the same answer."""
    db, cache = emptied(settings)
    monkeypatch.setattr(room_list, "MAX_LISTED", 3)
    member_of(db, cache, ["o0", "o1", "o2", "o3"])
    activity(db, cache, {"o0": 10, "o1": 20, "o2": 30, "o3": 40})
    first = everything(db, cache, limit=2)
    assert cache.hget(my_rooms_key(USER.user_id), "rows") == "null"
    assert everything(db, cache, limit=2) == first
    assert [r[0] for r in first] == ["o3", "o2", "o1", "o0"]


def test_a_join_queued_during_a_drain_pass_is_stored_before_its_senders_message(settings):
    """A sender's join is queued before its message. One that lands while a
    pass is under way (after the pass began, before it read the message) is
    stored no later than the message: once the message is in history, the
    room is in the sender's listing."""
    db, cache = emptied(settings)
    ana_id = users.create_user(db, "ana", "-")
    ana = Claims(ana_id, "ana", issued_at=0, expires_at=2**40, token_id="t")
    lay = layout(settings)
    ensure_group(cache)
    drain = Drain(cache, db, consumer="joins", block_ms=10, partitions=partitions_of(lay))
    read, store_round, listed_when_stored = drain._read, drain._store_round, []

    def joined_and_sent_meanwhile(part, *, block_ms):
        if not listed_when_stored and cache.hget(room_members_key("porch"), ana_id) is None:

            async def join() -> None:
                client = async_redis_client(settings.redis_url)
                try:
                    assert await membership.record_join_async(client, "porch", ana_id, "ana")
                finally:
                    await client.aclose()

            asyncio.run(join())
            entry = StreamEntry(id="0-0", room="porch", user_id=ana_id, username="ana", text="hi")
            cache.xadd(lay.room_stream_key("porch"), entry.fields())
        return read(part, block_ms=block_ms)

    def storing(work) -> None:  # the messages' write
        listed_when_stored.append(names_of(db, cache, ana))
        store_round(work)

    drain._read, drain._store_round = joined_and_sent_meanwhile, storing
    drain.run(lambda: True, exit_when_idle=True)
    assert listed_when_stored == [[("porch", "member")]]
