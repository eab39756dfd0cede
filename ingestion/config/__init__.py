"""The configuration layer: catalog and customers, validated, versioned and tabled.

Plain Python (no Dagster): the orchestration layer calls `ConfigStore.record` to
validate and version the inputs of a run, then `write_config_tables` to expose them to dbt.
Import the submodules (`ingestion.config.catalog`, `.customers`, `.store`, `.tables`,
`.currencies`) directly: the package itself imports nothing, so a process that only needs
the currency table (billing sync) does not pay for pydantic models and SQLAlchemy.
"""
