"""Telling database errors caused by the data apart from those that trying again can cure.

A data error fails again on every attempt with the same message, so retrying it would stall ingest forever;
anything else (lost connection, deadlock, a server shutting down, a bug) is worth the message source's retry.
"""

from __future__ import annotations

from typing import Final

DATA_ERROR_CLASSES: Final = frozenset({"22", "23", "54"})
"""SQLSTATE classes caused by values: data exception, integrity constraint violation, program limit exceeded."""
MISSING_OBJECT_STATES: Final = frozenset({"3F000", "42P01"})
"""invalid_schema_name, undefined_table: a tenant whose tables are gone (the same on every attempt)."""


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, whether raised by asyncpg or wrapped by SQLAlchemy; None otherwise."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and len(state) == 5:
            return state
        pending.extend((getattr(current, "orig", None), current.__cause__, current.__context__))
    return None


def is_data_error(error: BaseException) -> bool:
    """Whether the database refused the statement because of the values it was given (see the module doc)."""
    state = sqlstate(error)
    return state is not None and (state[:2] in DATA_ERROR_CLASSES or state in MISSING_OBJECT_STATES)


def describe_error(error: BaseException) -> str:
    """A short description for logs and stored reasons: SQLSTATE and the server's message, not the statement."""
    state = sqlstate(error)
    current: BaseException = error
    original = getattr(error, "orig", None)
    if isinstance(original, BaseException):
        current = original
    message = str(current).strip().splitlines()[0] if str(current).strip() else type(current).__name__
    if state is not None:
        return f"{message} (SQLSTATE {state})"
    return f"{type(current).__name__}: {message}"
