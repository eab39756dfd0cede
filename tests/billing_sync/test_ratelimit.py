"""The client-side pacer keeps every one-second window under the configured rate."""

from __future__ import annotations

from billing_sync.ratelimit import RequestPacer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


def test_requests_are_spaced_by_the_interval() -> None:
    clock = FakeClock()
    pacer = RequestPacer(20, clock=clock, sleep=clock.sleep)
    sent = []
    for _ in range(100):
        pacer.acquire()
        sent.append(clock.now)
    gaps = [b - a for a, b in zip(sent, sent[1:], strict=False)]
    assert min(gaps) >= 0.05 - 1e-9
    # No sliding one-second window holds more than 20 requests (+1 for the closed edge).
    for i, start in enumerate(sent):
        in_window = [t for t in sent[i:] if t < start + 1.0 - 1e-6]
        assert len(in_window) <= 20


def test_idle_time_is_not_saved_up_as_a_burst() -> None:
    clock = FakeClock()
    pacer = RequestPacer(10, clock=clock, sleep=clock.sleep)
    pacer.acquire()
    clock.now += 60  # a minute without requests
    first = clock.now
    for _ in range(5):
        pacer.acquire()
    assert clock.now - first >= 4 * 0.1 - 1e-9
