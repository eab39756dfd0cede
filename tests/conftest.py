"""Shared test fixtures: where the repo, the CLI and the shared scenarios are."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENARIOS_DIR = Path(os.environ.get("TALLY_SCENARIOS", REPO_ROOT.parent / "shared" / "scenarios"))
TALLY = Path(sys.executable).parent / "tally"


@pytest.fixture
def tally_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Whole-pipeline and server tests first, the quick ones after: with two xdist workers the
    quick tests then fill both workers to the end instead of one worker finishing a long test
    alone. Order inside each kind is kept (collection order)."""

    def kind(item: pytest.Item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 1 if item.get_closest_marker("server") else 2

    items.sort(key=kind)
