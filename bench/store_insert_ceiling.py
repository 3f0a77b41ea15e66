"""The embedded MongoDB-protocol server's own ceiling for the drain's writes:
`insert_many` of ready-made message documents, no Redis involved, with and
without a secondary index.

    python bench/store_insert_ceiling.py [--messages 20000] [--batch 500]

The drain cannot store faster than this; compare with bench/drain_throughput.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pymongo import MongoClient

from aurora import messages
from aurora.stream import StreamEntry
from local.servers import start_mongo

INDEXES = {
    "none": None,
    "room_time (room, ms, seq), as shipped": [("room", 1), ("ms", -1), ("seq", -1)],
    "one field": [("ms", 1)],
}


def documents(n: int) -> list[dict]:
    return [
        messages.document(
            StreamEntry(id=f"{1_700_000_000_000 + i}-0", room="general", user_id="u1",
                        username="alice", text="x" * 60)
        )
        for i in range(n)
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        server = start_mongo(Path(data))
        client = MongoClient(server.url)
        try:
            print(f"insert_many, batch {args.batch}, {args.messages} documents")
            for n, (name, spec) in enumerate(INDEXES.items()):
                collection = client.bench[f"c{n}"]
                if spec:
                    collection.create_index(spec)
                docs = documents(args.messages)
                started = time.perf_counter()
                for i in range(0, len(docs), args.batch):
                    collection.insert_many(docs[i : i + args.batch], ordered=False)
                rate = len(docs) / (time.perf_counter() - started)
                print(f"  secondary index: {name:<40} {rate:>9,.0f} docs/s")
        finally:
            client.close()
            server.stop()


if __name__ == "__main__":
    main()
