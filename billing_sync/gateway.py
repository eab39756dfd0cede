"""The Stripe calls billing sync makes, behind a small Protocol.

:class:`SdkStripeGateway` goes through the official ``stripe`` SDK (``StripeClient``)
with the SDK's own retries switched off, so that this module alone decides about
retries: every request waits for the client-side :class:`~billing_sync.ratelimit.RequestPacer`,
and 429, 409, 5xx and connection errors are retried with capped exponential backoff
and jitter, *with the same idempotency key*. A 5xx that Stripe replays for an
idempotency key (``Idempotent-Replayed: true``, or ``Stripe-Should-Retry: false``) is not
retried: the same key would only replay it again; the caller decides (lookup, then a
new key generation).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import stripe

from billing_sync import faults
from billing_sync.ratelimit import RequestPacer
from billing_sync.settings import StripeSettings

PAGE_SIZE = 100


class StripeCallError(Exception):
    """A Stripe request that failed for good (after retries, when retrying made sense)."""

    def __init__(
        self,
        operation: str,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        replayed: bool = False,
        should_retry: bool | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.operation = operation
        self.message = message
        self.http_status = http_status
        self.code = code
        self.error_type = error_type
        self.replayed = replayed
        self.should_retry = should_retry
        self.request_id = request_id
        self.retry_after = retry_after
        status = "connection error" if http_status is None else f"HTTP {http_status}"
        super().__init__(f"Stripe {operation}: {status}: {message}")

    @property
    def retryable(self) -> bool:
        """Worth sending again with the same idempotency key."""
        if self.should_retry is False or self.replayed:
            return False
        if self.should_retry is True:
            return True
        return (
            self.http_status is None or self.http_status in (409, 429) or (self.http_status >= 500)
        )

    @property
    def indeterminate(self) -> bool:
        """A write that may or may not have happened in Stripe."""
        return self.http_status is None or self.http_status >= 500

    @property
    def is_idempotency_error(self) -> bool:
        return self.error_type == "idempotency_error"

    @property
    def not_found(self) -> bool:
        return self.http_status == 404


class StripeGateway(Protocol):
    """The Stripe operations billing sync needs; results are plain dicts."""

    last_replayed: bool

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]: ...

    def create_invoice(self, params: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]: ...

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]: ...

    def list_invoices(self, customer_id: str) -> list[dict[str, Any]]: ...

    def create_invoice_item(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]: ...

    def list_invoice_items(
        self, *, invoice_id: str | None = None, customer_id: str | None = None
    ) -> list[dict[str, Any]]: ...

    def list_invoice_lines(self, invoice_id: str) -> list[dict[str, Any]]: ...

    def finalize_invoice(
        self, invoice_id: str, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]: ...


def _lower_headers(headers: Any) -> dict[str, str]:
    if not headers:
        return {}
    return {str(k).lower(): str(v) for k, v in dict(headers).items()}


class SdkStripeGateway:
    """StripeGateway over the official SDK, paced and retried."""

    def __init__(
        self,
        settings: StripeSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        pacer: RequestPacer | None = None,
    ) -> None:
        self.settings = settings
        base_addresses: dict[str, str | None] = {}
        if settings.api_base:
            base_addresses = {"api": settings.api_base}
        self._client = stripe.StripeClient(
            settings.api_key.get_secret_value(),
            base_addresses=base_addresses,  # type: ignore[arg-type]
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=settings.request_timeout_seconds),
        )
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.pacer = pacer or RequestPacer(settings.max_requests_per_second)
        self.requests_sent = 0
        self.retries = 0
        self.last_replayed = False

    # -- plumbing -----------------------------------------------------------------

    def _error(self, operation: str, exc: stripe.StripeError) -> StripeCallError:
        headers = _lower_headers(getattr(exc, "headers", None))
        body = getattr(exc, "json_body", None) or {}
        err = body.get("error", {}) if isinstance(body, dict) else {}
        should = headers.get("stripe-should-retry")
        retry_after: float | None
        try:
            retry_after = float(headers["retry-after"]) if "retry-after" in headers else None
        except ValueError:
            retry_after = None
        http_status = getattr(exc, "http_status", None)
        if isinstance(exc, stripe.APIConnectionError):
            http_status = None
        return StripeCallError(
            operation,
            (err.get("message") if isinstance(err, dict) else None) or exc.user_message or str(exc),
            http_status=http_status,
            code=getattr(exc, "code", None) or (err.get("code") if isinstance(err, dict) else None),
            error_type=err.get("type") if isinstance(err, dict) else None,
            replayed=headers.get("idempotent-replayed") == "true",
            should_retry=None if should is None else should == "true",
            request_id=headers.get("request-id"),
            retry_after=retry_after,
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        base = self.settings.retry_base_delay_seconds * (2 ** (attempt - 1))
        delay = min(self.settings.retry_max_delay_seconds, base) * self._rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 60.0))
        return delay

    def _call(self, operation: str, fn: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            self.pacer.acquire()
            faults.checkpoint("before_request")
            self.requests_sent += 1
            try:
                result = fn()
            except stripe.StripeError as exc:
                faults.checkpoint("after_response")
                err = self._error(operation, exc)
                if err.retryable and attempt < self.settings.max_retries:
                    attempt += 1
                    self.retries += 1
                    self._sleep(self._backoff(attempt, err.retry_after))
                    continue
                raise err from None
            faults.checkpoint("after_response")
            response = getattr(result, "last_response", None)
            headers = _lower_headers(getattr(response, "headers", None))
            self.last_replayed = headers.get("idempotent-replayed") == "true"
            return result

    def _list_all(self, operation: str, fetch: Callable[[dict[str, Any]], Any]) -> list[Any]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        while True:
            page = self._call(operation, lambda p=dict(params): fetch(p))
            data = [obj.to_dict() for obj in page.data]
            out.extend(data)
            if not page.has_more or not data:
                return out
            params["starting_after"] = data[-1]["id"]

    # -- operations ---------------------------------------------------------------

    def retrieve_customer(self, customer_id: str) -> dict[str, Any]:
        obj = self._call(
            "retrieve customer", lambda: self._client.v1.customers.retrieve(customer_id)
        )
        return dict(obj.to_dict())

    def create_invoice(self, params: dict[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        obj = self._call(
            "create invoice",
            lambda: self._client.v1.invoices.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            ),
        )
        return dict(obj.to_dict())

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        obj = self._call("retrieve invoice", lambda: self._client.v1.invoices.retrieve(invoice_id))
        return dict(obj.to_dict())

    def list_invoices(self, customer_id: str) -> list[dict[str, Any]]:
        return self._list_all(
            "list invoices",
            lambda p: self._client.v1.invoices.list({**p, "customer": customer_id}),  # type: ignore[arg-type, typeddict-item]
        )

    def create_invoice_item(
        self, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        obj = self._call(
            "create invoice item",
            lambda: self._client.v1.invoice_items.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            ),
        )
        return dict(obj.to_dict())

    def list_invoice_items(
        self, *, invoice_id: str | None = None, customer_id: str | None = None
    ) -> list[dict[str, Any]]:
        filters: dict[str, Any] = {}
        if invoice_id is not None:
            filters["invoice"] = invoice_id
        if customer_id is not None:
            filters["customer"] = customer_id
        return self._list_all(
            "list invoice items",
            lambda p: self._client.v1.invoice_items.list({**p, **filters}),  # type: ignore[arg-type]
        )

    def list_invoice_lines(self, invoice_id: str) -> list[dict[str, Any]]:
        return self._list_all(
            "list invoice lines",
            lambda p: self._client.v1.invoices.line_items.list(invoice_id, p),  # type: ignore[arg-type]
        )

    def finalize_invoice(
        self, invoice_id: str, params: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        obj = self._call(
            "finalize invoice",
            lambda: self._client.v1.invoices.finalize_invoice(
                invoice_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            ),
        )
        return dict(obj.to_dict())
