"""What one change to a stored message costs the database, by the shape of its
update: store N messages, write one change to each (in bulk writes of 90, a
far-back round's size), and count the database server's CPU seconds.

    .venv/bin/python bench/update_shapes.py [--messages 1800] [--repeat 5]

Shapes:
- `rev-in-filter`: `{_id, rev}` and `$set` (what the drain sent before);
- `rev-in-update`: `{_id}` and a pipeline that applies only if `rev` is
  still the one read (`message_state.if_rev`, what the drain sends);
- `no-condition`: `{_id}` and `$set`, the floor: unsafe, as two overlapping
  drain runs could undo each other's change.

Each shape runs `--repeat` times, taking turns; the table gives the least
CPU of its turns (a loaded machine only ever adds to it). Starts its own
SecantusDB (standalone) in a temporary folder and stops it by pid.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from pymongo import MongoClient, UpdateOne

from aurora import message_state, messages
from aurora.stream import StreamEntry
from local.servers import start_mongo

ROUND = 90  # changed messages in one far-back round of bench/drain_mixed.py


def change(i: int) -> dict[str, Any]:
    """One reaction, as the drain folds it into a message."""
    return {"reactions": [{"emoji": "👍", "users": ["u1"]}],
            "reaction_ids": {"u1 👍": f"{100_000 + i}-0"}, "rev": 1}  # fmt: skip


SHAPES = {
    "rev-in-filter": lambda key, i: UpdateOne({"_id": key, "rev": 0}, {"$set": change(i)}),
    "rev-in-update": lambda key, i: UpdateOne({"_id": key}, message_state.if_rev(0, change(i))),
    "no-condition": lambda key, i: UpdateOne({"_id": key}, {"$set": change(i)}),
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1800)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, {platform.machine()}, {platform.node()}")
    spent: dict[str, list[float]] = {name: [] for name in SHAPES}
    with tempfile.TemporaryDirectory() as tmp:
        server = start_mongo(Path(tmp) / "mongo")
        try:
            client = MongoClient(server.url)
            for turn in range(args.repeat):
                for name, shape in SHAPES.items():
                    db = client[f"shapes_{turn}"]
                    messages.ensure_indexes(db)
                    stored = db[messages.COLLECTION]
                    stored.insert_many(
                        messages.document(StreamEntry(f"{1000 + i}-0", "general", f"u{i % 50}",
                                                      "user", f"message {i}", n=i + 1))
                        for i in range(args.messages)
                    )  # fmt: skip
                    keys = [messages.stored_key("general", f"{1000 + i}-0")
                            for i in range(args.messages)]  # fmt: skip
                    before = cpu_seconds(server.pid)
                    modified = 0
                    for start in range(0, len(keys), ROUND):
                        writes = [shape(key, start + i)
                                  for i, key in enumerate(keys[start : start + ROUND])]  # fmt: skip
                        modified += stored.bulk_write(writes, ordered=False).modified_count
                    spent[name].append(cpu_seconds(server.pid) - before)
                    assert modified == args.messages, (name, modified)
                    client.drop_database(db.name)
        finally:
            server.stop()
    header = f"{'shape':>14} {'updates':>8} {'server CPU s (least)':>21} {'ms/update':>10}"
    print(f"{header} {'ratio':>6}")
    base = min(spent["rev-in-filter"])
    for name, seconds in spent.items():
        least = min(seconds)
        per = least / args.messages * 1000
        print(f"{name:>14} {args.messages:>8} {least:>21.2f} {per:>10.2f} {least / base:>6.2f}")


if __name__ == "__main__":
    main()
