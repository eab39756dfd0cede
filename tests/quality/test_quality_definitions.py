"""The quality checks are registered and wired where they gate: before dbt, before the ledger."""

from __future__ import annotations

import dagster as dg
import pytest

from ingestion.quality import ALL_SUITES, INVARIANTS
from orchestration.manifest import ensure_manifest

LEDGER = dg.AssetKey(["ledger", "invoice_ledger"])


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TALLY_HOME", str(tmp_path_factory.mktemp("home")))
        ensure_manifest()
        from orchestration.definitions import defs as definitions

        return definitions


def test_every_check_is_named_asset__property_and_registered(defs: dg.Definitions):
    graph = defs.resolve_asset_graph()
    names = {key.name: key for key in graph.asset_check_keys}
    expected = {suite.check_name for suite in ALL_SUITES} | {i.check_name for i in INVARIANTS}
    assert expected <= set(names)
    for name in expected:
        asset, _, prop = name.partition("__")
        assert asset and prop, name
        spec = graph.get_check_spec(names[name])
        assert spec.blocking == (name != "late_usage_pending__has_invoice_to_land_on")


def test_the_raw_suite_gates_dbt_and_the_billing_checks_gate_the_ledger(defs: dg.Definitions):
    job = defs.resolve_job_def("billing_run")
    order = [node.name for node in job.nodes_in_topological_order]
    assert order.index("raw__usage_events_usage_events__pass_gx_suite") < order.index(
        "tally_dbt_models"
    )
    assert order.index("tally_dbt_models") < order.index("billing_quality_checks")
    assert order.index("billing_quality_checks") < order.index("ledger__invoice_ledger")
    dbt_inputs = job.dependencies[dg.NodeInvocation("tally_dbt_models")]
    assert any("usage_events__pass_gx_suite" in str(dep) for dep in dbt_inputs.values())
    ledger_inputs = job.dependencies[dg.NodeInvocation("ledger__invoice_ledger")]
    assert any("billing_quality_checks" in str(dep) for dep in ledger_inputs.values())


def test_jobs_that_select_some_checked_assets_still_resolve(defs: dg.Definitions):
    for job in defs.jobs or []:
        defs.resolve_job_def(job.name)
