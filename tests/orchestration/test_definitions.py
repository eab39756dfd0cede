"""The Dagster definitions load, and the graph has the shape the design promises."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from orchestration.manifest import ensure_manifest


@pytest.fixture
def defs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dg.Definitions:
    monkeypatch.setenv("TALLY_HOME", str(tmp_path))
    ensure_manifest()
    from orchestration.definitions import defs as definitions

    return definitions


def test_definitions_are_loadable(defs: dg.Definitions):
    dg.Definitions.validate_loadable(defs)


def test_asset_keys_follow_schema_and_table(defs: dg.Definitions):
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    for expected in (
        "config/catalog",
        "config/customers",
        "raw/usage_events",
        "raw/quarantine",
        "staging/stg_raw__usage_events",
        "intermediate/int_usage_lines_rated",
        "marts/fct_invoices",
        "marts/fct_invoice_lines",
        "ledger/invoice_ledger",
        "marts/invoice_documents",
    ):
        assert expected in keys


def test_dbt_sources_link_to_the_python_assets_that_write_them(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    staged = graph.get(dg.AssetKey(["staging", "stg_raw__usage_events"]))
    assert dg.AssetKey(["raw", "usage_events"]) in staged.parent_keys
    customers = graph.get(dg.AssetKey(["staging", "stg_config__customers"]))
    assert dg.AssetKey(["config", "customers"]) in customers.parent_keys


def test_finalization_runs_after_the_invoice_marts_and_before_publication(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    ledger = graph.get(dg.AssetKey(["ledger", "invoice_ledger"]))
    assert dg.AssetKey(["marts", "fct_invoices"]) in ledger.parent_keys
    documents = graph.get(dg.AssetKey(["marts", "invoice_documents"]))
    assert dg.AssetKey(["ledger", "invoice_ledger"]) in documents.parent_keys


def test_every_warehouse_writer_shares_one_pool(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    for key in (
        dg.AssetKey(["raw", "usage_events"]),
        dg.AssetKey(["marts", "fct_invoices"]),
        dg.AssetKey(["ledger", "invoice_ledger"]),
    ):
        assert graph.get(key).pools == {"warehouse"}


def test_dbt_tests_become_asset_checks(defs: dg.Definitions):
    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert "assert_usage_lines_are_priced" in check_names
    assert any(name.startswith("unique_fct_invoices_invoice_id") for name in check_names)
