"""StripeSettings: the key from STRIPE_API_KEY only, never shown, limits below Stripe's."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from billing_sync.settings import StripeSettings, StripeSettingsError
from tests.billing_sync.helpers import REPO_ROOT

SECRET = "sk_test_51SuperSecretValue0000000000"


def test_key_and_base_come_from_the_environment() -> None:
    s = StripeSettings.from_env(
        {"STRIPE_API_KEY": "rk_test_abc123", "STRIPE_API_BASE": "http://127.0.0.1:9/"}
    )
    assert s.api_key.get_secret_value() == "rk_test_abc123"
    assert s.api_base == "http://127.0.0.1:9"
    assert s.is_restricted_key


def test_api_base_is_optional() -> None:
    assert StripeSettings.from_env({"STRIPE_API_KEY": "rk_live_abc123"}).api_base is None


def test_missing_key_is_a_clear_error() -> None:
    with pytest.raises(StripeSettingsError, match="STRIPE_API_KEY is not set"):
        StripeSettings.from_env({})


def test_importing_billing_sync_needs_no_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    code = "import billing_sync.stripe_sync, billing_sync.reconcile, billing_sync.exports"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_environment_is_read_when_constructed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_first")
    assert StripeSettings.from_env().api_key.get_secret_value() == "rk_test_first"
    monkeypatch.setenv("STRIPE_API_KEY", "rk_test_later")
    assert StripeSettings.from_env().api_key.get_secret_value() == "rk_test_later"


def test_unrestricted_key_warns_without_logging_the_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="billing_sync.settings"):
        s = StripeSettings.from_env({"STRIPE_API_KEY": SECRET})
    assert not s.is_restricted_key
    assert any("not a restricted key" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text
    assert "sk_test" in caplog.text  # the kind of key, never its value


def test_restricted_key_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="billing_sync.settings"):
        StripeSettings.from_env({"STRIPE_API_KEY": "rk_live_abc123"})
    assert caplog.records == []


def test_key_never_appears_in_repr_str_or_dump() -> None:
    s = StripeSettings.from_env({"STRIPE_API_KEY": SECRET})
    for text in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert SECRET not in text


def test_invalid_settings_error_does_not_echo_the_key() -> None:
    with pytest.raises(StripeSettingsError) as info:
        StripeSettings.from_env({"STRIPE_API_KEY": SECRET, "STRIPE_API_BASE": "ftp://nope"})
    assert SECRET not in str(info.value)
    assert "STRIPE_API_BASE must be an http(s) URL" in str(info.value)


def test_default_rate_is_below_stripe_documented_limits() -> None:
    s = StripeSettings.from_env({"STRIPE_API_KEY": "rk_test_x1"})
    assert 0 < s.max_requests_per_second < 25  # test mode and per-endpoint limit: 25/s


def test_rate_at_or_above_stripe_limit_is_rejected() -> None:
    with pytest.raises(StripeSettingsError, match="below Stripe's documented limit"):
        StripeSettings.from_env({"STRIPE_API_KEY": "rk_test_x1"}, max_requests_per_second=25)
