"""Applying changes (edit, delete, react) to stored messages: the drain's half of
`aurora.changes`.

The rules, which make any replay, any order and any overlap of drain runs
converge on one document:
- A delete is final: `deleted`, `text` empty, attachments and reactions
  gone. Applying it again changes nothing.
- An edit applies only to a message that is not deleted, by its author,
  and only if its id is newer than the last edit applied (`edit_id`).
- A reaction (one user, one emoji, added or removed) applies only if its
  id is newer than the last one applied for that user and emoji
  (`reaction_ids`), so the newest word of each user on each emoji wins
  and adding twice counts once.
- A change whose message is not stored yet (its entry is still pending in
  another run, or dead-lettered) is parked in `message_changes` and applied
  when the message is stored; never lost, never applied twice.
- Every change to one message in a round folds into one update, addressed
  by `_id` and conditional on the document's `rev`, so two runs writing one
  message at once cannot undo each other: the loser reads it again. A run
  writes a message it already knows (`Known`) without reading it first.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aurora import messages
from aurora.stream import ChangeEntry, parse_id

if TYPE_CHECKING:
    from pymongo.collection import Collection
    from pymongo.database import Database

PARKED = "message_changes"
_RETRIES = 5
_READ_IDS = 25  # ids per read of the messages a run does not know
# What folding a change needs of a message (not its text: a change never reads it).
_STATE = {"user_id": 1, "deleted": 1, "edit_id": 1, "rev": 1, "reactions": 1,
          "reaction_ids": 1}  # fmt: skip


class ConcurrentWrites(RuntimeError):
    """Another run kept changing the document: the batch is retried later."""


def ensure_indexes(db: Database) -> None:
    db[PARKED].create_index([("target", 1)], name="by_target", background=True)


def fold(doc: dict[str, Any], changes: Iterable[ChangeEntry]) -> dict[str, Any]:
    """The fields to `$set` on `doc` after `changes` ({} when none changes it)."""
    update: dict[str, Any] = {}
    deleted, edit_id = bool(doc.get("deleted")), doc.get("edit_id")
    reactions = Reactions(doc)
    for change in sorted(changes, key=lambda c: parse_id(c.id)):
        if deleted:
            break
        if change.kind == "delete":
            deleted = True
            update |= {"deleted": True, "text": "", "attachments": [], "reactions": [],
                       "reaction_ids": {}, "deleted_by": change.user_id,
                       "deleted_at": _at(change)}  # fmt: skip
        elif change.kind == "react":
            reactions.apply(change)
        elif change.user_id == doc["user_id"] and (
            edit_id is None or parse_id(change.id) > parse_id(edit_id)
        ):
            edit_id = change.id
            update |= {"text": change.text, "edit_id": change.id, "edited_at": _at(change)}
    if not deleted and reactions.changed:
        update |= {"reactions": reactions.listed(), "reaction_ids": reactions.ids}
    return update


class Reactions:
    """A message's reactions while changes are folded into it: `reactions`
    [{emoji, users}] in order of first use, and `reaction_ids`
    {"<user id> <emoji>": last change id applied}."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.users = {r["emoji"]: list(r["users"]) for r in doc.get("reactions") or ()}
        self.ids: dict[str, str] = dict(doc.get("reaction_ids") or {})
        self.changed = False

    def apply(self, change: ChangeEntry) -> None:
        key = f"{change.user_id} {change.emoji}"
        last = self.ids.get(key)
        if last is not None and parse_id(change.id) <= parse_id(last):
            return
        self.ids[key] = change.id
        self.changed = True
        users = self.users.setdefault(change.emoji, [])
        if change.on and change.user_id not in users:
            users.append(change.user_id)
        elif not change.on and change.user_id in users:
            users.remove(change.user_id)

    def listed(self) -> list[dict[str, Any]]:
        return [{"emoji": e, "users": users} for e, users in self.users.items() if users]


def fold_into_new(
    docs: list[dict[str, Any]], changes: list[ChangeEntry]
) -> tuple[dict[str, list[ChangeEntry]], list[ChangeEntry]]:
    """Fold the changes whose message is among `docs` (about to be inserted)
    into those documents: no write of their own. Returns the changes folded,
    by message key (to apply again, with `apply`, to any message the insert
    finds already stored or refuses), and the others."""
    new = {doc["_id"]: doc for doc in docs}
    folded: dict[str, list[ChangeEntry]] = defaultdict(list)
    rest = []
    for change in changes:
        key = messages.stored_key(change.room, change.target)
        (folded[key] if key in new else rest).append(change)
    for key, batch in folded.items():
        new[key] |= fold(new[key], batch)
    return folded, rest


# A message with more reactions than this is not remembered by `Known`
# (each one is a user id in its state): at most ~20,000 x 200 of them.
KNOWN_MAX_REACTIONS = 200


class Known:
    """What one drain run knows of the messages it has stored, changed or
    read: their state (`_STATE`), least recently used first out, at most
    `limit` of them.

    A change to a known message is written without reading it first: the
    write is conditional on the known `rev`, so if anything else wrote the
    document since, it matches nothing and the message is read again. Most
    changes follow their message within seconds, so a run that stored a
    message usually knows it when its changes come."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._states: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, key: str) -> dict[str, Any] | None:
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
        return state

    def put(self, doc: dict[str, Any]) -> None:
        if len(doc.get("reaction_ids") or ()) > KNOWN_MAX_REACTIONS:
            self.forget([doc["_id"]])  # read again when changed: bounds the memory
            return
        self._states[doc["_id"]] = {name: doc.get(name) for name in ("_id", *_STATE)}
        self._states.move_to_end(doc["_id"])
        while len(self._states) > self.limit:
            self._states.popitem(last=False)

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._states.pop(key, None)

    def clear(self) -> None:
        """After a failed round: a write it made may be lost with the
        database's unjournaled tail, so nothing known is trusted."""
        self._states.clear()


def apply(
    db: Database,
    changes: list[ChangeEntry],
    stored: Iterable[str] = (),
    known: Known | None = None,
) -> tuple[int, int]:
    """Apply a round's changes, and the changes parked for the messages it
    has just stored (`stored`: their keys), with one read per 25 messages
    not `known` and one bulk write: every change to one message,
    parked or new, folds into one update. Returns (documents changed,
    changes parked)."""
    known = known if known is not None else Known(limit=0)
    by_target: dict[str, list[ChangeEntry]] = defaultdict(list)
    for change in changes:
        by_target[messages.stored_key(change.room, change.target)].append(change)
    unparked = _parked_for(db, stored)
    for row in unparked:
        by_target[row["target"]].append(ChangeEntry.from_redis(row["id"], row["fields"]))
    if not by_target:
        return 0, 0
    collection = db[messages.COLLECTION]
    docs = {key: state for key in by_target if (state := known.get(key)) is not None}
    docs |= _find(collection, [key for key in by_target if key not in docs])
    missing = [key for key in by_target if key not in docs]
    changed, vanished = _write_all(collection, docs, by_target, known)
    missing += vanished  # known, then gone from the database: kept like any missing message
    if missing:
        _park(db, [c for key in missing for c in by_target[key]])
    if unparked:
        # Only once their changes are written: a crash before this applies
        # them again, which changes nothing.
        db[PARKED].delete_many({"_id": {"$in": [row["_id"] for row in unparked
                                                if row["target"] not in missing]}})  # fmt: skip
    if missing:
        # The message may have been stored meanwhile, by a run that looked
        # for parked changes before these were parked: look once more.
        arrived = _find(collection, missing)
        if arrived:
            changed += apply(db, [], list(arrived), known)[0]
    return changed, sum(len(by_target[key]) for key in missing)


def apply_parked(db: Database, keys: list[str]) -> int:
    """Apply the parked changes of these (just stored) messages, then unpark
    them; the number of documents changed."""
    return apply(db, [], keys)[0]


def _parked_for(db: Database, keys: Iterable[str]) -> list[dict[str, Any]]:
    """The parked changes of these messages."""
    keys = list(keys)
    # Almost always none parked at all: one cheap look before a query by many keys.
    if not keys or db[PARKED].find_one({}, {"_id": 1}) is None:
        return []
    return list(db[PARKED].find({"target": {"$in": keys}}))


def _find(collection: Collection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The state of these messages (those stored), by `_id`, in reads of at
    most `_READ_IDS`: SecantusDB checks each document it finds against the
    whole `$in` list, so one read of n ids costs n²; 90 ids in 25s cost a
    third less than in one read (measured)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(keys), _READ_IDS):
        chunk = keys[start : start + _READ_IDS]
        found |= {doc["_id"]: doc for doc in collection.find({"_id": {"$in": chunk}}, _STATE)}
    return found


Write = tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]  # filter, update, state after


def _update(doc: dict[str, Any], changes: list[ChangeEntry]) -> Write | None:
    """The update that folds `changes` into `doc`: addressed by `_id`,
    conditional on `rev` (which it raises); None when nothing changes."""
    update = fold(doc, changes)
    if not update:
        return None
    rev = doc.get("rev")
    update["rev"] = (rev or 0) + 1
    return {"_id": doc["_id"]}, if_rev(rev, update), doc | update


def if_rev(rev: int | None, fields: dict[str, Any]) -> list[dict[str, Any]]:
    """An update that sets `fields` only if the document's `rev` is still
    `rev` (None: it has none), and otherwise leaves it as it is: the write
    counts as modified only if it applied.

    The condition sits in the update, not in the filter, so the filter is
    `_id` alone, which a store finds by its key without planning: SecantusDB
    plans a filter of `_id` and `rev` through every index of the
    collection first (16-21 % of an update, `bench/update_shapes.py`). Values go
    in as `$literal`: a text starting with "$" is a text, not a field."""
    current = {"$eq": [{"$type": "$rev"}, "missing"]} if rev is None else {"$eq": ["$rev", rev]}
    changed = {"$mergeObjects": ["$$ROOT", {"$literal": fields}]}
    return [{"$replaceWith": {"$cond": [current, changed, "$$ROOT"]}}]


def _write_all(
    collection: Collection,
    docs: dict[str, dict[str, Any]],
    by_target: dict[str, list[Any]],
    known: Known,
) -> tuple[int, list[str]]:
    """Write every document's folded changes in one round trip, each
    conditional on its `rev`; (documents changed, keys no longer in the
    database). If another run changed one meanwhile (or what was known of
    it is out of date), each is read and written again one by one: folding
    what is already applied changes nothing, so this converges."""
    from pymongo import UpdateOne

    writes = [found for key, doc in docs.items()
              if (found := _update(doc, by_target[key])) is not None]  # fmt: skip
    if not writes:
        return 0, []
    done = collection.bulk_write([UpdateOne(where, update) for where, update, _ in writes],
                                 ordered=False)  # fmt: skip
    # Each write raises `rev`, so it modifies its document exactly when its
    # condition held.
    if done.modified_count == len(writes):
        for _, _, after in writes:
            known.put(after)
        return len(writes), []
    known.forget(docs)
    fresh = _find(collection, list(docs))
    changed = sum(_write(collection, fresh[key], by_target[key], known) for key in fresh)
    return changed, [key for key in docs if key not in fresh]


def _write(
    collection: Collection, doc: dict[str, Any], changes: list[ChangeEntry], known: Known
) -> int:
    """Write the folded changes, conditional on `rev`; 1 if the document changed."""
    key = doc["_id"]
    for _ in range(_RETRIES):
        found = _update(doc, changes)
        if found is None:
            known.put(doc)
            return 0
        where, update, after = found
        if collection.update_one(where, update).modified_count:
            known.put(after)
            return 1
        doc = collection.find_one({"_id": key}, _STATE)
        if doc is None:
            raise ConcurrentWrites(f"message {key!r} vanished under this run")
    raise ConcurrentWrites(f"message {key!r} kept changing under this run")


def _park(db: Database, changes: list[ChangeEntry]) -> None:
    from pymongo.errors import BulkWriteError

    rows = [
        {"_id": messages.stored_key(c.room, c.id), "id": c.id,
         "target": messages.stored_key(c.room, c.target), "fields": c.fields()}
        for c in changes
    ]  # fmt: skip
    try:
        db[PARKED].insert_many(rows, ordered=False)
    except BulkWriteError as exc:  # parked before by a run that crashed: already there
        if any(e.get("code") != messages.DUPLICATE_KEY for e in exc.details["writeErrors"]):
            raise


def _at(change: ChangeEntry) -> datetime:
    return datetime.fromtimestamp(change.ts / 1000, tz=UTC)
