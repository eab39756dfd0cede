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
