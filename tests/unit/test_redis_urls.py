"""REDIS_URL may name several seed nodes of a cluster; scripts and
transactions are batched so that on a cluster each stays in one hash slot."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot

from aurora.backends import redis_seeds, slot_batches


@pytest.mark.parametrize(
    ("url", "seeds"),
    [
        ("redis://127.0.0.1:6379/0", ["redis://127.0.0.1:6379/0"]),
        (
            "rediss://user:p%40ss@a.example:7000,b.example:7001,c.example/0?ssl_cert_reqs=required",
            [
                "rediss://user:p%40ss@a.example:7000/0?ssl_cert_reqs=required",
                "rediss://user:p%40ss@b.example:7001/0?ssl_cert_reqs=required",
                "rediss://user:p%40ss@c.example/0?ssl_cert_reqs=required",
            ],
        ),
        ("redis://a:1, b:2,/0", ["redis://a:1/0", "redis://b:2/0"]),
    ],
)
def test_each_seed_keeps_the_credentials_and_options(url, seeds):
    assert redis_seeds(url) == seeds


def test_on_a_single_redis_batches_are_runs_of_the_size():
    client = redis.Redis()  # never connects: only its type matters
    assert slot_batches(client, ["a", "b", "c", "d", "e"], 2) == [[0, 1], [2, 3], [4]]


def test_on_a_cluster_each_batch_is_within_one_slot_and_every_key_is_in_one():
    client = redis.RedisCluster.__new__(redis.RedisCluster)  # the type, unconnected
    keys = [f"aurora:conns:u{i}" for i in range(200)] + ["x{t}", "y{t}", "z{t}"]
    batches = slot_batches(client, keys, 2)
    assert sorted(i for batch in batches for i in batch) == list(range(len(keys)))
    for batch in batches:
        assert len(batch) <= 2
        assert len({key_slot(keys[i].encode()) for i in batch}) == 1
