"""Dead letters can be listed, inspected and replayed, and replay is idempotent."""

from __future__ import annotations

import json

import pytest

from aurora import deadletters, messages
from aurora.backends import database
from aurora.drain import Drain, ensure_group, partitions_of
from aurora.settings import Settings
from aurora.stream import GROUP, StreamEntry
from scripts import deadletters as deadletters_cli
from tests.conftest import on_single_and_cluster
from tests.support import run_script


@pytest.fixture
def letters(r, settings: Settings, redis_layout) -> dict[str, str]:
    """Two dead letters: a valid message that wore out its deliveries, and a
    malformed entry. Returns {code: dead-letter id as the CLI names it}."""
    stream = redis_layout.room_stream_key("general")
    partition = redis_layout.partition_of("general")
    ensure_group(r, redis_layout.stream_keys())
    entry = StreamEntry(id="0-0", room="general", user_id="u1", username="alice", text="héllo")
    worn = r.xadd(stream, entry.fields())
    r.xreadgroup(GROUP, "died-1", {stream: ">"})
    r.xclaim(stream, GROUP, "died-2", 0, [worn])
    r.xadd(stream, {"v": "1", "room": "general", "text": "<script>"})
    drain = Drain(
        r, database(settings), consumer="d", block_ms=10, claim_idle_ms=0, max_deliveries=1,
        partitions=partitions_of(redis_layout),
    )  # fmt: skip
    assert drain.run(lambda: True, exit_when_idle=True).dead_lettered == 2
    # With several partitions the CLI writes `<partition>/<id>`.
    prefix = "" if redis_layout.partitions == 1 else f"{partition}/"
    key = redis_layout.dead_letter_key(partition)
    return {d.code: prefix + d.id for d in deadletters.list_letters(r, key=key)}


def cli(settings: Settings, capsys, *argv: str) -> tuple[int, str, str]:
    status = deadletters_cli.main(list(argv), settings)
    out, err = capsys.readouterr()
    return status, out, err


@on_single_and_cluster
def test_list_shows_one_line_per_dead_letter_with_its_reason(settings, letters, capsys):
    status, out, err = cli(settings, capsys, "list")
    assert status == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(line[0], line[2]) for line in lines] == [
        (letters["too_many_deliveries"], "too_many_deliveries"),
        (letters["missing_fields"], "missing_fields"),
    ]
    assert "2 dead letter(s)" in err


@on_single_and_cluster
def test_show_prints_the_original_entry_as_json(settings, letters, capsys):
    status, out, _ = cli(settings, capsys, "show", letters["missing_fields"])
    shown = json.loads(out)
    assert status == 0
    assert shown["fields"] == {"v": "1", "room": "general", "text": "<script>"}
    assert shown["code"] == "missing_fields"


@on_single_and_cluster
def test_replay_stores_the_message_under_its_original_id_once(settings, letters, capsys):
    worn = letters["too_many_deliveries"]
    status, out, _ = cli(settings, capsys, "replay", worn)
    assert (status, out.split()) == (0, [worn, "stored"])
    doc = database(settings)[messages.COLLECTION].find_one({"room": "general"})
    assert doc["text"] == "héllo"
    # The dead letter is gone; replaying it again finds nothing, stores nothing.
    status, out, _ = cli(settings, capsys, "replay", worn)
    assert (status, out.split()) == (1, [worn, "not_found"])
    assert database(settings)[messages.COLLECTION].count_documents({}) == 1


def general_dead_letters(layout) -> str:
    """The dead-letter stream of room `general`'s partition."""
    return layout.dead_letter_key(layout.partition_of("general"))


def test_replaying_something_already_stored_counts_it_as_already_stored(
    settings, letters, r, redis_layout
):
    key = general_dead_letters(redis_layout)
    # The library takes the id within its stream; the CLI's label may prefix the partition.
    worn = deadletters.get_letter(r, letters["too_many_deliveries"].rpartition("/")[2], key=key)
    database(settings)[messages.COLLECTION].insert_one(
        messages.document(StreamEntry.from_redis(worn.source_id, worn.fields))
    )
    result = deadletters.replay(r, database(settings), worn.id, key=key)
    assert result.outcome == "already_stored"
    assert r.xlen(key) == 1  # only the malformed one is left


def test_an_entry_that_is_still_invalid_stays_dead_lettered(
    settings, letters, r, capsys, redis_layout
):
    status, out, _ = cli(settings, capsys, "replay", "--all")
    assert status == 1
    assert "invalid\tMissing fields: user_id, username" in out
    key = general_dead_letters(redis_layout)
    assert [d.code for d in deadletters.list_letters(r, key=key)] == ["missing_fields"]


@pytest.mark.parametrize("bad_id", ["nope", "1-2-3", "$(rm -rf /)", "-"])
def test_a_malformed_id_is_a_clear_error(settings, letters, capsys, bad_id):
    status, _, err = cli(settings, capsys, "show", bad_id)
    assert status == 2 and "invalid_id" in err


def test_replay_without_ids_is_refused(settings, capsys):
    with pytest.raises(SystemExit) as exit_info:
        deadletters_cli.main(["replay"], settings)
    assert exit_info.value.code == 2
    assert "--all" in capsys.readouterr().err


def test_the_cli_runs_as_a_module_with_the_environment_settings(app_env, letters):
    done = run_script("scripts/deadletters.py", "list")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2
