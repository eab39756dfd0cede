"""Push finalized Tally invoices to Stripe, exactly once, resumably.

For each finalized invoice whose customer has a ``stripe_customer_id``:

1. ``invoice``: find or create the draft invoice (``auto_advance=false``,
   ``pending_invoice_items_behavior=exclude``, metadata ``tally_invoice_id``).
2. ``item:<key>``: find or create one invoice item per Tally line and per non-zero
   adjustment (see :mod:`billing_sync.payload`), attached with ``invoice=<draft id>``.
3. ``finalize``: read the draft back; finalize it only when its currency, total, items
   and line count are exactly the plan's.

Every request carries the deterministic idempotency key ``tally:<invoice id>:<step>``.
Every Stripe object id is committed to the sync ledger before the next request, so a
killed sync resumes at the first unrecorded step. An object that Stripe may hold
without the ledger knowing it (the process died after Stripe committed; the idempotency
key may have expired after 24 h) is looked up before anything is created: the
customer's invoices are listed and matched on ``metadata.tally_invoice_id`` (list
endpoints are read-after-write consistent, the search API is not), the draft's items
are listed and matched on ``metadata.tally_item_key``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from billing_sync.gateway import SdkStripeGateway, StripeCallError, StripeGateway
from billing_sync.ledger import (
    InvoiceSyncState,
    bump_generation,
    ensure_sync_ledger,
    load_states,
    record_object,
    record_outcome,
)
from billing_sync.payload import (
    FINALIZE_STEP,
    INVOICE_STEP,
    InvoicePlan,
    InvoiceRefused,
    ItemSpec,
    build_plan,
    idempotency_key,
)
from billing_sync.settings import StripeSettings
from billing_sync.warehouse import load_finalized_invoices

logger = logging.getLogger(__name__)

# Stop the run (everything left stays pending) after this many invoices in a row failed
# for transient reasons: Stripe is down or unreachable, more retries would only wait.
MAX_CONSECUTIVE_TRANSIENT_FAILURES = 3
FINALIZED_STATUSES = frozenset({"open", "paid", "uncollectible"})


class SyncFailure(Exception):
    def __init__(self, step: str, reason: str, *, transient: bool, fatal: bool = False) -> None:
        self.step = step
        self.reason = reason
        self.transient = transient
        self.fatal = fatal  # the key is rejected: every other invoice would fail the same way
        super().__init__(f"{step}: {reason}")


@dataclass
class RefusedInvoice:
    invoice_id: str
    customer_id: str
    reason: str


@dataclass
class FailedInvoice:
    invoice_id: str
    step: str
    reason: str
    transient: bool


@dataclass
class SyncReport:
    created: int = 0  # invoices finalized in Stripe by this run
    already_synced: int = 0
    failed: int = 0
    refused: list[RefusedInvoice] = field(default_factory=list)
    failures: list[FailedInvoice] = field(default_factory=list)
    resumed: int = 0  # of `created`: invoices this run finished after an earlier run began them
    skipped_no_stripe_customer: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # not attempted (run aborted)
    planned: list[dict[str, Any]] = field(default_factory=list)  # dry run only
    dry_run: bool = False
    aborted: str | None = None
    stripe_requests: int = 0
    stripe_retries: int = 0

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.aborted is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(row and row[0][0])


def sync_finalized_invoices(
    con: duckdb.DuckDBPyConnection,
    client_settings: StripeSettings,
    *,
    dry_run: bool = False,
    gateway: StripeGateway | None = None,
) -> SyncReport:
    """Sync every finalized invoice not yet finalized in Stripe; see the module doc.

    ``dry_run`` sends nothing and writes nothing: the report's ``planned`` lists each
    invoice that would be sent (items, Stripe amounts) and ``refused`` what would not.
    """
    report = SyncReport(dry_run=dry_run)
    if not dry_run:
        ensure_sync_ledger(con)
    invoices = load_finalized_invoices(con)
    ids = [inv.invoice_id for inv in invoices]
    states = (
        load_states(con, ids)
        if _table_exists(con, "ledger", "stripe_sync_objects")
        else {i: InvoiceSyncState(i) for i in ids}
    )
    if not dry_run and gateway is None:
        gateway = SdkStripeGateway(client_settings)
    session = _Session(con, gateway, client_settings) if gateway is not None else None
    consecutive_transient = 0

    for invoice in invoices:
        state = states[invoice.invoice_id]
        if not invoice.stripe_customer_id:
            report.skipped_no_stripe_customer.append(invoice.invoice_id)
            continue
        if state.finalized:
            report.already_synced += 1
            if not dry_run and (state.last_outcome or ("",))[0] != "synced":
                record_outcome(
                    con,
                    state,
                    outcome="synced",
                    reason=None,
                    stripe_invoice_id=state.stripe_invoice_id,
                )
            continue
        try:
            plan = build_plan(invoice)
        except InvoiceRefused as refusal:
            report.refused.append(
                RefusedInvoice(invoice.invoice_id, invoice.customer_id, refusal.reason)
            )
            if not dry_run:
                record_outcome(
                    con, state, outcome="refused", reason=refusal.reason, stripe_invoice_id=None
                )
            continue
        if dry_run:
            report.planned.append(_plan_summary(plan, state))
            continue
        if report.aborted:
            report.pending.append(invoice.invoice_id)
            continue
        assert session is not None
        began_before = bool(state.objects)
        try:
            stripe_invoice_id = session.sync_invoice(plan, state)
        except SyncFailure as failure:
            report.failed += 1
            report.failures.append(
                FailedInvoice(invoice.invoice_id, failure.step, failure.reason, failure.transient)
            )
            logger.warning(
                "Stripe sync of %s failed at %s: %s",
                invoice.invoice_id,
                failure.step,
                failure.reason,
            )
            record_outcome(
                con,
                state,
                outcome="failed",
                reason=failure.reason,
                stripe_invoice_id=state.stripe_invoice_id,
                detail={"step": failure.step, "transient": failure.transient},
            )
            consecutive_transient = consecutive_transient + 1 if failure.transient else 0
            if failure.fatal:
                report.aborted = f"Stripe rejected the API key or its permissions: {failure.reason}"
            elif consecutive_transient >= MAX_CONSECUTIVE_TRANSIENT_FAILURES:
                report.aborted = (
                    f"stopped after {consecutive_transient} invoices in a row failed with "
                    f"transient Stripe errors (last: {failure.reason})"
                )
            continue
        consecutive_transient = 0
        report.created += 1
        report.resumed += int(began_before)
        record_outcome(
            con, state, outcome="synced", reason=None, stripe_invoice_id=stripe_invoice_id
        )

    if isinstance(gateway, SdkStripeGateway):
        report.stripe_requests = gateway.requests_sent
        report.stripe_retries = gateway.retries
    return report


def _plan_summary(plan: InvoicePlan, state: InvoiceSyncState) -> dict[str, Any]:
    return {
        "invoice_id": plan.invoice_id,
        "stripe_customer_id": plan.stripe_customer_id,
        "currency": plan.currency,
        "total_minor": plan.expected_total_minor,
        "items": [
            {"item_key": i.item_key, "amount_minor": i.amount_minor, "description": i.description}
            for i in plan.items
        ],
        "already_recorded_steps": sorted(state.objects),
    }


class _Session:
    """One sync run: the gateway, per-run caches, and the per-invoice state machine."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, gateway: StripeGateway, settings: StripeSettings
    ) -> None:
        self.con = con
        self.gateway = gateway
        self.settings = settings
        self._customer_checked: dict[str, str | None] = {}
        self._invoice_listing: dict[str, list[dict[str, Any]]] = {}

    # -- entry --------------------------------------------------------------------

    def sync_invoice(self, plan: InvoicePlan, state: InvoiceSyncState) -> str:
        step = "customer"
        try:
            self._check_customer(plan.stripe_customer_id)
            step = INVOICE_STEP
            stripe_invoice_id, created_now = self._ensure_invoice(plan, state)
            step = "items"
            self._ensure_items(plan, state, stripe_invoice_id, created_now)
            step = FINALIZE_STEP
            self._finalize(plan, state, stripe_invoice_id)
            return stripe_invoice_id
        except StripeCallError as exc:
            transient = (
                exc.http_status is None or exc.http_status in (409, 429) or (exc.http_status >= 500)
            )
            fatal = exc.http_status in (401, 403)
            raise SyncFailure(step, str(exc), transient=transient, fatal=fatal) from None

    # -- steps --------------------------------------------------------------------

    def _check_customer(self, customer_id: str) -> None:
        if customer_id not in self._customer_checked:
            problem: str | None = None
            try:
                customer = self.gateway.retrieve_customer(customer_id)
                if customer.get("deleted"):
                    problem = f"Stripe customer {customer_id} is deleted"
            except StripeCallError as exc:
                if not exc.not_found:
                    raise
                problem = f"Stripe customer {customer_id} does not exist ({exc.message})"
            self._customer_checked[customer_id] = problem
        problem = self._customer_checked[customer_id]
        if problem:
            raise SyncFailure("customer", problem, transient=False)

    def _lookup_invoice(self, plan: InvoicePlan, *, fresh: bool) -> dict[str, Any] | None:
        customer = plan.stripe_customer_id
        if fresh or customer not in self._invoice_listing:
            self._invoice_listing[customer] = self.gateway.list_invoices(customer)
        matches = [
            inv
            for inv in self._invoice_listing[customer]
            if (inv.get("metadata") or {}).get("tally_invoice_id") == plan.invoice_id
        ]
        if len(matches) > 1:
            ids = ", ".join(sorted(m["id"] for m in matches))
            raise SyncFailure(
                INVOICE_STEP,
                f"Stripe holds {len(matches)} invoices for Tally invoice {plan.invoice_id} "
                f"({ids}); resolve by hand (void all but one) before syncing again",
                transient=False,
            )
        if not matches:
            return None
        found = matches[0]
        meta = found.get("metadata") or {}
        if meta.get("tally_content_sha256") != plan.invoice.content_sha256:
            raise SyncFailure(
                INVOICE_STEP,
                f"Stripe invoice {found['id']} carries Tally invoice {plan.invoice_id} with "
                f"content {meta.get('tally_content_sha256')!r}, the ledger has "
                f"{plan.invoice.content_sha256!r}",
                transient=False,
            )
        if str(found.get("currency", "")).lower() != plan.currency:
            raise SyncFailure(
                INVOICE_STEP,
                f"Stripe invoice {found['id']} is in {found.get('currency')}, "
                f"Tally invoice {plan.invoice_id} in {plan.currency}",
                transient=False,
            )
        return found

    def _create(
        self,
        plan: InvoicePlan,
        state: InvoiceSyncState,
        step: str,
        create: Callable[[str], dict[str, Any]],
        lookup: Callable[[], dict[str, Any] | None],
    ) -> tuple[dict[str, Any], str, str | None]:
        """Create with the step's key; on an uncertain outcome, look up before retrying."""
        for _ in range(3):
            key = idempotency_key(plan.invoice_id, step, state.generations.get(step, 0))
            try:
                obj = create(key)
            except StripeCallError as exc:
                if not (exc.indeterminate or exc.is_idempotency_error):
                    raise
                found = lookup()
                if found is not None:
                    return found, "found_by_lookup", None
                if exc.retryable:
                    raise  # transient, outcome unknown and not found: same key next run
                bump_generation(
                    self.con,
                    state,
                    step,
                    f"{exc.operation} answered {exc} for key {key} and no such object exists",
                )
                continue
            return obj, ("replayed" if self.gateway.last_replayed else "created"), key
        raise SyncFailure(step, "gave up after 3 idempotency key generations", transient=False)

    def _ensure_invoice(self, plan: InvoicePlan, state: InvoiceSyncState) -> tuple[str, bool]:
        if state.stripe_invoice_id:
            return state.stripe_invoice_id, False
        found = self._lookup_invoice(plan, fresh=False)
        source: str
        key: str | None
        if found is not None:
            obj, source, key = found, "found_by_lookup", None
        else:
            params = plan.invoice_params(self.settings)
            obj, source, key = self._create(
                plan,
                state,
                INVOICE_STEP,
                lambda k: self.gateway.create_invoice(params, idempotency_key=k),
                lambda: self._lookup_invoice(plan, fresh=True),
            )
        record_object(
            self.con,
            state,
            step=INVOICE_STEP,
            stripe_object_id=obj["id"],
            idempotency_key=key,
            source=source,
            amount_minor=None,
            action="stripe.create_invoice",
            detail={"stripe_customer_id": plan.stripe_customer_id, "currency": plan.currency},
        )
        # Only a draft this very request created is known to have no items yet.
        return obj["id"], source == "created"

    def _items_by_key(self, stripe_invoice_id: str) -> dict[str, list[dict[str, Any]]]:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for item in self.gateway.list_invoice_items(invoice_id=stripe_invoice_id):
            key = (item.get("metadata") or {}).get("tally_item_key")
            if key:
                by_key.setdefault(key, []).append(item)
        return by_key

    def _match_item(
        self, plan: InvoicePlan, spec: ItemSpec, candidates: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        if not candidates:
            return None
        if len(candidates) > 1:
            raise SyncFailure(
                spec.step,
                f"Stripe holds {len(candidates)} invoice items for {spec.item_key} of "
                f"{plan.invoice_id}; resolve by hand",
                transient=False,
            )
        item = candidates[0]
        if (
            item.get("amount") != spec.amount_minor
            or str(item.get("currency")).lower() != plan.currency
        ):
            raise SyncFailure(
                spec.step,
                f"Stripe invoice item {item.get('id')} for {spec.item_key} of {plan.invoice_id} "
                f"is {item.get('amount')} {item.get('currency')}, expected "
                f"{spec.amount_minor} {plan.currency}",
                transient=False,
            )
        return item

    def _ensure_items(
        self, plan: InvoicePlan, state: InvoiceSyncState, stripe_invoice_id: str, created_now: bool
    ) -> None:
        missing = [spec for spec in plan.items if spec.step not in state.objects]
        if not missing:
            return
        existing: dict[str, list[dict[str, Any]]] = {}
        if not created_now:
            existing = self._items_by_key(stripe_invoice_id)
        for spec in missing:
            found = self._match_item(plan, spec, existing.get(spec.item_key, []))
            if found is not None:
                obj, source, key = found, "found_by_lookup", None
            else:
                params = plan.item_params(spec, stripe_invoice_id)
                obj, source, key = self._create(
                    plan,
                    state,
                    spec.step,
                    lambda k, p=params: self.gateway.create_invoice_item(p, idempotency_key=k),
                    lambda s=spec: self._match_item(
                        plan, s, self._items_by_key(stripe_invoice_id).get(s.item_key, [])
                    ),
                )
            record_object(
                self.con,
                state,
                step=spec.step,
                stripe_object_id=obj["id"],
                idempotency_key=key,
                source=source,
                amount_minor=spec.amount_minor,
                action="stripe.create_invoice_item",
                detail={
                    "stripe_invoice_id": stripe_invoice_id,
                    "item_key": spec.item_key,
                    "amount_minor": spec.amount_minor,
                    "currency": plan.currency,
                },
            )

    def _verify_draft(self, plan: InvoicePlan, invoice: dict[str, Any]) -> None:
        problems = []
        if str(invoice.get("currency", "")).lower() != plan.currency:
            problems.append(f"currency {invoice.get('currency')} != {plan.currency}")
        if invoice.get("total") != plan.expected_total_minor:
            problems.append(f"total {invoice.get('total')} != {plan.expected_total_minor}")
        items = self._items_by_key(invoice["id"])
        expected = plan.item_by_key()
        extra = sorted(set(items) - set(expected))
        absent = sorted(set(expected) - set(items))
        if extra:
            problems.append(f"unexpected items {extra}")
        if absent:
            problems.append(f"missing items {absent}")
        for key, found in items.items():
            if key in expected and (
                len(found) != 1 or found[0].get("amount") != expected[key].amount_minor
            ):
                problems.append(f"item {key} is {[f.get('amount') for f in found]}")
        line_count = len(self.gateway.list_invoice_lines(invoice["id"]))
        if line_count != len(plan.items):
            problems.append(f"{line_count} lines != {len(plan.items)}")
        if problems:
            raise SyncFailure(
                FINALIZE_STEP,
                f"draft {invoice['id']} does not match Tally invoice {plan.invoice_id} "
                f"({'; '.join(problems)}): not finalized",
                transient=False,
            )

    def _finalize(self, plan: InvoicePlan, state: InvoiceSyncState, stripe_invoice_id: str) -> None:
        if state.finalized:
            return
        current = self.gateway.retrieve_invoice(stripe_invoice_id)
        status = current.get("status")
        key: str | None = None
        if status == "draft":
            self._verify_draft(plan, current)

            def lookup() -> dict[str, Any] | None:
                again = self.gateway.retrieve_invoice(stripe_invoice_id)
                return again if again.get("status") in FINALIZED_STATUSES else None

            params = plan.finalize_params(self.settings)
            try:
                final, source, key = self._create(
                    plan,
                    state,
                    FINALIZE_STEP,
                    lambda k: self.gateway.finalize_invoice(
                        stripe_invoice_id, params, idempotency_key=k
                    ),
                    lookup,
                )
            except StripeCallError as exc:
                # e.g. 400 "already finalized" once the key expired: believe Stripe's state.
                final_found = lookup() if exc.http_status == 400 else None
                if final_found is None:
                    raise
                final, source, key = final_found, "found_by_lookup", None
        elif status in FINALIZED_STATUSES:
            final, source = current, "found_by_lookup"
        else:
            raise SyncFailure(
                FINALIZE_STEP,
                f"Stripe invoice {stripe_invoice_id} is {status!r}; a human must decide",
                transient=False,
            )
        record_object(
            self.con,
            state,
            step=FINALIZE_STEP,
            stripe_object_id=stripe_invoice_id,
            idempotency_key=key,
            source=source,
            amount_minor=final.get("total"),
            action="stripe.finalize_invoice",
            detail={
                "status": final.get("status"),
                "total_minor": final.get("total"),
                "expected_total_minor": plan.expected_total_minor,
                "currency": final.get("currency"),
            },
        )
