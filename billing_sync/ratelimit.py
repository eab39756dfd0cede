"""A client-side request pacer: at most ``rate`` requests per second, no bursts.

Stripe's limits are per second; pacing requests at a fixed minimum interval (a token
bucket of capacity 1) keeps every one-second window at or below ``rate`` requests,
whatever the previous second looked like.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RequestPacer:
    def __init__(
        self,
        rate_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be > 0")
        self.interval = 1.0 / rate_per_second
        self._clock = clock
        self._sleep = sleep
        self._next_at: float | None = None
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until the next request may be sent."""
        with self._lock:
            now = self._clock()
            if self._next_at is not None and now < self._next_at:
                self._sleep(self._next_at - now)
                now = self._next_at
            self._next_at = now + self.interval
