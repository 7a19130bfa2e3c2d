"""Queries of mail notifications: recipients and their preferences, the notifications, claiming what is due."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Update, any_, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from mirante.auth.models import User
from mirante.db import paginate_scalars
from rtls_cambus.incidents.models import SupportGroup, SupportGroupMember
from rtls_cambus.notifications.models import ALERT, FAILED, PENDING, SENT, MailNotification, NotificationPreference


@dataclass(frozen=True)
class Recipient:
    user_id: int
    name: str
    address: str


@dataclass(frozen=True)
class MailFilters:
    status: str | None = None
    kind: str | None = None
    user_id: int | None = None


async def members_of_group(session: AsyncSession, group_id: int) -> list[int]:
    query = select(SupportGroupMember.user_id).where(SupportGroupMember.group_id == group_id)
    return list((await session.scalars(query)).all())


async def members_of_group_named(session: AsyncSession, name: str) -> list[int]:
    query = (
        select(SupportGroupMember.user_id)
        .join(SupportGroup, SupportGroup.id == SupportGroupMember.group_id)
        .where(SupportGroup.name == name)
    )
    return list((await session.scalars(query)).all())


async def mailable_users(session: AsyncSession, user_ids: Iterable[int], preference: str) -> list[Recipient]:
    """Active users of `user_ids` with an e-mail address who did not turn `preference` off, by id."""
    wanted = sorted(set(user_ids))
    if not wanted:
        return []
    opted_in = or_(NotificationPreference.user_id.is_(None), getattr(NotificationPreference, preference).is_(True))
    query = (
        select(User.id, User.username, User.email)
        .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(User.id.in_(wanted), User.is_active.is_(True), User.email.is_not(None), User.email != "", opted_in)
        .order_by(User.id)
    )
    return [Recipient(user_id, username, email or "") for user_id, username, email in await session.execute(query)]


async def last_alert_mail(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, datetime]:
    """When each user was last sent an alert mail (alone or in a digest)."""
    query = (
        select(MailNotification.user_id, func.max(MailNotification.sent_at))
        .where(MailNotification.user_id.in_(list(user_ids)), MailNotification.kind == ALERT)
        .where(MailNotification.status == SENT)
        .group_by(MailNotification.user_id)
    )
    return {user_id: sent_at for user_id, sent_at in await session.execute(query) if sent_at is not None}


async def add_notifications(session: AsyncSession, rows: list[dict[str, Any]]) -> int:
    """Insert notifications; one already made for the same (event, user) stays as it is. How many were new."""
    if not rows:
        return 0
    statement = insert(MailNotification).values(rows).on_conflict_do_nothing().returning(MailNotification.id)
    return len((await session.execute(statement)).all())


async def users_due(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Users with notifications due now and not being sent by anyone."""
    query = (
        select(MailNotification.user_id)
        .where(MailNotification.status == PENDING, MailNotification.due_at <= now)
        .where(or_(MailNotification.locked_until.is_(None), MailNotification.locked_until < now))
        .group_by(MailNotification.user_id)
        .order_by(func.min(MailNotification.due_at))
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


# The status is compared with a sub-select rather than with 'pending' written out: that constant matches the partial
# index of pending notifications by due time, and a planner without statistics, or with statistics older than a
# burst of notifications, reads every pending notification due through it to find this user's few, on every claim.
# Not seeing the constant, it finds them through the index by recipient whatever the statistics say. The rows are
# leased by `id = ANY(array of the chosen)`, a primary-key lookup: with `id IN (sub-select)` a planner that takes
# the table for empty reads all of it, running the sub-select again for each row.
_STILL_PENDING = select(literal(PENDING, String)).scalar_subquery()


def _claim_for_user(user_id: int, now: datetime, lease_until: datetime, limit: int) -> Update:
    due = (
        select(MailNotification.id)
        .where(MailNotification.user_id == user_id, MailNotification.status == _STILL_PENDING)
        .where(MailNotification.due_at <= now)
        .where(or_(MailNotification.locked_until.is_(None), MailNotification.locked_until < now))
        .order_by(MailNotification.created_at, MailNotification.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        update(MailNotification)
        .where(MailNotification.id == any_(func.array(due.scalar_subquery())))
        .values(locked_until=lease_until)
        .returning(MailNotification)
    )


async def claim_for_user(
    session: AsyncSession, user_id: int, now: datetime, lease_until: datetime, limit: int
) -> list[MailNotification]:
    """Lease up to `limit` of the user's due notifications, oldest first; rows another sender holds are skipped."""
    claimed = list((await session.scalars(_claim_for_user(user_id, now, lease_until, limit))).all())
    return sorted(claimed, key=lambda row: (row.created_at, row.id))


async def finish(session: AsyncSession, ids: Sequence[int], **values: Any) -> None:
    await session.execute(
        update(MailNotification).where(MailNotification.id.in_(list(ids))).values(locked_until=None, **values)
    )


async def release(session: AsyncSession, ids: Sequence[int]) -> None:
    await session.execute(update(MailNotification).where(MailNotification.id.in_(list(ids))).values(locked_until=None))


async def get_preference(session: AsyncSession, user_id: int) -> NotificationPreference | None:
    return await session.get(NotificationPreference, user_id)


async def put_preference(session: AsyncSession, user_id: int, email_alerts: bool, email_incidents: bool) -> None:
    statement = insert(NotificationPreference).values(
        user_id=user_id, email_alerts=email_alerts, email_incidents=email_incidents
    )
    statement = statement.on_conflict_do_update(
        index_elements=[NotificationPreference.user_id],
        set_={"email_alerts": email_alerts, "email_incidents": email_incidents, "updated_at": func.now()},
    )
    await session.execute(statement)


async def user_email(session: AsyncSession, user_id: int) -> str | None:
    email: str | None = await session.scalar(select(User.email).where(User.id == user_id))
    return email or None


async def list_mails(
    session: AsyncSession, filters: MailFilters, *, offset: int, limit: int
) -> tuple[list[MailNotification], int]:
    query = select(MailNotification).order_by(MailNotification.created_at.desc(), MailNotification.id.desc())
    if filters.status is not None:
        query = query.where(MailNotification.status == filters.status)
    if filters.kind is not None:
        query = query.where(MailNotification.kind == filters.kind)
    if filters.user_id is not None:
        query = query.where(MailNotification.user_id == filters.user_id)
    return await paginate_scalars(session, query, offset=offset, limit=limit)


async def delete_finished_before(session: AsyncSession, moment: datetime) -> int:
    """Forget notifications sent or failed that were made before `moment`; pending ones stay whatever their age."""
    statement = (
        delete(MailNotification)
        .where(MailNotification.status.in_((SENT, FAILED)), MailNotification.created_at < moment)
        .returning(MailNotification.id)
    )
    return len((await session.execute(statement)).all())
