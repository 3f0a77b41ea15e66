"""The list that stands in for websockets' per-connection deques behaves as
the deque operations the library uses."""

from __future__ import annotations

import collections

from fanout.connection import ShortQueue


def test_it_does_what_a_deque_does_for_each_operation_websockets_uses():
    short, deque = ShortQueue(), collections.deque()
    for queue in (short, deque):
        queue.append(1)
        queue.append(2)
        queue.extendleft(reversed([-1, 0]))  # how the library puts frames back
        queue.append(3)
        queue.remove(2)
    assert list(short) == list(deque) == [-1, 0, 1, 3]
    assert [short.popleft() for _ in range(4)] == [deque.popleft() for _ in range(4)]
    assert not short and len(short) == len(deque) == 0


def test_it_is_much_smaller_than_a_deque():
    import sys

    assert sys.getsizeof(ShortQueue()) * 4 < sys.getsizeof(collections.deque())
