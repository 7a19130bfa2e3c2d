"""`paginate` returns a page and the total of the same statement, also past the last page and for entities."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.models import User
from mirante.db import paginate, paginate_scalars

things = Table("paginate_things", MetaData(), Column("id", Integer), Column("colour", Text))


async def _things(session: AsyncSession, count: int) -> None:
    await session.execute(text("CREATE TEMPORARY TABLE paginate_things (id integer, colour text) ON COMMIT DROP"))
    await session.execute(
        text(
            "INSERT INTO paginate_things SELECT n, CASE WHEN n % 2 = 0 THEN 'blue' ELSE 'red' END "
            "FROM generate_series(1, :count) AS n"
        ),
        {"count": count},
    )


async def test_a_page_carries_the_total_of_the_filtered_statement(db_session: AsyncSession) -> None:
    await _things(db_session, 23)
    statement = select(things).where(things.c.colour == "red").order_by(things.c.id)

    rows, total = await paginate(db_session, statement, offset=5, limit=3)

    assert total == 12
    assert [tuple(row) for row in rows] == [(11, "red"), (13, "red"), (15, "red")]
    assert list(rows[0]._mapping) == ["id", "colour"]


async def test_a_page_past_the_end_still_reports_the_total(db_session: AsyncSession) -> None:
    await _things(db_session, 7)
    statement = select(things.c.id).order_by(things.c.id)

    assert await paginate(db_session, statement, offset=100, limit=10) == ([], 7)
    assert await paginate(db_session, statement.where(things.c.id > 100), offset=0, limit=10) == ([], 0)


async def test_entities_come_back_as_objects(db_session: AsyncSession) -> None:
    for name in ("paginate-b", "paginate-a", "paginate-c"):
        db_session.add(User(username=name, password_hash="x"))
    await db_session.flush()
    statement = select(User).where(User.username.like("paginate-%")).order_by(User.username)

    users, total = await paginate_scalars(db_session, statement, offset=1, limit=1)

    assert total == 3
    assert [user.username for user in users] == ["paginate-b"]
