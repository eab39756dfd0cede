"""Fixtures for billing sync tests: real servers on loopback, a temp warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.billing_sync.helpers import FakeStripeServer, LocalStripeServer


@pytest.fixture(scope="session")
def _fake_stripe_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeStripeServer]:
    server = FakeStripeServer(tmp_path_factory.mktemp("fake_stripe"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_stripe(_fake_stripe_session: FakeStripeServer) -> FakeStripeServer:
    """The fake Stripe server, emptied (objects, keys, faults) for this test."""
    _fake_stripe_session.reset()
    return _fake_stripe_session


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStripeServer]:
    server = LocalStripeServer(tmp_path_factory.mktemp("localstripe"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"
