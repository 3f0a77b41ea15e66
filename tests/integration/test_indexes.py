"""Indexes exist, are created idempotently, and once per process, not per call."""

from __future__ import annotations

from aurora import messages, users
from aurora.backends import database
from aurora.settings import Settings


def test_history_and_username_indexes_exist_after_the_first_connection(settings: Settings):
    db = database(settings)
    history = db[messages.COLLECTION].index_information()["room_time"]
    assert history["key"] == [("room", 1), ("ms", -1), ("seq", -1)]
    # One user per (normalised) username: a unique index, whatever its name.
    unique = [i["key"] for i in db["users"].index_information().values() if i.get("unique")]
    assert any("username" in field for key in unique for field, _ in key)


def test_creating_the_indexes_again_is_harmless(settings: Settings):
    db = database(settings)
    messages.ensure_indexes(db)
    users.ensure_indexes(db)
    assert "room_time" in db[messages.COLLECTION].index_information()


def test_indexes_are_ensured_once_per_process_not_on_every_call(settings: Settings, monkeypatch):
    calls: list[str] = []
    real = messages.ensure_indexes
    monkeypatch.setattr(messages, "ensure_indexes", lambda db: calls.append(db.name) or real(db))
    for _ in range(3):
        database(settings)
    assert calls == [settings.mongo_db]
