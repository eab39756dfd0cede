"""A small Stripe-compatible API server for tests (FastAPI + uvicorn, loopback only).

It implements the part of Stripe's v1 API that billing sync uses and that localstripe
lacks (one-off invoices, ``invoice=`` on invoice items, finalize, idempotency keys), with
Stripe's documented semantics:

* Form-encoded request bodies (``metadata[k]=v``, ``period[start]=...``), JSON responses,
  Stripe's error shape ``{"error": {"type", "code", "message", "param"}}``, bearer auth
  with ``sk_``/``rk_`` keys.
* Idempotency (https://docs.stripe.com/api/idempotent_requests): the status and body of
  the first POST with a key are saved once the endpoint starts executing and replayed
  for the same key and parameters (``Idempotent-Replayed: true``), 500s included; the
  same key with other parameters is a 400 ``idempotency_error``. Requests rejected before
  execution (401, 429 rate limits) are not saved.
* Invoices: draft → ``finalize`` → ``open`` (``paid`` when the total is 0); items only
  on drafts, in the invoice's currency, at most 250 per invoice; lists newest first with
  ``limit``/``starting_after``/``has_more``.

Faults for tests, set through ``POST /_test/config`` (JSON): rules that hit the n-th
matching request, random faults from a seeded RNG, a server-side rate limit, and totals
reported wrong for chosen invoices. Fault actions: ``429`` (rejected, not saved),
``500_before_commit`` (nothing done, the 500 is saved for the key), ``500_after_commit``
(done, the 500 is saved), ``drop_after_commit`` (done, success saved, connection cut
mid-response), ``drop_before`` (nothing done, connection cut).

State (objects, idempotency records, counters) is written to ``--state-file`` after
every request, so it survives clients being killed and can be inspected; requests are
appended to ``--log-file`` (JSON lines).

Run: ``python fake_stripe_server.py --port 8765 --state-file s.json --log-file r.jsonl``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

MAX_ITEMS_PER_INVOICE = 250
FINALIZED = ("open", "paid", "uncollectible")


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        self.status = status
        self.body: dict[str, Any] = {"error": {"type": type_, "message": message}}
        if code:
            self.body["error"]["code"] = code
        if param:
            self.body["error"]["param"] = param
        super().__init__(message)


def parse_form(body: bytes) -> dict[str, Any]:
    """Stripe's form encoding (``a[b][c]=v``, ``a[0]=v``) into nested dicts/lists."""
    out: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+|\[\]", raw_key)
        if not parts:
            continue
        node = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})

    def listify(value: Any) -> Any:
        if isinstance(value, dict):
            fixed = {k: listify(v) for k, v in value.items()}
            if fixed and all(k.isdigit() for k in fixed):
                return [fixed[k] for k in sorted(fixed, key=int)]
            return fixed
        return value

    return listify(out)


def _int(params: dict[str, Any], name: str, *, required: bool = False) -> int | None:
    if name not in params:
        if required:
            raise StripeError(
                400, f"Missing required param: {name}.", code="parameter_missing", param=name
            )
        return None
    try:
        return int(params[name])
    except (TypeError, ValueError):
        raise StripeError(
            400, f"Invalid integer: {params[name]}", code="parameter_invalid_integer", param=name
        ) from None


def _bool(params: dict[str, Any], name: str) -> bool | None:
    if name not in params:
        return None
    value = params[name]
    if value not in ("true", "false"):
        raise StripeError(400, f"Invalid boolean: {value}", param=name)
    return value == "true"


def _only(params: dict[str, Any], allowed: set[str]) -> None:
    for key in params:
        if key not in allowed:
            raise StripeError(
                400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key
            )


def _metadata(params: dict[str, Any]) -> dict[str, str]:
    meta = params.get("metadata") or {}
    if not isinstance(meta, dict):
        raise StripeError(400, "Invalid metadata", param="metadata")
    out = {}
    for key, value in meta.items():
        if len(key) > 40 or len(str(value)) > 500:
            raise StripeError(400, f"Metadata key or value too long: {key}", param="metadata")
        if value != "":
            out[key] = str(value)
    return out


class FakeStripe:
    def __init__(self, state_file: Path, log_file: Path) -> None:
        self.state_file = state_file
        self.log_file = log_file
        self.lock = asyncio.Lock()
        self.recent: deque[float] = deque()
        self.rng = random.Random(0)
        self.state: dict[str, Any] = self._empty()
        if state_file.exists():
            self.state = json.loads(state_file.read_text())
        self._reseed()

    @staticmethod
    def _empty() -> dict[str, Any]:
        return {
            "seq": 0,
            "objects": {"customer": {}, "invoice": {}, "invoiceitem": {}},
            "idempotency": {},
            "config": {},
            "rule_counts": {},
            "stats": {
                "requests": 0,
                "by_status": {},
                "rate_limited": 0,
                "injected": {},
                "replays": 0,
                "executed_posts": 0,
                "created": {},
            },
        }

    def _reseed(self) -> None:
        seed = (self.state.get("config", {}).get("random") or {}).get("seed", 0)
        self.rng = random.Random(seed)

    def save(self) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.state_file)

    def log(self, entry: dict[str, Any]) -> None:
        with self.log_file.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    # -- objects ------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        self.state["seq"] += 1
        return f"{prefix}_{self.state['seq']:08d}{self.rng.getrandbits(32):08x}"

    def _store(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.state["objects"][kind]

    def get(self, kind: str, oid: str, label: str) -> dict[str, Any]:
        obj = self._store(kind).get(oid)
        if obj is None:
            raise StripeError(404, f"No such {label}: '{oid}'", code="resource_missing", param="id")
        return obj

    def _created(self, kind: str) -> None:
        created = self.state["stats"]["created"]
        created[kind] = created.get(kind, 0) + 1

    def invoice_view(self, inv: dict[str, Any]) -> dict[str, Any]:
        items = [self._store("invoiceitem")[i] for i in inv["_items"]]
        lines = [self.line_view(item) for item in items]
        total = sum(item["amount"] for item in items)
        wrong = (self.state["config"].get("wrong_total") or {}).get(
            inv["metadata"].get("tally_invoice_id", ""), 0
        )
        total += int(wrong)
        view = {k: v for k, v in inv.items() if not k.startswith("_")}
        view.update(
            subtotal=total,
            total=total,
            amount_due=max(total, 0),
            amount_remaining=0 if inv["status"] == "paid" else max(total, 0),
            amount_paid=max(total, 0) if inv["status"] == "paid" else 0,
            lines={
                "object": "list",
                "data": lines[:10],
                "has_more": len(lines) > 10,
                "total_count": len(lines),
                "url": f"/v1/invoices/{inv['id']}/lines",
            },
        )
        return view

    @staticmethod
    def line_view(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "il_" + item["id"][3:],
            "object": "line_item",
            "invoice": item["invoice"],
            "amount": item["amount"],
            "currency": item["currency"],
            "description": item["description"],
            "metadata": dict(item["metadata"]),
            "period": dict(item["period"]),
            "quantity": 1,
            "livemode": False,
            "parent": {
                "type": "invoice_item_details",
                "invoice_item_details": {"invoice_item": item["id"], "invoice": item["invoice"]},
            },
        }

    @staticmethod
    def page(objs: list[dict[str, Any]], query: dict[str, Any], url: str) -> dict[str, Any]:
        limit = int(query.get("limit", 10))
        if not 1 <= limit <= 100:
            raise StripeError(400, "limit must be between 1 and 100", param="limit")
        after = query.get("starting_after")
        if after:
            ids = [o["id"] for o in objs]
            if after not in ids:
                raise StripeError(
                    400, f"starting_after {after} not in list", param="starting_after"
                )
            objs = objs[ids.index(after) + 1 :]
        return {"object": "list", "data": objs[:limit], "has_more": len(objs) > limit, "url": url}

    def newest_first(self, kind: str) -> list[dict[str, Any]]:
        return sorted(self._store(kind).values(), key=lambda o: o["_seq"], reverse=True)

    # -- endpoints ----------------------------------------------------------------

    def create_customer(self, p: dict[str, Any]) -> dict[str, Any]:
        _only(p, {"name", "email", "description", "metadata", "expand"})
        cid = self.new_id("cus")
        obj = {
            "id": cid,
            "object": "customer",
            "name": p.get("name"),
            "email": p.get("email"),
            "description": p.get("description"),
            "metadata": _metadata(p),
            "created": int(time.time()),
            "livemode": False,
            "_seq": self.state["seq"],
        }
        self._store("customer")[cid] = obj
        self._created("customer")
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def create_invoice(self, p: dict[str, Any]) -> dict[str, Any]:
        _only(
            p,
            {
                "customer",
                "currency",
                "auto_advance",
                "collection_method",
                "days_until_due",
                "description",
                "metadata",
                "pending_invoice_items_behavior",
                "expand",
            },
        )
        if "customer" not in p:
            raise StripeError(
                400, "Missing required param: customer.", code="parameter_missing", param="customer"
            )
        self.get("customer", p["customer"], "customer")
        method = p.get("collection_method", "charge_automatically")
        if method not in ("charge_automatically", "send_invoice"):
            raise StripeError(
                400, f"Invalid collection_method: {method}", param="collection_method"
            )
        days = _int(p, "days_until_due")
        if method == "send_invoice" and days is None:
            raise StripeError(
                400,
                "Invoices with collection_method=send_invoice need days_until_due or due_date.",
                param="days_until_due",
            )
        behavior = p.get("pending_invoice_items_behavior", "exclude")
        if behavior not in ("exclude", "include"):
            raise StripeError(400, f"Invalid pending_invoice_items_behavior: {behavior}")
        iid = self.new_id("in")
        inv = {
            "id": iid,
            "object": "invoice",
            "customer": p["customer"],
            "currency": p.get("currency", "usd").lower(),
            "status": "draft",
            "auto_advance": bool(_bool(p, "auto_advance")),
            "collection_method": method,
            "days_until_due": days,
            "description": p.get("description"),
            "metadata": _metadata(p),
            "number": None,
            "created": int(time.time()),
            "livemode": False,
            "status_transitions": {"finalized_at": None},
            "_items": [],
            "_seq": self.state["seq"],
        }
        self._store("invoice")[iid] = inv
        if behavior == "include":
            for item in self.newest_first("invoiceitem"):
                if item["customer"] == p["customer"] and item["invoice"] is None:
                    item["invoice"] = iid
                    inv["_items"].append(item["id"])
        self._created("invoice")
        return self.invoice_view(inv)

    def create_invoice_item(self, p: dict[str, Any]) -> dict[str, Any]:
        _only(
            p,
            {
                "customer",
                "invoice",
                "amount",
                "currency",
                "description",
                "metadata",
                "period",
                "expand",
            },
        )
        if "customer" not in p:
            raise StripeError(
                400, "Missing required param: customer.", code="parameter_missing", param="customer"
            )
        self.get("customer", p["customer"], "customer")
        amount = _int(p, "amount", required=True)
        if "currency" not in p:
            raise StripeError(
                400, "Missing required param: currency.", code="parameter_missing", param="currency"
            )
        currency = str(p["currency"]).lower()
        period = p.get("period") or {}
        start = int(period.get("start", int(time.time())))
        end = int(period.get("end", start))
        if end < start:
            raise StripeError(400, "period[end] must be after period[start]", param="period")
        invoice_id = p.get("invoice")
        inv = None
        if invoice_id:
            inv = self.get("invoice", invoice_id, "invoice")
            if inv["status"] != "draft":
                raise StripeError(
                    400,
                    f"You can only add invoice items to draft invoices "
                    f"({invoice_id} is {inv['status']}).",
                    code="invoice_not_editable",
                    param="invoice",
                )
            if inv["customer"] != p["customer"]:
                raise StripeError(400, "The invoice belongs to another customer.", param="invoice")
            if inv["currency"] != currency:
                raise StripeError(
                    400,
                    f"The currency {currency} does not match the invoice's {inv['currency']}.",
                    param="currency",
                )
            if len(inv["_items"]) >= MAX_ITEMS_PER_INVOICE:
                raise StripeError(
                    400,
                    "You can't add more than 250 invoice items to an invoice.",
                    code="invoice_too_many_items",
                    param="invoice",
                )
        iid = self.new_id("ii")
        item = {
            "id": iid,
            "object": "invoiceitem",
            "customer": p["customer"],
            "invoice": invoice_id,
            "amount": amount,
            "currency": currency,
            "description": p.get("description"),
            "metadata": _metadata(p),
            "period": {"start": start, "end": end},
            "quantity": 1,
            "date": int(time.time()),
            "livemode": False,
            "_seq": self.state["seq"],
        }
        self._store("invoiceitem")[iid] = item
        if inv is not None:
            inv["_items"].append(iid)
        self._created("invoiceitem")
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def finalize_invoice(self, invoice_id: str, p: dict[str, Any]) -> dict[str, Any]:
        _only(p, {"auto_advance", "expand"})
        inv = self.get("invoice", invoice_id, "invoice")
        if inv["status"] != "draft":
            raise StripeError(
                400,
                "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
                code="invoice_not_editable",
            )
        total = sum(self._store("invoiceitem")[i]["amount"] for i in inv["_items"])
        inv["status"] = "paid" if total <= 0 else "open"
        inv["number"] = f"TALLY-{self.state['seq']:06d}"
        inv["status_transitions"]["finalized_at"] = int(time.time())
        auto = _bool(p, "auto_advance")
        if auto is not None:
            inv["auto_advance"] = auto
        self.state["stats"]["created"]["finalize"] = (
            self.state["stats"]["created"].get("finalize", 0) + 1
        )
        return self.invoice_view(inv)

    def route(self, method: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
        objs = self.state["objects"]
        if method == "POST" and path == "/v1/customers":
            return self.create_customer(params)
        if method == "GET" and (m := re.fullmatch(r"/v1/customers/([^/]+)", path)):
            obj = self.get("customer", m[1], "customer")
            return {k: v for k, v in obj.items() if not k.startswith("_")}
        if method == "POST" and path == "/v1/invoices":
            return self.create_invoice(params)
        if method == "GET" and path == "/v1/invoices":
            _only(params, {"customer", "limit", "starting_after", "status", "expand"})
            found = [
                i
                for i in self.newest_first("invoice")
                if ("customer" not in params or i["customer"] == params["customer"])
                and ("status" not in params or i["status"] == params["status"])
            ]
            return self.page([self.invoice_view(i) for i in found], params, "/v1/invoices")
        if method == "GET" and (m := re.fullmatch(r"/v1/invoices/([^/]+)/lines", path)):
            inv = self.get("invoice", m[1], "invoice")
            lines = [self.line_view(objs["invoiceitem"][i]) for i in inv["_items"]]
            return self.page(lines, params, path)
        if method == "GET" and (m := re.fullmatch(r"/v1/invoices/([^/]+)", path)):
            return self.invoice_view(self.get("invoice", m[1], "invoice"))
        if method == "POST" and (m := re.fullmatch(r"/v1/invoices/([^/]+)/finalize", path)):
            return self.finalize_invoice(m[1], params)
        if method == "POST" and path == "/v1/invoiceitems":
            return self.create_invoice_item(params)
        if method == "GET" and path == "/v1/invoiceitems":
            _only(params, {"customer", "invoice", "pending", "limit", "starting_after", "expand"})
            found = [
                {k: v for k, v in i.items() if not k.startswith("_")}
                for i in self.newest_first("invoiceitem")
                if ("customer" not in params or i["customer"] == params["customer"])
                and ("invoice" not in params or i["invoice"] == params["invoice"])
                and (
                    "pending" not in params
                    or (i["invoice"] is None) == (params["pending"] == "true")
                )
            ]
            return self.page(found, params, "/v1/invoiceitems")
        if method == "GET" and (m := re.fullmatch(r"/v1/invoiceitems/([^/]+)", path)):
            obj = self.get("invoiceitem", m[1], "invoice item")
            return {k: v for k, v in obj.items() if not k.startswith("_")}
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")

    # -- faults -------------------------------------------------------------------

    def pick_fault(self, method: str, path: str) -> str | None:
        config = self.state["config"]
        for index, rule in enumerate(config.get("faults") or []):
            if rule.get("method", method) != method or not re.fullmatch(
                rule.get("path", ".*"), path
            ):
                continue
            counts = self.state["rule_counts"]
            counts[str(index)] = counts.get(str(index), 0) + 1
            n = counts[str(index)]
            if n in (rule.get("nth") or []) or (rule.get("every") and n % int(rule["every"]) == 0):
                return str(rule["action"])
        rnd = config.get("random") or {}
        if method in rnd.get("methods", ["POST"]):
            roll = self.rng.random()
            for action, p in sorted((rnd.get("p") or {}).items()):
                if roll < p:
                    return action
                roll -= p
        return None

    def rate_limited(self) -> bool:
        limit = self.state["config"].get("rate_limit_per_second")
        now = time.monotonic()
        self.recent.append(now)
        while self.recent and self.recent[0] <= now - 1.0:
            self.recent.popleft()
        return bool(limit) and len(self.recent) > float(limit)


class DroppedResponse(Response):
    """Sends headers and half a body, then kills the connection."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
        raise ConnectionAbortedError("fake stripe: connection dropped on purpose")


def _authorized(request: Request) -> bool:
    header = request.headers.get("authorization", "")
    if not header.startswith("Bearer "):
        return False
    key = header[len("Bearer ") :]
    return key.startswith(("sk_test_", "rk_test_", "sk_live_", "rk_live_")) and len(key) > 8


def create_app(fake: FakeStripe) -> FastAPI:
    app = FastAPI(title="fake stripe", docs_url=None, redoc_url=None, openapi_url=None)

    def finish(entry: dict[str, Any], status: int, body: Any, headers: dict[str, str]) -> Response:
        stats = fake.state["stats"]
        stats["by_status"][str(status)] = stats["by_status"].get(str(status), 0) + 1
        entry["status"] = status
        if entry["method"] != "GET":  # reads change no object: no need to rewrite the file
            fake.save()
        fake.log(entry)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.get("/_test/state")
    async def test_state() -> Any:
        return fake.state

    @app.get("/_test/stats")
    async def test_stats() -> Any:
        return fake.state["stats"]

    @app.post("/_test/config")
    async def test_config(request: Request) -> Any:
        async with fake.lock:
            fake.state["config"] = await request.json()
            fake.state["rule_counts"] = {}
            fake._reseed()
            fake.save()
        return {"ok": True}

    @app.post("/_test/reset")
    async def test_reset() -> Any:
        async with fake.lock:
            fake.state = fake._empty()
            fake._reseed()
            fake.recent.clear()
            fake.save()
            fake.log_file.write_text("")
        return {"ok": True}

    @app.post("/_test/customers")
    async def test_customers(request: Request) -> Any:
        """Customers that already exist in the account, with their ids (a test's fixture data)."""
        async with fake.lock:
            for cid in (await request.json())["ids"]:
                fake.new_id("cus")  # keep the sequence moving like a real creation
                fake._store("customer")[cid] = {
                    "id": cid, "object": "customer", "name": None, "email": None, "description": None,
                    "metadata": {}, "created": int(time.time()), "livemode": False, "_seq": fake.state["seq"],
                }
            fake.save()
        return {"ok": True}

    @app.post("/_test/expire_idempotency_keys")
    async def test_expire() -> Any:
        async with fake.lock:
            dropped = len(fake.state["idempotency"])
            fake.state["idempotency"] = {}
            fake.save()
        return {"expired": dropped}

    @app.api_route("/v1/{rest:path}", methods=["GET", "POST", "DELETE"])
    async def api(request: Request, rest: str) -> Response:
        async with fake.lock:
            method = request.method
            path = "/v1/" + rest
            body = await request.body()
            params = (
                parse_form(body)
                if method == "POST"
                else parse_form(request.url.query.encode("utf-8"))
            )
            key = request.headers.get("idempotency-key") if method == "POST" else None
            fake.state["stats"]["requests"] += 1
            request_id = f"req_{fake.state['stats']['requests']:08d}"
            headers = {"Request-Id": request_id}
            entry: dict[str, Any] = {"t": time.time(), "method": method, "path": path, "key": key}
            if key:
                headers["Idempotency-Key"] = key
            if not _authorized(request):
                return finish(
                    entry,
                    401,
                    StripeError(
                        401, "Invalid API Key provided.", type_="invalid_request_error"
                    ).body,
                    headers,
                )
            if fake.rate_limited():
                fake.state["stats"]["rate_limited"] += 1
                entry["fault"] = "rate_limit"
                return finish(
                    entry,
                    429,
                    StripeError(429, "Request rate limit exceeded.", code="rate_limit").body,
                    headers,
                )
            fingerprint = json.dumps([method, path, params], sort_keys=True)
            if key and key in fake.state["idempotency"]:
                saved = fake.state["idempotency"][key]
                if saved["fingerprint"] != fingerprint:
                    entry["fault"] = "idempotency_mismatch"
                    return finish(
                        entry,
                        400,
                        StripeError(
                            400,
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type_="idempotency_error",
                        ).body,
                        headers,
                    )
                fake.state["stats"]["replays"] += 1
                entry["replayed"] = True
                headers["Idempotent-Replayed"] = "true"
                if saved["status"] >= 500:
                    headers["Stripe-Should-Retry"] = "false"
                return finish(entry, saved["status"], saved["body"], headers)
            fault = fake.pick_fault(method, path)
            if fault:
                entry["fault"] = fault
                injected = fake.state["stats"]["injected"]
                injected[fault] = injected.get(fault, 0) + 1
            if fault == "429":
                return finish(
                    entry,
                    429,
                    StripeError(429, "Too many requests (injected).", code="rate_limit").body,
                    headers,
                )
            if fault == "drop_before":
                fake.save()
                fake.log(entry | {"status": "dropped"})
                return DroppedResponse()
            api_error = StripeError(500, "An unknown error occurred (injected).", type_="api_error")
            if fault == "500_before_commit":
                status, out = 500, api_error.body
            else:
                try:
                    out = fake.route(method, path, params)
                    status = 200
                except StripeError as exc:
                    status, out = exc.status, exc.body
                if method == "POST" and status == 200:
                    fake.state["stats"]["executed_posts"] += 1
                if fault == "500_after_commit":
                    status, out = 500, api_error.body
            if key:
                fake.state["idempotency"][key] = {
                    "fingerprint": fingerprint,
                    "status": status,
                    "body": out,
                    "created": time.time(),
                }
            if fault == "drop_after_commit":
                fake.save()
                fake.log(entry | {"status": "dropped"})
                return DroppedResponse()
            return finish(entry, status, out, headers)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-file", type=Path, required=True)
    parser.add_argument("--log-file", type=Path, required=True)
    args = parser.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the fake Stripe server only listens on loopback")
    fake = FakeStripe(args.state_file, args.log_file)
    if not args.log_file.exists():
        args.log_file.write_text("")
    uvicorn.run(
        create_app(fake), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
