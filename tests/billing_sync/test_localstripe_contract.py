"""What localstripe supports is also exercised against localstripe.

localstripe (third party) implements customers and invoice items but not one-off
invoices, ``invoice=`` on new items of a one-off draft, finalize or idempotency keys
(see STACK-NOTES). So the same gateway calls, with the same payloads billing sync
builds, run against localstripe and against the in-repo test server, and both must
give the same observable objects: localstripe judges the in-repo server (and our form
encoding of amounts, currencies, descriptions, periods and metadata), not the reverse.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import stripe

from billing_sync.gateway import SdkStripeGateway, StripeCallError
from billing_sync.payload import build_plan, idempotency_key
from billing_sync.ratelimit import RequestPacer
from billing_sync.settings import StripeSettings
from billing_sync.warehouse import TallyInvoice, load_finalized_invoices
from tests.billing_sync.helpers import (
    Customer,
    FakeStripeServer,
    LocalStripeServer,
    standard_dataset,
    write_warehouse,
)

pytestmark = pytest.mark.server

# localstripe accepts only secret keys (sk_...); the in-repo server accepts both.
LOCALSTRIPE_KEY = "sk_test_localstripe_contract_0001"


def tally_invoices(tmp_path: Any, stripe_customer: str) -> list[TallyInvoice]:
    import duckdb

    customers, invoices, _, _ = standard_dataset(
        {
            "acme": stripe_customer,
            "yen": stripe_customer,
            "dinar": stripe_customer,
            "late": stripe_customer,
        }
    )
    path = tmp_path / "w.duckdb"
    write_warehouse(path, customers, invoices)
    con = duckdb.connect(str(path))
    try:
        return load_finalized_invoices(con)
    finally:
        con.close()


@pytest.fixture(params=["localstripe", "in-repo"])
def server(
    request: pytest.FixtureRequest, localstripe: LocalStripeServer, fake_stripe: FakeStripeServer
) -> Iterator[tuple[str, str]]:
    if request.param == "localstripe":
        yield "localstripe", localstripe.base_url
    else:
        yield "in-repo", fake_stripe.base_url


def gateway_for(base_url: str) -> SdkStripeGateway:
    settings = StripeSettings.from_env(
        {"STRIPE_API_KEY": LOCALSTRIPE_KEY, "STRIPE_API_BASE": base_url},
        retry_base_delay_seconds=0.01,
    )
    return SdkStripeGateway(settings, pacer=RequestPacer(10_000))


def new_customer(base_url: str, name: str) -> str:
    client = stripe.StripeClient(LOCALSTRIPE_KEY, base_addresses={"api": base_url})
    return str(client.v1.customers.create({"name": name}).id)


def normalized(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            i["metadata"]["tally_item_key"],
            i["metadata"]["tally_invoice_id"],
            i["amount"],
            i["currency"],
            i["description"],
            i["invoice"],
            tuple(sorted(i["metadata"].items())),
        )
        for i in items
    )


def create_all_items(gateway: SdkStripeGateway, invoices: list[TallyInvoice]) -> int:
    count = 0
    for invoice in invoices:
        try:
            plan = build_plan(invoice)
        except Exception:
            continue
        for spec in plan.items:
            params = plan.item_params(spec, "unused")
            del params["invoice"]  # localstripe cannot hold a one-off draft: pending items
            # localstripe only knows the legacy period_start/period_end, not Stripe's
            # period[start]/period[end]; the in-repo server's period is tested elsewhere.
            del params["period"]
            gateway.create_invoice_item(
                params, idempotency_key=idempotency_key(plan.invoice_id, spec.step)
            )
            count += 1
    return count


def test_customer_lookup_and_missing_customer(server: tuple[str, str]) -> None:
    _, base_url = server
    gateway = gateway_for(base_url)
    customer = new_customer(base_url, "Acme Corp")
    assert gateway.retrieve_customer(customer)["id"] == customer
    with pytest.raises(StripeCallError) as info:
        gateway.retrieve_customer("cus_doesnotexist0")
    assert info.value.not_found and not info.value.retryable


def test_invoice_items_from_tally_lines_round_trip(server: tuple[str, str], tmp_path: Any) -> None:
    _, base_url = server
    gateway = gateway_for(base_url)
    customer = new_customer(base_url, "Acme Corp")
    invoices = tally_invoices(tmp_path, customer)
    created = create_all_items(gateway, invoices)
    listed = gateway.list_invoice_items(customer_id=customer)
    assert len(listed) == created == 21
    by_key = {
        (i["metadata"]["tally_invoice_id"], i["metadata"]["tally_item_key"]): i for i in listed
    }
    assert by_key[("acme-2026-01-01", "adj:discount")]["amount"] == -1020
    assert by_key[("yen-2026-01-01", "line:yen-2026-01-01-l1")]["amount"] == 5000
    assert by_key[("yen-2026-01-01", "line:yen-2026-01-01-l1")]["currency"] == "jpy"
    assert by_key[("dinar-2026-01-01", "line:dinar-2026-01-01-l2")]["amount"] == 120
    assert by_key[("late-2026-02-01", "adj:credit_carried_forward")]["amount"] == 2000
    usage = by_key[("acme-2026-02-01", "line:acme-2026-02-01-l3")]
    assert usage["description"] == "pro / input_tokens [gpt-4o]: usage, quantity 1250000"
    assert usage["metadata"]["tally_quantity"] == "1250000"


def test_localstripe_and_in_repo_server_agree_on_invoice_items(
    localstripe: LocalStripeServer, fake_stripe: FakeStripeServer, tmp_path: Any
) -> None:
    results = []
    for base_url in (localstripe.base_url, fake_stripe.base_url):
        gateway = gateway_for(base_url)
        customer = new_customer(base_url, "Acme Corp")
        workdir = tmp_path / base_url.rsplit(":", 1)[1]
        workdir.mkdir()
        create_all_items(gateway, tally_invoices(workdir, customer))
        results.append(normalized(gateway.list_invoice_items(customer_id=customer)))
    assert results[0] == results[1]
    assert len(results[0]) == 21


def test_pagination_over_more_than_one_page(server: tuple[str, str]) -> None:
    _, base_url = server
    gateway = gateway_for(base_url)
    customer = new_customer(base_url, "Many Items")
    for n in range(105):
        gateway.create_invoice_item(
            {
                "customer": customer,
                "amount": n,
                "currency": "usd",
                "description": f"item {n}",
                "metadata": {"tally_item_key": f"k{n}", "tally_invoice_id": "many"},
            },
            idempotency_key=f"tally:many:item:k{n}",
        )
    listed = gateway.list_invoice_items(customer_id=customer)
    assert sorted(i["amount"] for i in listed) == list(range(105))
    assert len({i["id"] for i in listed}) == 105


def test_sync_preflight_rejects_a_customer_unknown_to_localstripe(
    localstripe: LocalStripeServer, tmp_path: Any
) -> None:
    import duckdb

    from billing_sync.stripe_sync import sync_finalized_invoices

    path = tmp_path / "w.duckdb"
    from tests.billing_sync.helpers import Invoice, Line

    write_warehouse(
        path,
        [Customer("ghost", "cus_ghost0000000")],
        [Invoice("ghost", date(2026, 1, 1), lines=[Line("base_fee", "1.00")])],
    )
    con = duckdb.connect(str(path))
    report = sync_finalized_invoices(
        con, gateway_for(localstripe.base_url).settings, gateway=gateway_for(localstripe.base_url)
    )
    (failure,) = report.failures
    assert failure.step == "customer" and "does not exist" in failure.reason
    con.close()
