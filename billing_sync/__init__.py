"""billing_sync: push finalized Tally invoices to Stripe exactly once, reconcile them,
and export them for other billing systems. Plain Python (no Dagster imports); the
orchestration layer wraps these functions in assets, checks and CLI commands.

Entry points: :func:`billing_sync.stripe_sync.sync_finalized_invoices`,
:func:`billing_sync.reconcile.reconcile`, :func:`billing_sync.status.sync_status`,
:func:`billing_sync.exports.export_invoices`, :func:`billing_sync.audit.ensure_ledger_audit`
/ :func:`billing_sync.audit.append_audit`, and ``python -m billing_sync``.
"""
