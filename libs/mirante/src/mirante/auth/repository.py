"""Queries of the identity schema. Repositories `flush()`; the caller's boundary commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from mirante.auth.models import ApiKey, User
from mirante.auth.schemas import UserFilters
from mirante.db import paginate_scalars

# last_used_at is informative; writing it at most this often keeps API-key requests read-mostly.
LAST_USED_RESOLUTION = timedelta(seconds=60)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int, *, refresh: bool = False) -> User | None:
        """The user with `user_id`; `refresh` re-reads the row even if the session already holds it."""
        return await self.session.get(User, user_id, populate_existing=refresh)

    async def get_by_username(self, username: str) -> User | None:
        result = await self.session.execute(select(User).where(User.username == username.lower()))
        return result.scalar_one_or_none()

    async def add(self, user: User) -> bool:
        """Insert `user`; False (and nothing written) when the username is taken."""
        try:
            async with self.session.begin_nested():
                self.session.add(user)
        except IntegrityError as exc:
            if "uq_users_username" in str(exc.orig):
                return False
            raise
        return True

    async def list_page(
        self, filters: UserFilters, *, tenant: str | None, offset: int, limit: int
    ) -> tuple[Sequence[User], int]:
        """One page of users matching `filters` (ordered by id) and the total count; only `tenant`'s when set."""
        conditions = self._conditions(filters)
        if tenant is not None:
            conditions.append(User.tenant == tenant)
        statement = select(User).where(*conditions).order_by(User.id)
        return await paginate_scalars(self.session, statement, offset=offset, limit=limit)

    async def list_all(self, *, tenant: str | None = None) -> Sequence[User]:
        """Every user ordered by username; only `tenant`'s when set. For the command line, which pages nothing."""
        statement = select(User).order_by(User.username)
        if tenant is not None:
            statement = statement.where(User.tenant == tenant)
        return (await self.session.execute(statement)).scalars().all()

    @staticmethod
    def _conditions(filters: UserFilters) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if filters.role is not None:
            conditions.append(User.role == filters.role.value)
        if filters.is_active is not None:
            conditions.append(User.is_active.is_(filters.is_active))
        if filters.search:
            conditions.append(User.username.contains(filters.search.lower(), autoescape=True))
        return conditions

    async def flush(self) -> None:
        await self.session.flush()


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key_id: int) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def get_by_prefix(self, prefix: str) -> ApiKey | None:
        """The key with `prefix`, always read fresh (a revocation must take effect at once)."""
        result = await self.session.execute(
            select(ApiKey).where(ApiKey.prefix == prefix).execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def prefix_exists(self, prefix: str) -> bool:
        found = await self.session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix))
        return found is not None

    async def add(self, key: ApiKey) -> None:
        self.session.add(key)
        await self.session.flush()

    async def list_page(
        self, *, include_revoked: bool, tenant: str | None, offset: int, limit: int
    ) -> tuple[Sequence[ApiKey], int]:
        """One page of keys (ordered by id) and the total count; only `tenant`'s when set."""
        conditions: list[ColumnElement[bool]] = [] if include_revoked else [ApiKey.revoked_at.is_(None)]
        if tenant is not None:
            conditions.append(ApiKey.tenant == tenant)
        statement = select(ApiKey).where(*conditions).order_by(ApiKey.id)
        return await paginate_scalars(self.session, statement, offset=offset, limit=limit)

    async def touch_last_used(self, key: ApiKey, now: datetime) -> None:
        """Record use when the stored time is older than the resolution.

        SKIP LOCKED: when another request holding the same key is updating the row, skip rather than wait.
        """
        if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
            return
        stale = select(ApiKey.id).where(
            ApiKey.id == key.id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        )
        target = stale.with_for_update(skip_locked=True).scalar_subquery()
        statement = update(ApiKey).where(ApiKey.id == target).values(last_used_at=now)
        await self.session.execute(statement.execution_options(synchronize_session=False))
        set_committed_value(key, "last_used_at", now)

    async def flush(self) -> None:
        await self.session.flush()
