"""ConfigStore: content-addressed copies of the config a run used, with a change history."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from ingestion.config.customers import load_customers
from ingestion.config.errors import CatalogError, ConfigStoreError, CustomersError
from ingestion.config.store import ConfigStore

T0 = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


@pytest.fixture
def sources(tmp_path: Path, scenario_dirs: list[Path]) -> tuple[Path, Path]:
    scenario = next(d for d in scenario_dirs if d.name == "discount_tax_credits")
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(scenario / "catalog.yaml", src / "catalog.yaml")
    shutil.copy(scenario / "customers.yaml", src / "customers.yaml")
    return src / "catalog.yaml", src / "customers.yaml"


def test_same_content_twice_is_one_history_entry(
    tmp_path: Path, sources: tuple[Path, Path]
) -> None:
    catalog, customers = sources
    store = ConfigStore(tmp_path / "home")
    first = store.record(catalog, customers, now=T0)
    second = store.record(catalog, customers, now=T0 + dt.timedelta(hours=1))
    assert first == second == store.latest()
    assert first.catalog_sha256 == hashlib.sha256(catalog.read_bytes()).hexdigest()
    assert first.catalog_path == tmp_path / "home/config/catalog" / f"{first.catalog_sha256}.yaml"
    assert first.catalog_path.read_bytes() == catalog.read_bytes()
    assert first.customers_path.read_bytes() == customers.read_bytes()
    lines = [json.loads(line) for line in store.history_path.read_text().splitlines()]
    assert [(e["kind"], e["sha256"]) for e in lines] == [
        ("catalog", first.catalog_sha256),
        ("customers", first.customers_sha256),
    ]
    assert lines[0]["source"] == str(catalog.resolve())
    assert lines[0]["recorded_at"] == "2026-02-01T00:00:00+00:00"


def test_a_change_adds_an_entry_and_becomes_latest(
    tmp_path: Path, sources: tuple[Path, Path]
) -> None:
    catalog, customers = sources
    store = ConfigStore(tmp_path / "home")
    old = store.record(catalog, customers, now=T0)
    catalog.write_text(catalog.read_text().replace('"100.00"', '"120.00"'))
    new = store.record(catalog, customers, now=T0)
    assert new.catalog_sha256 != old.catalog_sha256
    assert new.customers_sha256 == old.customers_sha256
    assert old.catalog_path.exists() and new.catalog_path.exists()  # old versions stay
    assert [c.kind for c in store.history()] == ["catalog", "customers", "catalog"]
    assert store.latest() == new
    loaded_catalog, _ = store.load(new)
    assert str(loaded_catalog.plans[0].versions[0].base_fee) == "120.00"
    # switching back to an earlier content is a change too
    catalog.write_text(old.catalog_path.read_text())
    assert store.record(catalog, customers, now=T0) == old
    assert len(store.history()) == 4


def test_invalid_config_is_not_recorded(tmp_path: Path, sources: tuple[Path, Path]) -> None:
    catalog, customers = sources
    catalog.write_text(catalog.read_text().replace("currency: USD", "currency: ZZZ"))
    store = ConfigStore(tmp_path / "home")
    with pytest.raises(CatalogError, match="unknown ISO 4217 currency code 'ZZZ'"):
        store.record(catalog, customers)
    assert store.history() == []
    assert not list((tmp_path / "home").rglob("*.yaml"))


def test_latest_before_any_record_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigStoreError, match="no configuration recorded yet"):
        ConfigStore(tmp_path / "home").latest()


def test_database_source_is_versioned_as_canonical_yaml(
    tmp_path: Path, sources: tuple[Path, Path]
) -> None:
    catalog, _ = sources
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as con:
        con.exec_driver_sql("create table customers (id text primary key, tax_rate numeric)")
        con.exec_driver_sql(
            'create table subscriptions (customer_id text, plan text, start date, "end" date)'
        )
        con.exec_driver_sql("insert into customers values ('acme', '0.20')")
        con.exec_driver_sql("insert into subscriptions values ('acme', 'pro', '2026-01-01', null)")
    store = ConfigStore(tmp_path / "home")
    first = store.record(catalog, url, now=T0)
    assert store.record(catalog, url, now=T0) == first
    text = first.customers_path.read_text()
    assert first.customers_sha256 == hashlib.sha256(text.encode()).hexdigest()
    _, stored = store.load(first)
    assert stored == load_customers(url, store.load(first)[0])
    with engine.begin() as con:
        con.exec_driver_sql("update customers set tax_rate = '0.25'")
    engine.dispose()
    second = store.record(catalog, url, now=T0)
    assert second.customers_sha256 != first.customers_sha256
    assert [c.source for c in store.history() if c.kind == "customers"] == [url, url]


def test_no_temporary_files_are_left_behind(tmp_path: Path, sources: tuple[Path, Path]) -> None:
    store = ConfigStore(tmp_path / "home")
    store.record(*sources)
    leftovers = [p.name for p in (tmp_path / "home").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_a_pair_validated_once_is_not_parsed_again_until_the_config_code_changes(
    tmp_path: Path, sources: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `tally run` records the same files: they are validated on the first one only."""
    from ingestion.config import store as store_module

    parsed: list[str] = []
    real_load = store_module.load_customers

    def counting_load(*args, **kwargs):
        parsed.append("customers")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(store_module, "load_customers", counting_load)
    catalog, customers = sources
    store = ConfigStore(tmp_path / "home")
    store.record(catalog, customers, now=T0)
    store.record(catalog, customers, now=T0)
    assert parsed == ["customers"]
    valid = customers.read_text()
    customers.write_text(valid.replace("customers:", "customers:\n  - {}", 1))
    with pytest.raises(CustomersError):  # new bytes: validated, refused
        store.record(catalog, customers, now=T0)
    assert parsed == ["customers", "customers"]
    customers.write_text(valid)
    monkeypatch.setattr(store_module, "config_code_sha256", lambda: "f" * 64)
    store.record(catalog, customers, now=T0)
    assert len(parsed) == 3  # other config code: the same pair is validated again
