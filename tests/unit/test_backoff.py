import pytest

from common import backoff


def test_ceiling_doubles_up_to_the_cap() -> None:
    assert [backoff.ceiling(a, 1.0, 60.0) for a in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff.ceiling(10_000, 1.0, 60.0) == 60.0  # no overflow after weeks offline


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert backoff.delay(3, 1.0, 60.0, 0.0) == 0.0
    assert backoff.delay(3, 1.0, 60.0, 0.5) == 4.0
    assert backoff.delay(3, 1.0, 60.0, 0.999) < 8.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        backoff.delay(0, 1.0, 60.0, 1.0)
    with pytest.raises(ValueError):
        backoff.ceiling(-1, 1.0, 60.0)
