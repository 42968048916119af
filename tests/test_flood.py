from __future__ import annotations

import pytest

from chatd.core.flood import TokenBucket


def test_a_burst_passes_then_lines_come_at_the_rate() -> None:
    bucket = TokenBucket(burst=3, rate=2.0, now=0.0)
    for _ in range(3):
        assert bucket.ready(0.0)
        bucket.take()
    assert not bucket.ready(0.0)
    assert bucket.wait() == pytest.approx(0.5)
    assert not bucket.ready(0.49)
    assert bucket.ready(0.5)
    bucket.take()
    assert not bucket.ready(0.5)


def test_tokens_never_pile_up_past_the_burst() -> None:
    bucket = TokenBucket(burst=2, rate=10.0, now=0.0)
    assert bucket.ready(1000.0) and bucket.allowance() == 2


def test_the_slowed_mark_lasts_until_the_bucket_is_full_again() -> None:
    bucket = TokenBucket(burst=2, rate=1.0, now=0.0)
    bucket.take()
    bucket.take()
    assert not bucket.ready(0.0)
    bucket.slowed = True
    assert bucket.ready(1.0)  # one token back: still the same flood
    assert bucket.slowed
    assert bucket.ready(2.0)  # full again: the next flood is told anew
    assert not bucket.slowed


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="burst >= 1 and rate > 0"):
        TokenBucket(burst=0, rate=1.0, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket(burst=1, rate=0.0, now=0.0)
