"""Row helpers every catalogue repository uses: fetch by id, write and learn which constraint refused it.

Unique keys and references are enforced by PostgreSQL, not by a read before the write, so two requests racing
for the same name or deleting a referenced row get the same clear answer as one alone. A write runs in a
savepoint; when a constraint refuses it, the savepoint is rolled back, the transaction goes on, and the name of
the constraint tells the service which 409 to answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


def like_pattern(text: str) -> str:
    """`%text%` for ILIKE with `\\` as the escape, the text's own wildcards escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def violated_constraint(error: IntegrityError) -> str:
    """The name of the constraint PostgreSQL named in `error` (empty when it named none)."""
    cause: Any = getattr(error.orig, "__cause__", None) or error.orig
    return str(getattr(cause, "constraint_name", None) or "")


async def guarded(session: AsyncSession, write: Callable[[], Awaitable[T]]) -> tuple[T | None, str | None]:
    """Run `write` and flush in a savepoint: `(result, None)`, or `(None, constraint)` when a constraint refused it."""
    try:
        async with session.begin_nested():
            result = await write()
            await session.flush()
    except IntegrityError as error:
        return None, violated_constraint(error)
    return result, None


async def add(session: AsyncSession, row: T) -> str | None:
    """Insert `row`; None, or the constraint that refused it."""

    async def write() -> T:
        session.add(row)
        return row

    return (await guarded(session, write))[1]


async def change(session: AsyncSession, row: Any, changes: dict[str, Any]) -> str | None:
    """Set `changes` on `row` and flush; None, or the constraint that refused it (the row is reloaded then)."""

    async def write() -> Any:
        for name, value in changes.items():
            setattr(row, name, value)
        return row

    _, constraint = await guarded(session, write)
    if constraint is not None:
        await session.refresh(row)
    return constraint


async def remove(session: AsyncSession, row: Any) -> str | None:
    """Delete `row`; None, or the constraint (a reference to it) that refused it."""

    async def write() -> None:
        await session.delete(row)

    return (await guarded(session, write))[1]


def column_values(values: dict[str, Any]) -> dict[str, Any]:
    """Body values as columns: blank optional text is stored as null."""
    return {name: None if value == "" else value for name, value in values.items()}
