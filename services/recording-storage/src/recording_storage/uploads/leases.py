"""Leases, not locks, while a request works on a file with no transaction open.

An upload request claims its file in a short transaction (a token and a lease time on the file's row, taken only
when no live lease holds it), streams the body with no transaction or connection held, renews the lease every
third of its length in short transactions (recording the bytes made durable so far, so the status is truthful),
and releases it in a last short transaction, also when the client went away. So concurrent uploads are not capped
by the connection pool and no transaction stays open for minutes. A second request to the same file, and a
finish, get 409 `upload_in_progress` while the lease lives. A replica that dies mid-body leaves a lease that
lapses; the next request takes the file over at the recorded offset, and the bytes past it are dropped (they may
never have reached the disk: only what a checkpoint made durable is ever recorded). A writer never writes once
its lease may have lapsed: it renews first, and stops if the file was taken over. Finishing leases the video the
same way while it hashes it.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from mirante.db import TransactionFactory
from recording_storage.models import UploadFile
from recording_storage.uploads import repository

logger = logging.getLogger(__name__)


class LeaseLostError(Exception):
    """The request's lease on its file lapsed and another request took the file over."""


@dataclass
class Lease:
    """A request's claim on one file, renewed in short transactions; `renewed_at` is the local (monotonic) time
    the last claim or renewal began, so the lease surely lasts until `renewed_at + seconds` on any clock."""

    transactions: TransactionFactory
    session_id: str
    kind: str
    token: uuid.UUID
    seconds: float
    renewed_at: float

    def age(self) -> float:
        return time.monotonic() - self.renewed_at

    async def renew(self, received: int) -> None:
        started = time.monotonic()
        async with self.transactions() as db:
            held = await repository.renew_lease(db, self.session_id, self.kind, self.token, self.seconds, received)
        if not held:
            raise LeaseLostError
        self.renewed_at = started


async def release(
    transactions: TransactionFactory,
    lease: Lease,
    *,
    received: int,
    complete: bool,
    sha256: str | None,
) -> UploadFile | None:
    async with transactions() as db:
        return await repository.release_lease(
            db, lease.session_id, lease.kind, lease.token, received=received, complete=complete, sha256=sha256
        )


async def release_quietly(transactions: TransactionFactory, lease: Lease, state: tuple[int, bool, str | None]) -> None:
    """Release after a failure, putting back the file's state from before this request; when even that fails
    the lease lapses on its own and the next request resumes from what is recorded."""
    received, complete, sha256 = state
    try:
        await release(transactions, lease, received=received, complete=complete, sha256=sha256)
    except Exception:
        logger.exception("could not release the lease on the %s of upload session %s", lease.kind, lease.session_id)
