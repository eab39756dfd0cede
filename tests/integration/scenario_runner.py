"""Run a folder of ../shared/scenarios through the real `tally` command line and compare.

The comparison follows shared/scenarios/README.md: invoices matched by (customer_id,
period_start); status, currency and the totals equal as decimals; lines compared as a
multiset keyed by (type, plan, charge, group, for_period) with amount and quantity as
decimals. Used by every issue's acceptance tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import TALLY

MONEY_FIELDS = ("subtotal", "discount", "tax", "credits_applied", "total")


@dataclass
class ScenarioResult:
    invoices: list[dict[str, Any]]
    quarantine: list[dict[str, Any]]
    step_outputs: list[subprocess.CompletedProcess]


def tally(*args: str | Path, check: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the installed CLI (.venv/bin/tally) as a user would."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [str(TALLY), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"tally {' '.join(map(str, args))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
        )
    return result


def run_steps(scenario: Path, home: Path, *, repeat: int = 1) -> list[subprocess.CompletedProcess]:
    steps = yaml.safe_load((scenario / "steps.yaml").read_text())["steps"]
    outputs = []
    for _ in range(repeat):
        for step in steps:
            args: list[str | Path] = [
                "run", "--home", home,
                "--catalog", scenario / "catalog.yaml",
                "--customers", scenario / "customers.yaml",
            ]
            if step.get("events"):
                args += ["--events", *(scenario / e for e in step["events"])]
            args += ["--as-of", str(step["as_of"])]
            outputs.append(tally(*args))
    return outputs


def run_scenario(scenario: Path, home: Path, *, repeat: int = 1) -> ScenarioResult:
    outputs = run_steps(scenario, home, repeat=repeat)
    invoices = json.loads(tally("invoices", "--home", home, "--format", "json").stdout)
    quarantine = json.loads(tally("quarantine", "--home", home, "--format", "json").stdout)
    return ScenarioResult(invoices, quarantine, outputs)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _line_key(line: dict) -> tuple:
    return (line["type"], line["plan"], line["charge"], line["group"], line.get("for_period"))


def _line_values(line: dict) -> tuple:
    return (_dec(line.get("amount")), _dec(line.get("quantity")))


def invoice_differences(actual: list[dict], expected: list[dict]) -> list[str]:
    """Human-readable differences; empty when the invoices match the README's rules."""
    problems: list[str] = []
    by_key = {(i["customer_id"], i["period_start"]): i for i in actual}
    wanted = {(i["customer_id"], i["period_start"]): i for i in expected}
    for key in sorted(set(wanted) - set(by_key)):
        problems.append(f"missing invoice {key}")
    for key in sorted(set(by_key) - set(wanted)):
        problems.append(f"extra invoice {key}")
    for key in sorted(set(wanted) & set(by_key)):
        got, want = by_key[key], wanted[key]
        for field in ("status", "currency"):
            if got[field] != want[field]:
                problems.append(f"{key} {field}: got {got[field]!r}, want {want[field]!r}")
        for field in MONEY_FIELDS:
            if _dec(got[field]) != _dec(want[field]):
                problems.append(f"{key} {field}: got {got[field]}, want {want[field]}")
        got_lines = Counter((_line_key(line), _line_values(line)) for line in got["lines"])
        want_lines = Counter((_line_key(line), _line_values(line)) for line in want["lines"])
        if got_lines != want_lines:
            problems.append(
                f"{key} lines differ:\n  missing {sorted(map(str, (want_lines - got_lines).elements()))}"
                f"\n  extra   {sorted(map(str, (got_lines - want_lines).elements()))}"
            )
    return problems


def quarantine_differences(actual: list[dict], expected: list[dict]) -> list[str]:
    got = Counter((r["id"], r["source"], r["reason"]) for r in actual)
    want = Counter((r["id"], r["source"], r["reason"]) for r in expected)
    if got == want:
        return []
    return [f"quarantine missing {sorted(map(str, (want - got).elements()))}, extra {sorted(map(str, (got - want).elements()))}"]


def expected_of(scenario: Path) -> tuple[list[dict], list[dict] | None]:
    invoices = json.loads((scenario / "expected.json").read_text())
    quarantine_file = scenario / "expected_quarantine.json"
    quarantine = json.loads(quarantine_file.read_text()) if quarantine_file.exists() else None
    return invoices, quarantine
