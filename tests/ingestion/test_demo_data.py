"""The demo data generator: deterministic, SPEC-shaped, and honest about its defects.

Every generated event is classified here independently (SPEC §1 order, using the
collector's per-event checks plus the catalog and customer rules), and the verdicts must
match what the generator's summary promises ingestion will find.
"""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow.parquet as pq
import pytest
import yaml

from ingestion.demo_data import DemoDataset, build_catalog, write_demo_dataset
from ingestion.event_schema import check_event, luhn_valid

N_EVENTS = 13_000  # 13 bad events: one of each kind
AGGREGATIONS = {"count", "sum", "max", "unique_count", "latest"}
MODELS = {"per_unit", "graduated", "volume", "package", "percentage"}


@pytest.fixture(scope="module")
def ndjson_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return write_demo_dataset(tmp_path_factory.mktemp("ndjson"), events=N_EVENTS, seed=11)


@pytest.fixture(scope="module")
def parquet_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return write_demo_dataset(
        tmp_path_factory.mktemp("parquet"), events=N_EVENTS, seed=11, fmt="parquet"
    )


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _raw_events(demo: DemoDataset) -> list[tuple[str, str]]:
    """(file name, raw JSON text) of every event, in ingestion order."""
    out = []
    for path in demo.event_paths:
        if path.suffix == ".ndjson":
            out += [(path.name, line) for line in path.read_text("utf-8").splitlines() if line]
        else:
            for row in pq.read_table(path).to_pylist():
                event = {k: v for k, v in row.items() if v is not None and k != "data"}
                if row["data"] is not None:
                    event["data"] = json.loads(row["data"])
                out.append((path.name, json.dumps(event)))
    return out


def _get(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    return None if value is None or isinstance(value, dict | list) else str(value)


def _is_numeric(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            return Decimal(value).is_finite()
        except InvalidOperation:
            return False
    return False


def _classify(demo: DemoDataset) -> tuple[Counter[str], list[dict[str, Any]], int, int]:
    """(reasons, accepted events, duplicates, conflicts) as ingestion must see them."""
    catalog = yaml.safe_load(demo.catalog_path.read_text())
    customers = {c["id"] for c in yaml.safe_load(demo.customers_path.read_text())["customers"]}
    value_meters = [m for m in catalog["meters"] if m["aggregation"] in ("sum", "max")]
    now = datetime.fromisoformat(demo.as_of.replace("Z", "+00:00"))
    reasons: Counter[str] = Counter()
    accepted: dict[tuple[str, str], dict[str, Any]] = {}
    duplicates = conflicts = 0
    for _, raw in _raw_events(demo):
        result = check_event(raw, now=now)
        reason = result.reason
        event = result.event
        if reason is None:
            assert event is not None
            data = event.get("data") or {}
            for meter in value_meters:
                matches = event["type"] == meter["event_type"] and all(
                    _text(_get(data, k)) == str(v) for k, v in (meter.get("filter") or {}).items()
                )
                if matches and not _is_numeric(_get(data, meter["value"])):
                    reason = f"missing_field:data.{meter['value']}"
                    break
        if reason is None and event["subject"] not in customers:
            reason = "unknown_customer"
        if reason is not None:
            reasons[reason] += 1
            continue
        key = (event.get("source") or "default", event["id"])
        first = accepted.get(key)
        normal = {**event, "source": key[0]}
        if first is None:
            accepted[key] = normal
        elif first == normal:
            duplicates += 1
        else:
            conflicts += 1
    return reasons, list(accepted.values()), duplicates, conflicts


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))


# ----------------------------------------------------------------------------- determinism


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    for fmt in ("ndjson", "parquet"):
        a = write_demo_dataset(tmp_path / f"a-{fmt}", events=3000, seed=5, fmt=fmt)  # type: ignore[arg-type]
        b = write_demo_dataset(tmp_path / f"b-{fmt}", events=3000, seed=5, fmt=fmt)  # type: ignore[arg-type]
        assert _tree_bytes(a.out_dir) == _tree_bytes(b.out_dir)
    other = write_demo_dataset(tmp_path / "c", events=3000, seed=6)
    a_events = (tmp_path / "a-ndjson" / "events").glob("*.ndjson")
    assert [p.read_bytes() for p in sorted(a_events)] != [p.read_bytes() for p in other.event_paths]


def test_rewriting_a_folder_replaces_the_previous_event_files(tmp_path: Path) -> None:
    write_demo_dataset(tmp_path, events=500, files=5)
    demo = write_demo_dataset(tmp_path, events=500)
    assert sorted((tmp_path / "events").iterdir()) == demo.event_paths


# ----------------------------------------------------------------------------- catalog


def _walk(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [x for k, v in node.items() for x in _walk(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [x for i, v in enumerate(node) for x in _walk(v, f"{path}[{i}]")]
    return [(path, node)]


def test_catalog_has_the_spec_structure(ndjson_demo: DemoDataset) -> None:
    catalog = yaml.safe_load(ndjson_demo.catalog_path.read_text())
    assert not [p for p, v in _walk(catalog) if isinstance(v, float)], "amounts must be strings"
    meters = {m["key"]: m for m in catalog["meters"]}
    for key, meter in meters.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", key)
        assert meter["aggregation"] in AGGREGATIONS
        if meter["aggregation"] != "count":
            assert meter["value"]
    assert {m["aggregation"] for m in meters.values()} == AGGREGATIONS
    assert any("." in (m.get("value") or "") for m in meters.values())  # dotted paths
    plans = {p["key"]: p for p in catalog["plans"]}
    assert len(plans) >= 3 and {"starter", "growth", "ai", "enterprise"} <= set(plans)
    assert {p["currency"] for p in plans.values()} == {"USD", "EUR"}
    assert len(plans["enterprise"]["versions"]) == 2
    seen_models = set()
    for plan in plans.values():
        dates = [v["effective_from"] for v in plan["versions"]]
        assert dates == sorted(set(dates))
        for version in plan["versions"]:
            keys = [c["key"] for c in version["charges"]]
            assert len(keys) == len(set(keys))
            for charge in version["charges"]:
                meter = meters[charge["meter"]]
                seen_models.add(charge["model"])
                assert charge["model"] in MODELS
                if charge["model"] == "percentage":
                    assert meter["aggregation"] == "sum"
                if "price_by" in charge:
                    assert charge["price_by"] in meter["group_by"]
                    assert "*" in charge["prices"]
                for tiers in [charge.get("tiers")] + [
                    p.get("tiers") for p in (charge.get("prices") or {}).values()
                ]:
                    if tiers:
                        bounds = [t["up_to"] for t in tiers]
                        assert bounds[-1] is None and bounds[:-1] == sorted(set(bounds[:-1]))
    assert seen_models == MODELS
    ai = plans["ai"]["versions"][0]["charges"]
    assert {c["price_by"] for c in ai} == {"model"}


def test_catalog_loads_with_the_project_loader(ndjson_demo: DemoDataset) -> None:
    catalog_module = importlib.import_module("ingestion.config.catalog")
    customers_module = importlib.import_module("ingestion.config.customers")
    catalog = catalog_module.load_catalog(ndjson_demo.catalog_path)
    loaded = customers_module.load_customers(ndjson_demo.customers_path, catalog)
    assert len(loaded.customers) == 50


def test_catalog_price_change_is_mid_range() -> None:
    catalog = build_catalog(date(2026, 1, 1), 3)
    enterprise = next(p for p in catalog["plans"] if p["key"] == "enterprise")
    assert [v["effective_from"] for v in enterprise["versions"]] == [
        date(2026, 1, 1),
        date(2026, 2, 10),
    ]


# ----------------------------------------------------------------------------- customers


def test_customers_cover_the_rating_features(ndjson_demo: DemoDataset) -> None:
    catalog = yaml.safe_load(ndjson_demo.catalog_path.read_text())
    currency = {p["key"]: p["currency"] for p in catalog["plans"]}
    customers = yaml.safe_load(ndjson_demo.customers_path.read_text())["customers"]
    assert len(customers) == 50
    ids = [c["id"] for c in customers]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", i) for i in ids)
    zones = Counter(c["timezone"] for c in customers)
    for zone in zones:
        ZoneInfo(zone)
    assert len(zones) >= 6
    anchor_days = set()
    for c in customers:
        subs = c["subscriptions"]
        assert len({currency[s["plan"]] for s in subs}) == 1, c["id"]
        anchors = {
            (s["billing_anchor"], s["start"].day if s["billing_anchor"] == "start" else 1)
            for s in subs
        }
        assert len(anchors) == 1, c["id"]
        anchor_days |= {day for kind, day in anchors if kind == "start"}
        for s in subs:
            assert date(2026, 1, 1) <= s["start"] < date(2026, 3, 20)
            assert s.get("end") is None or s["end"] > s["start"]
        for d in c.get("discounts", []):
            assert isinstance(d.get("percent_off", d.get("amount_off")), str)
        for credit in c.get("credits", []):
            assert isinstance(credit["amount"], str)
    assert anchor_days & {29, 30, 31}
    assert sum("tax_rate" in c for c in customers) >= 10
    assert any("percent_off" in d for c in customers for d in c.get("discounts", []))
    assert any("amount_off" in d for c in customers for d in c.get("discounts", []))
    credits = [g for c in customers for g in c.get("credits", [])]
    assert any(g["expires"] is None for g in credits) and any(g["expires"] for g in credits)
    assert any(str(c.get("stripe_customer_id", "")).startswith("cus_demo_") for c in customers)
    subs = [s for c in customers for s in c["subscriptions"]]
    assert any(s.get("end") for s in subs)
    assert any(s["start"] > date(2026, 1, 31) for s in subs)
    assert any(len(c["subscriptions"]) > 1 for c in customers)
    assert any(currency[c["subscriptions"][0]["plan"]] == "EUR" for c in customers)


# ----------------------------------------------------------------------------- events


@pytest.mark.parametrize("demo_name", ["ndjson_demo", "parquet_demo"])
def test_events_match_the_summary(demo_name: str, request: pytest.FixtureRequest) -> None:
    demo: DemoDataset = request.getfixturevalue(demo_name)
    summary = demo.summary
    reasons, accepted, duplicates, conflicts = _classify(demo)
    assert demo.events_written == N_EVENTS == summary["rows"]
    assert dict(reasons) == summary["quarantine"]
    assert len(accepted) == summary["accepted"]
    assert duplicates == summary["duplicates"]
    assert conflicts == 0
    assert 0.008 * N_EVENTS <= duplicates <= 0.012 * N_EVENTS
    assert 0.0005 * N_EVENTS <= sum(reasons.values()) <= 0.002 * N_EVENTS
    assert Counter(e["type"] for e in accepted) == summary["by_type"]
    catalog = yaml.safe_load(demo.catalog_path.read_text())
    assert {e["type"] for e in accepted} <= {m["event_type"] for m in catalog["meters"]}
    assert {e["type"] for e in accepted} == {m["event_type"] for m in catalog["meters"]}
    expected = {
        "missing_field:id",
        "missing_field:type",
        "missing_field:subject",
        "missing_field:time",
        "invalid_id",
        "invalid_time",
        "invalid_data",
        "card_number_like_value",
        "unknown_customer",
        "too_large",
        "time_in_future",
    }
    assert expected | ({"invalid_json"} if demo_name == "ndjson_demo" else set()) <= set(reasons)
    assert any(r.startswith("missing_field:data.") for r in reasons)


def test_usage_is_long_tailed_and_varied(ndjson_demo: DemoDataset) -> None:
    per_customer = sorted(ndjson_demo.summary["by_customer"].values(), reverse=True)
    assert per_customer[0] > 10 * per_customer[len(per_customer) // 2]
    raws = [raw for _, raw in _raw_events(ndjson_demo)]
    assert any('"input": "' in r for r in raws) and any('"input": 1' in r for r in raws)
    assert any('"amount": "' in r for r in raws) and any(
        re.search(r'"amount": \d', r) for r in raws
    )
    assert any('"status": "error"' in r for r in raws)
    offsets = {m for r in raws for m in re.findall(r'"time": "[^"]+?([+-]\d\d:\d\d)"', r)}
    assert len(offsets) >= 4  # local times in several zones
    assert any(re.search(r'"time": "[^"]+\.\d{3}Z"', r) for r in raws)
    cards = [v for r in raws for v in re.findall(r'"(\d{13,19})"', r)]
    assert cards and all(luhn_valid(v) for v in cards)


def test_files_follow_time_and_late_events_come_last(ndjson_demo: DemoDataset) -> None:
    demo = ndjson_demo
    names = [p.name for p in demo.event_paths]
    assert names == ["events-2026-01.ndjson", "events-2026-02.ndjson", "events-2026-03.ndjson"]
    assert demo.as_of == "2026-03-20T00:00:00Z"
    assert [s.as_of for s in demo.steps] == [
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-03-20T00:00:00Z",
    ]
    as_of = _instant(demo.as_of)
    late = Counter()
    for index, path in enumerate(demo.event_paths):
        lo = datetime(2026, 1 + index, 1, tzinfo=UTC)
        hi = datetime(2026, 2 + index, 1, tzinfo=UTC) if index < 2 else as_of
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
                when = _instant(event["time"])
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a bad event
            if when.tzinfo is None:
                continue  # a bad event (no offset)
            if when < lo - timedelta(days=1):
                late[index] += 1  # late events: only in the last file
            elif when <= as_of + timedelta(minutes=5):
                assert lo - timedelta(hours=1) <= when < hi, line
    assert set(late) == {2} and late[2] >= demo.summary["late"]
    steps = yaml.safe_load(demo.steps_path.read_text())["steps"]
    assert steps[-1] == {"events": ["events/events-2026-03.ndjson"], "as_of": demo.as_of}


def test_files_split_by_rows_in_ingestion_order(tmp_path: Path) -> None:
    demo = write_demo_dataset(tmp_path, events=4000, files=4, fmt="parquet", months=2)
    assert [p.name for p in demo.event_paths] == [f"events-{i:05d}.parquet" for i in range(4)]
    assert [pq.ParquetFile(p).metadata.num_rows for p in demo.event_paths] == [1000] * 4
    assert demo.as_of == "2026-02-20T00:00:00Z"
    stamps = [s.as_of for s in demo.steps]
    assert stamps == sorted(stamps) and stamps[-1] == demo.as_of


def test_as_of_day_none_completes_the_last_month(tmp_path: Path) -> None:
    # the data of a month-end close (bench/e2e.py): three full months, as_of the next 1st
    demo = write_demo_dataset(tmp_path, events=N_EVENTS, seed=5, fmt="parquet", as_of_day=None)
    assert demo.as_of == "2026-04-01T00:00:00Z"
    assert [s.as_of for s in demo.steps] == [
        "2026-02-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "2026-04-01T00:00:00Z",
    ]
    reasons, accepted, duplicates, conflicts = _classify(demo)
    assert dict(reasons) == demo.summary["quarantine"]
    assert (len(accepted), duplicates, conflicts) == (
        demo.summary["accepted"],
        demo.summary["duplicates"],
        0,
    )
    times = [_instant(e["time"]) for e in accepted]
    assert max(times) < _instant(demo.as_of)
    assert any(t >= datetime(2026, 3, 25, tzinfo=UTC) for t in times)
    with pytest.raises(ValueError, match="as_of_day"):
        write_demo_dataset(tmp_path / "bad", events=10, as_of_day=1)


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1st of a month"):
        write_demo_dataset(tmp_path, events=10, start=date(2026, 1, 15))
    with pytest.raises(ValueError):
        write_demo_dataset(tmp_path, events=10, fmt="csv")  # type: ignore[arg-type]


def test_tiny_datasets_still_work(tmp_path: Path) -> None:
    demo = write_demo_dataset(tmp_path, events=7, customers=3, months=1)
    assert demo.events_written == 7
    assert len(demo.event_paths) == 1
    assert demo.summary["accepted"] == 7


@pytest.mark.parametrize("demo_name", ["ndjson_demo", "parquet_demo"])
def test_ingestion_pipeline_agrees_with_the_summary(
    demo_name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    duckdb = importlib.import_module("duckdb")
    landing = importlib.import_module("ingestion.landing")
    pipeline = importlib.import_module("ingestion.pipeline")
    rules = importlib.import_module("ingestion.rules")
    demo: DemoDataset = request.getfixturevalue(demo_name)
    catalog = yaml.safe_load(demo.catalog_path.read_text())
    customers = yaml.safe_load(demo.customers_path.read_text())["customers"]
    ingest_rules = rules.IngestRules(
        customer_ids=frozenset(c["id"] for c in customers),
        value_meters=tuple(
            rules.ValueMeterRule(m["event_type"], m["value"], m.get("filter") or {})
            for m in catalog["meters"]
            if m["aggregation"] in ("sum", "max")
        ),
        clock=_instant(demo.as_of),
    )
    zone = landing.LandingZone(tmp_path / "landing").ensure()
    zone.land_paths(demo.event_paths)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        report = pipeline.ingest_landed(con, zone, ingest_rules)
    assert report.rows_read == demo.events_written
    assert report.accepted == demo.summary["accepted"]
    assert report.duplicates == demo.summary["duplicates"]
    assert report.conflicts == 0
    assert report.quarantined_by_reason == demo.summary["quarantine"]


def test_small_units_and_threads_change_nothing_but_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Large runs split busy days into hour slices and generate ~0.5 M events at a time;
    # shrink both limits so a small run takes those paths, with and without threads.
    import ingestion.demo_data as demo_data

    monkeypatch.setattr(demo_data, "_PIECE_TARGET", 150)
    monkeypatch.setattr(demo_data, "_UNIT_TARGET", 1000)
    one = write_demo_dataset(tmp_path / "one", events=13_000, seed=3)
    two = write_demo_dataset(tmp_path / "two", events=13_000, seed=3, workers=2)
    assert _tree_bytes(one.out_dir) == _tree_bytes(two.out_dir)
    reasons, accepted, duplicates, conflicts = _classify(one)
    assert dict(reasons) == one.summary["quarantine"]
    assert (len(accepted), duplicates, conflicts) == (
        one.summary["accepted"],
        one.summary["duplicates"],
        0,
    )
