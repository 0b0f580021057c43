"""infra.auth_throttle: failed authentications per client address, on an injected clock."""

from __future__ import annotations

import pytest

from infra.auth_throttle import FailureThrottle, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_refused_after_the_limit_of_failures_within_the_window() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=20, window_s=60, clock=clock)
    for _ in range(20):
        assert throttle.retry_after("203.0.113.7") is None
        throttle.failed("203.0.113.7")
    assert throttle.retry_after("203.0.113.7") == 3  # one failure drains every 60/20 s
    assert throttle.retry_after("203.0.113.8") is None  # other addresses are not concerned
    clock.now += 2.9
    assert throttle.retry_after("203.0.113.7") == 1
    clock.now += 0.2
    assert throttle.retry_after("203.0.113.7") is None  # one more try is allowed...
    throttle.failed("203.0.113.7")
    assert throttle.retry_after("203.0.113.7") == 3  # ...and refused again when it fails
    clock.now += 60
    assert throttle.retry_after("203.0.113.7") is None


def test_failures_spread_over_more_than_the_window_stay_allowed() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=5, window_s=10, clock=clock)
    for _ in range(100):
        assert throttle.retry_after("a") is None
        throttle.failed("a")
        clock.now += 2.0  # five per ten seconds: the allowed rate


def test_memory_is_bounded_the_least_recently_failing_address_is_forgotten() -> None:
    clock = Clock()
    throttle = FailureThrottle(limit=1, window_s=60, clock=clock, max_clients=3)
    for key in ("a", "b", "c"):
        throttle.failed(key)
    throttle.failed("a")  # "a" failed again: "b" is now the least recent
    throttle.failed("d")
    assert len(throttle) == 3
    assert throttle.retry_after("b") is None
    assert all(throttle.retry_after(key) is not None for key in ("a", "c", "d"))
    for n in range(10_000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle) == 3


def test_a_zero_limit_disables_the_throttle_and_bad_bounds_are_refused() -> None:
    throttle = FailureThrottle(limit=0, window_s=60)
    for _ in range(1000):
        throttle.failed("a")
    assert throttle.retry_after("a") is None and len(throttle) == 0
    with pytest.raises(ValueError):
        FailureThrottle(limit=5, window_s=0)
    with pytest.raises(ValueError):
        FailureThrottle(limit=-1, window_s=60)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same /64: one subscriber
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_client_keys(host: str | None, key: str) -> None:
    assert client_key(host) == key
