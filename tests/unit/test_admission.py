"""The replica's admission bucket: a burst, then the rate, never more."""

from __future__ import annotations

import time

from fanout.admission import Admission


def test_a_burst_is_admitted_then_the_rest_waits_for_the_rate():
    admission = Admission(rate=100, burst=10)
    assert sum(admission.admit() for _ in range(50)) == 10
    time.sleep(0.1)  # ~10 more tokens
    admitted = sum(admission.admit() for _ in range(50))
    assert 8 <= admitted <= 12


def test_idle_time_never_saves_more_than_a_burst():
    admission = Admission(rate=1000, burst=5)
    time.sleep(0.05)  # 50 tokens' worth of time
    assert sum(admission.admit() for _ in range(50)) == 5
