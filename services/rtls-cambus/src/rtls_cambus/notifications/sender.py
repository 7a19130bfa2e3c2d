"""The mail sender: sends the due notifications of each user as one mail, retries what failed, survives restarts.

Each pass looks for users with notifications due, leases them (`locked_until`, so replicas never send one twice
at once and a replica that dies mid-send leaves a lease that expires after `RTLS_CAMBUS_MAIL_LEASE_SECONDS`),
renders one mail (a digest when several are due) and sends it. A sent mail marks its notifications `sent` with
its Message-ID. A failure the server may get over (connection refused, timeout, 4xx) puts them back with a
delay drawn with full jitter below the next step of `RTLS_CAMBUS_MAIL_RETRY_SCHEDULE_SECONDS`; when the schedule
is spent, or the server refused the mail for good (5xx to the recipient or the content), they are `failed`.
A few users are served at once, each with a connection of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.aio import wait_event
from mirante.backoff import scheduled_delay
from rtls_cambus.config import Settings
from rtls_cambus.notifications import mailer, repository
from rtls_cambus.notifications.models import FAILED, SENT, MailNotification
from rtls_cambus.notifications.rendering import render

logger = logging.getLogger(__name__)

USERS_PER_PASS: Final = 50
CONCURRENT_MAILS: Final = 4


class MailSender:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(CONCURRENT_MAILS)

    def wake(self) -> None:
        self._wake.set()

    async def poll_once(self, now: datetime | None = None) -> int:
        """Send what is due at `now` (default: now), one mail per user; how many mails went out."""
        now = now or datetime.now(UTC)
        async with self.sessionmaker() as session:
            users = await repository.users_due(session, now, USERS_PER_PASS)
        sent = await asyncio.gather(*(self._send_to(user_id, now) for user_id in users))
        return sum(sent)

    async def run(self) -> None:
        while True:
            try:
                sent = await self.poll_once()
            except Exception:
                logger.exception("looking for due mail notifications failed")
                sent = 0
            if sent == 0:
                self._wake.clear()
                await wait_event(self._wake, self.settings.mail_poll_interval_seconds)

    async def _send_to(self, user_id: int, now: datetime) -> int:
        async with self._slots:
            lease_until = now + timedelta(seconds=self.settings.mail_lease_seconds)
            async with self.sessionmaker() as session, session.begin():
                claimed = await repository.claim_for_user(
                    session, user_id, now, lease_until, self.settings.mail_digest_max_items
                )
            if not claimed:
                return 0
            ids = [row.id for row in claimed]
            try:
                return await self._deliver(claimed, ids)
            except asyncio.CancelledError:
                await asyncio.shield(self._release(ids))
                raise
            except Exception as error:
                # A mail that cannot even be built would fail the same way on every try.
                logger.exception("building the mail to user %s failed", user_id)
                await self._failed(claimed, ids, mailer.SendError(f"the mail could not be built: {error}", final=True))
                return 0

    async def _deliver(self, claimed: Sequence[MailNotification], ids: list[int]) -> int:
        first = claimed[0]
        rendered = render(claimed, first.context.get("recipient") or first.address)
        message = mailer.build_message(
            self.settings.mail_from, str(first.context.get("recipient") or ""), first.address, rendered
        )
        try:
            await mailer.send(self.settings.infra.smtp, message)
        except mailer.SendError as error:
            await self._failed(claimed, ids, error)
            return 0
        async with self.sessionmaker() as session, session.begin():
            await repository.finish(
                session,
                ids,
                status=SENT,
                sent_at=datetime.now(UTC),
                mail_id=message["Message-ID"],
                in_digest=len(claimed) > 1,
                attempts=max(row.attempts for row in claimed) + 1,
                last_error=None,
            )
        logger.info("mail %s to user %s: %d notification(s)", message["Message-ID"], first.user_id, len(claimed))
        return 1

    async def _failed(self, claimed: Sequence[MailNotification], ids: list[int], error: mailer.SendError) -> None:
        attempts = max(row.attempts for row in claimed) + 1
        delay = None if error.final else scheduled_delay(attempts, self.settings.mail_retry_schedule_seconds)
        values: dict[str, Any] = {"attempts": attempts, "last_error": str(error)}
        if delay is None:
            values["status"] = FAILED
        else:
            values["due_at"] = datetime.now(UTC) + timedelta(seconds=delay)
        async with self.sessionmaker() as session, session.begin():
            await repository.finish(session, ids, **values)
        logger.warning(
            "mail to user %s (%d notification(s)) failed, attempt %d: %s; %s",
            claimed[0].user_id,
            len(claimed),
            attempts,
            error,
            "given up" if delay is None else f"trying again in {delay:.0f} s",
        )

    async def _release(self, ids: list[int]) -> None:
        try:
            async with self.sessionmaker() as session, session.begin():
                await repository.release(session, ids)
        except Exception:
            logger.exception("releasing mail notifications %s failed; their lease will expire", ids)
