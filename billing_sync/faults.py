"""Crash points for the crash test: die by SIGKILL at the N-th checkpoint.

Inactive unless :func:`arm_from_env` is called (only ``python -m billing_sync`` does)
with ``TALLY_BILLING_SYNC_CRASH_AFTER=N`` set. Checkpoints sit just before each HTTP
request, just after each HTTP response (before anything is recorded) and just after
each sync-ledger commit, so a seeded N stops the process at a real, reproducible
point of the protocol. The kill is a real SIGKILL: no ``finally``, no flush, no atexit.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

ENV_VAR = "TALLY_BILLING_SYNC_CRASH_AFTER"

_remaining: int | None = None


def arm_from_env(environ: Mapping[str, str] | None = None) -> None:
    global _remaining
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR, "").strip()
    _remaining = int(value) if value else None


def disarm() -> None:
    global _remaining
    _remaining = None


def checkpoint(name: str) -> None:
    """Count one crash point; SIGKILL this process when the armed count is reached."""
    global _remaining
    if _remaining is None:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
