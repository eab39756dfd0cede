"""Prepare the dbt manifest before the Dagster definitions import (they are built from it).

`dbt parse` runs when the manifest is missing or older than any file of the dbt project,
under a file lock so parallel test workers and commands do not race on target/.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"
_SOURCES = ("models", "macros", "seeds", "tests", "dbt_project.yml", "profiles.yml")


def source_files(names: tuple[str, ...] = _SOURCES) -> list[Path]:
    """The dbt project's files under `names` (folders or files of DBT_PROJECT_DIR), sorted."""
    files: list[Path] = []
    for name in names:
        path = DBT_PROJECT_DIR / name
        files += [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sorted(files)


def _newest_source_mtime() -> float:
    return max([0.0, *(f.stat().st_mtime for f in source_files())])


def manifest_is_current() -> bool:
    return MANIFEST.exists() and MANIFEST.stat().st_mtime >= _newest_source_mtime()


def ensure_manifest() -> Path:
    if manifest_is_current():
        return MANIFEST
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    with open(MANIFEST.parent / ".parse.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not manifest_is_current():
            dbt = Path(sys.executable).parent / "dbt"
            env = {k: v for k, v in os.environ.items() if k != "TALLY_WAREHOUSE"}
            result = subprocess.run(
                [str(dbt), "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"],
                cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise RuntimeError(f"dbt parse failed: {(result.stdout + result.stderr).strip()[-2000:]}")
    return MANIFEST
