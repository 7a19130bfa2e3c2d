"""Tenant migrations: Alembic revisions applied to each `tenant_<slug>` schema by `tenancy.migrator`.

There is no env.py: the migrator drives Alembic itself, one schema at a time, and calls each revision's
`upgrade(schema)` with the schema to change. New revisions go in `versions/` (see `script.py.mako`); they must
only touch the schema they are given, with `op.*(..., schema=schema)` or quoted, qualified SQL.
"""
