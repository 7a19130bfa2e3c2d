"""Async database access: engine, sessions, the request-scoped session dependency, and naming rules.

The transaction belongs to the boundary (a request or a consumer step): services and repositories call
`flush()`, never `commit()`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from sqlalchemy import MetaData, Row, Select, event, func, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from mirante.settings import DatabaseSettings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_identifier(name: str) -> str:
    """Return `name` if it is a safe lower-case SQL identifier (schemas cannot be bind parameters)."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return name


def schema_metadata(schema: str) -> MetaData:
    """MetaData bound to one schema with the suite's constraint naming convention."""
    return MetaData(schema=checked_identifier(schema), naming_convention=NAMING_CONVENTION)


def async_url(url: str) -> URL:
    """Turn any `postgresql://` URL into the asyncpg dialect SQLAlchemy expects."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}; use postgresql://")
    return parsed


def plain_url(url: str | URL) -> str:
    """The libpq form of a URL (for asyncpg.connect and external tools)."""
    parsed = make_url(url) if isinstance(url, str) else url
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


PREPARED_STATEMENT_CACHE_SIZE = 500
"""Statements each connection keeps prepared (the driver's default is 100). Savepoints have a name per position
in their transaction (`sa_savepoint_1`, `_2`, ...), each a statement of its own: a stream consumer's batch of 50
handlers alone fills 100 entries with SAVEPOINT and RELEASE, and then every other statement on that pooled
connection was evicted and prepared again (a round trip each) on its next use."""


def create_engine(url: str, settings: DatabaseSettings | None = None, *, pooled: bool = True) -> AsyncEngine:
    """An async engine whose pool drops connections the server has closed and recycles old ones, so a
    restarted server does not break it. Every engine of the suite is built here, from `settings` (the
    environment's `MIRANTE_DATABASE_*` when not given). `pooled=False` opens a connection per use and keeps
    none (one-shot work such as migrations, where an idle pool would only hold server connections)."""
    options = settings or DatabaseSettings()
    pool: dict[str, Any] = (
        {
            "pool_size": options.pool_size,
            "max_overflow": options.max_overflow,
            "pool_recycle": options.pool_recycle_seconds,
        }
        if pooled
        else {"poolclass": NullPool}
    )
    engine = create_async_engine(
        async_url(url),
        echo=options.echo,
        connect_args={"prepared_statement_cache_size": PREPARED_STATEMENT_CACHE_SIZE},
        **pool,
    )
    event.listen(engine.sync_engine, "checkout", _refuse_closed_connection)
    return engine


@asynccontextmanager
async def engine_scope(
    url: str, settings: DatabaseSettings | None = None, *, pooled: bool = True
) -> AsyncIterator[AsyncEngine]:
    """`create_engine` for the length of a block (a command, a script), disposed of when the block ends."""
    engine = create_engine(url, settings, pooled=pooled)
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def one_transaction(url: str, settings: DatabaseSettings | None = None) -> AsyncIterator[AsyncSession]:
    """A session in one transaction on an engine of its own (a command's unit of work): committed when the
    block ends, rolled back when it raises, and the engine disposed of either way."""
    async with engine_scope(url, settings) as engine, create_sessionmaker(engine)() as session, session.begin():
        yield session


def _refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # Instead of SQLAlchemy's pre-ping, which costs three round trips per checkout on asyncpg (BEGIN, an empty
    # query, ROLLBACK): asyncpg already knows when the server closed the socket (a restart, an idle timeout,
    # pg_terminate_backend). Raising DisconnectionError makes the pool discard the connection and open another.
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def engine_of(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine `sessionmaker`'s sessions are bound to."""
    engine = sessionmaker.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        raise TypeError("the sessionmaker is not bound to an AsyncEngine")
    return engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Request-scoped session; commits when the endpoint returns, rolls back when it raises."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session, session.begin():
        yield session


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]

TransactionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]
"""`async with transaction() as session:` a session in a transaction of its own, committed when the block ends."""


async def get_transactions(request: Request) -> TransactionFactory:
    """Short transactions on demand, for an endpoint that must not hold a connection for its whole length (one
    that streams a long request body): each block checks a connection out of the pool and returns it."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker

    @asynccontextmanager
    async def transaction() -> AsyncIterator[AsyncSession]:
        async with maker() as session, session.begin():
            yield session

    return transaction


Transactions = Annotated[TransactionFactory, Depends(get_transactions)]


TOTAL_COLUMN: Final = "__total"
"""The label of the window count `paginate` adds to a statement."""


async def paginate(
    session: AsyncSession | AsyncConnection, statement: Select[Any], *, offset: int, limit: int
) -> tuple[Sequence[Row[Any]], int]:
    """The rows of `statement` from `offset`, at most `limit` of them, and how many rows it matches in all.

    One round trip: the total comes from `count(*) OVER ()` on the same statement, computed before the offset
    and limit apply. Only a page past the end (no rows) costs a second query, a count over the statement as a
    subquery, so such a page still reports the true total. The rows carry the statement's columns only.
    """
    counted = statement.add_columns(func.count().over().label(TOTAL_COLUMN)).offset(offset).limit(limit)
    frozen = (await session.execute(counted)).freeze()
    width = len(frozen.metadata.keys) - 1
    rows = frozen().columns(*range(width)).all()
    if rows:
        total = frozen().scalars(width).first()
    elif offset == 0:
        total = 0
    else:
        total = await session.scalar(select(func.count()).select_from(statement.order_by(None).subquery()))
    return rows, int(total or 0)


async def paginate_scalars(
    session: AsyncSession | AsyncConnection, statement: Select[Any], *, offset: int, limit: int
) -> tuple[list[Any], int]:
    """`paginate` for a statement of one entity or column: its values instead of rows."""
    rows, total = await paginate(session, statement, offset=offset, limit=limit)
    return [row[0] for row in rows], total
