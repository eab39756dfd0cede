"""The in-repo Stripe-compatible server follows Stripe's documented semantics.

Checked through the real SDK over HTTP, so billing sync's tests can trust it: idempotent
replays, parameter mismatches, saved 500s, unsaved 429s, invoice rules and persistence.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import stripe

from billing_sync.gateway import SdkStripeGateway, StripeCallError
from billing_sync.ratelimit import RequestPacer
from billing_sync.settings import StripeSettings
from tests.billing_sync.helpers import TEST_KEY, FakeStripeServer

pytestmark = pytest.mark.server


def client(server: FakeStripeServer) -> stripe.StripeClient:
    return stripe.StripeClient(
        TEST_KEY, base_addresses={"api": server.base_url}, max_network_retries=0
    )


def gateway(server: FakeStripeServer, **overrides: Any) -> SdkStripeGateway:
    settings = StripeSettings.from_env(server.env(), retry_base_delay_seconds=0.01, **overrides)
    return SdkStripeGateway(settings, pacer=RequestPacer(10_000))


def draft(server: FakeStripeServer, g: SdkStripeGateway, key: str = "k-inv") -> dict[str, Any]:
    customer = server.create_customer("acme")
    return g.create_invoice(
        {
            "customer": customer,
            "currency": "usd",
            "auto_advance": False,
            "metadata": {"tally_invoice_id": "t1"},
        },
        idempotency_key=key,
    )


def test_same_key_same_parameters_replays_the_first_response(fake_stripe: FakeStripeServer) -> None:
    g = gateway(fake_stripe)
    first = draft(fake_stripe, g)
    assert g.last_replayed is False
    again = g.create_invoice(
        {
            "customer": first["customer"],
            "currency": "usd",
            "auto_advance": False,
            "metadata": {"tally_invoice_id": "t1"},
        },
        idempotency_key="k-inv",
    )
    assert g.last_replayed is True
    assert again["id"] == first["id"]
    assert fake_stripe.stats()["created"]["invoice"] == 1


def test_same_key_different_parameters_is_an_idempotency_error(
    fake_stripe: FakeStripeServer,
) -> None:
    g = gateway(fake_stripe)
    first = draft(fake_stripe, g)
    with pytest.raises(StripeCallError) as info:
        g.create_invoice(
            {
                "customer": first["customer"],
                "currency": "eur",
                "auto_advance": False,
                "metadata": {"tally_invoice_id": "t1"},
            },
            idempotency_key="k-inv",
        )
    assert info.value.http_status == 400 and info.value.is_idempotency_error
    assert "same parameters" in info.value.message
    assert fake_stripe.stats()["created"]["invoice"] == 1


def test_500_after_commit_is_saved_and_replayed(fake_stripe: FakeStripeServer) -> None:
    customer = fake_stripe.create_customer("acme")
    fake_stripe.configure(
        faults=[
            {"method": "POST", "path": "/v1/invoices", "nth": [1], "action": "500_after_commit"}
        ]
    )
    g = gateway(fake_stripe, max_retries=3)
    with pytest.raises(StripeCallError) as info:
        g.create_invoice({"customer": customer, "currency": "usd"}, idempotency_key="k")
    # One retry with the same key got the saved 500 back (replayed): no more retries.
    assert info.value.http_status == 500 and info.value.replayed and not info.value.retryable
    assert g.requests_sent == 2
    assert fake_stripe.stats()["created"]["invoice"] == 1  # it did happen


def test_429_is_not_saved_and_retried(fake_stripe: FakeStripeServer) -> None:
    customer = fake_stripe.create_customer("acme")
    fake_stripe.configure(
        faults=[{"method": "POST", "path": "/v1/invoices", "nth": [1, 2], "action": "429"}]
    )
    g = gateway(fake_stripe)
    created = g.create_invoice({"customer": customer, "currency": "usd"}, idempotency_key="k")
    assert g.retries == 2 and g.last_replayed is False
    assert created["status"] == "draft"


def test_lost_response_is_recovered_by_the_same_key(fake_stripe: FakeStripeServer) -> None:
    customer = fake_stripe.create_customer("acme")
    fake_stripe.configure(
        faults=[
            {"method": "POST", "path": "/v1/invoices", "nth": [1], "action": "drop_after_commit"}
        ]
    )
    g = gateway(fake_stripe)
    created = g.create_invoice({"customer": customer, "currency": "usd"}, idempotency_key="k")
    assert g.retries == 1 and g.last_replayed is True
    assert fake_stripe.stats()["created"]["invoice"] == 1
    assert created["id"] in fake_stripe.state()["objects"]["invoice"]


def test_invoice_rules(fake_stripe: FakeStripeServer) -> None:
    g = gateway(fake_stripe)
    inv = draft(fake_stripe, g)
    base = {"customer": inv["customer"], "invoice": inv["id"], "currency": "usd"}
    g.create_invoice_item(
        {
            **base,
            "amount": 1000,
            "period": {"start": 1767225600, "end": 1769904000},
            "metadata": {"tally_item_key": "a"},
        },
        idempotency_key="i1",
    )
    with pytest.raises(StripeCallError, match="does not match"):
        g.create_invoice_item({**base, "amount": 1, "currency": "eur"}, idempotency_key="i2")
    lines = g.list_invoice_lines(inv["id"])
    assert [(line["amount"], line["metadata"]) for line in lines] == [
        (1000, {"tally_item_key": "a"})
    ]
    assert lines[0]["period"] == {"start": 1767225600, "end": 1769904000}
    final = g.finalize_invoice(inv["id"], {"auto_advance": True}, idempotency_key="f")
    assert (final["status"], final["total"], final["auto_advance"]) == ("open", 1000, True)
    with pytest.raises(StripeCallError, match="already finalized"):
        g.finalize_invoice(inv["id"], {}, idempotency_key="f2")
    with pytest.raises(StripeCallError, match="draft invoices"):
        g.create_invoice_item({**base, "amount": 5}, idempotency_key="i3")


def test_zero_total_invoice_is_paid_on_finalize(fake_stripe: FakeStripeServer) -> None:
    g = gateway(fake_stripe)
    inv = draft(fake_stripe, g)
    final = g.finalize_invoice(inv["id"], {}, idempotency_key="f")
    assert (final["status"], final["total"]) == ("paid", 0)


def test_at_most_250_items_per_invoice(fake_stripe: FakeStripeServer) -> None:
    g = gateway(fake_stripe)
    inv = draft(fake_stripe, g)
    base = {"customer": inv["customer"], "invoice": inv["id"], "currency": "usd", "amount": 1}
    for n in range(250):
        g.create_invoice_item(base, idempotency_key=f"i{n}")
    with pytest.raises(StripeCallError, match="more than 250"):
        g.create_invoice_item(base, idempotency_key="i250")


def test_pending_items_are_not_swept_into_a_draft_by_default(fake_stripe: FakeStripeServer) -> None:
    g = gateway(fake_stripe)
    customer = fake_stripe.create_customer("acme")
    g.create_invoice_item(
        {"customer": customer, "amount": 7, "currency": "usd"}, idempotency_key="p"
    )
    excluded = g.create_invoice(
        {"customer": customer, "pending_invoice_items_behavior": "exclude"}, idempotency_key="a"
    )
    assert excluded["total"] == 0
    included = g.create_invoice(
        {"customer": customer, "pending_invoice_items_behavior": "include"}, idempotency_key="b"
    )
    assert included["total"] == 7


def test_requests_need_a_secret_or_restricted_key(fake_stripe: FakeStripeServer) -> None:
    r = httpx.get(
        fake_stripe.base_url + "/v1/invoices", headers={"Authorization": "Bearer pk_test_x"}
    )
    assert r.status_code == 401 and r.json()["error"]["type"] == "invalid_request_error"


def test_state_is_persisted_to_its_file(fake_stripe: FakeStripeServer) -> None:
    g = gateway(fake_stripe)
    inv = draft(fake_stripe, g)
    on_disk = json.loads(fake_stripe.state_file.read_text())
    assert inv["id"] in on_disk["objects"]["invoice"]
    assert "k-inv" in on_disk["idempotency"]


def test_sdk_objects_decode(fake_stripe: FakeStripeServer) -> None:
    c = client(fake_stripe)
    customer = c.v1.customers.create({"name": "x"})
    invoice = c.v1.invoices.create({"customer": customer.id, "currency": "usd"})
    assert isinstance(invoice, stripe.Invoice) and invoice.status == "draft"
    listed = c.v1.invoices.list({"customer": customer.id})
    assert [i.id for i in listed.data] == [invoice.id]
