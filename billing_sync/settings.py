"""Stripe connection settings.

The API key comes from the ``STRIPE_API_KEY`` environment variable only, read when
:meth:`StripeSettings.from_env` is called (never at import, never from a file). It is
held as a :class:`pydantic.SecretStr`, so ``repr()``, ``str()`` and log lines show
``**********`` instead of the key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

logger = logging.getLogger(__name__)

# Stripe's documented basic rate limit is 100 operations/s in live mode and 25/s in
# test mode (sandboxes), and most individual endpoints are limited to 25 requests/s on
# their own. The client-side limit must stay strictly below the smallest of those.
STRIPE_STRICTEST_DOCUMENTED_LIMIT_PER_SECOND = 25.0
DEFAULT_MAX_REQUESTS_PER_SECOND = 20.0


class StripeSettingsError(ValueError):
    """The Stripe configuration is unusable (one line, says what to fix)."""


def _key_kind(key: str) -> str:
    """`rk_live`, `sk_test`, ... or `unknown` (never returns any secret part)."""
    for prefix in ("rk_live_", "rk_test_", "sk_live_", "sk_test_"):
        if key.startswith(prefix):
            return prefix[:-1]
    return "unknown"


class StripeSettings(BaseModel):
    """How billing_sync talks to Stripe. Build it with :meth:`from_env` in production."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    api_base: str | None = Field(
        default=None, description="Another Stripe-compatible server (STRIPE_API_BASE)."
    )
    max_requests_per_second: float = Field(default=DEFAULT_MAX_REQUESTS_PER_SECOND, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    retry_base_delay_seconds: float = Field(default=0.5, ge=0)
    retry_max_delay_seconds: float = Field(default=8.0, ge=0)
    request_timeout_seconds: float = Field(default=30.0, gt=0)
    collection_method: Literal["charge_automatically", "send_invoice"] = "send_invoice"
    days_until_due: int = Field(default=30, ge=0)
    # auto_advance sent with the finalize call: Stripe then collects the invoice
    # (emails it for send_invoice, charges the default payment method otherwise).
    auto_advance_on_finalize: bool = True

    @field_validator("max_requests_per_second")
    @classmethod
    def _below_stripe_limits(cls, value: float) -> float:
        if value >= STRIPE_STRICTEST_DOCUMENTED_LIMIT_PER_SECOND:
            raise ValueError(
                f"max_requests_per_second must stay below Stripe's documented limit of "
                f"{STRIPE_STRICTEST_DOCUMENTED_LIMIT_PER_SECOND:g} requests/s "
                f"(test mode and per-endpoint), got {value:g}"
            )
        return value

    @field_validator("api_key")
    @classmethod
    def _non_empty_key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("the Stripe API key is empty")
        return value

    @field_validator("api_base")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"STRIPE_API_BASE must be an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @property
    def key_kind(self) -> str:
        return _key_kind(self.api_key.get_secret_value())

    @property
    def is_restricted_key(self) -> bool:
        return self.key_kind.startswith("rk_")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> StripeSettings:
        """Read STRIPE_API_KEY (required) and STRIPE_API_BASE (optional) now.

        Logs a warning when the key is not a restricted (``rk_``) key; the key itself
        is never logged.
        """
        env = os.environ if environ is None else environ
        key = env.get("STRIPE_API_KEY", "")
        if not key.strip():
            raise StripeSettingsError(
                "STRIPE_API_KEY is not set: export a restricted Stripe key (rk_...) with "
                "write access to invoices and invoice items and read access to customers"
            )
        try:
            settings = cls(
                api_key=SecretStr(key),
                api_base=env.get("STRIPE_API_BASE") or None,
                **overrides,  # type: ignore[arg-type]
            )
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            # Never echo the input: pydantic would include the rejected values.
            first = exc.errors()[0] if hasattr(exc, "errors") else {"msg": str(exc)}
            loc = ".".join(str(p) for p in first.get("loc", ())) or "settings"
            raise StripeSettingsError(f"StripeSettings: {loc}: {first['msg']}") from None
        settings.warn_if_unrestricted()
        return settings

    def warn_if_unrestricted(self) -> None:
        if not self.is_restricted_key:
            logger.warning(
                "STRIPE_API_KEY is a %s key, not a restricted key (rk_...): billing sync "
                "needs only invoices and invoice items (write) and customers (read); "
                "create a restricted key with just those permissions",
                self.key_kind,
            )
