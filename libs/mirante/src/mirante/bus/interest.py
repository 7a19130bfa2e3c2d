"""Which event types a consumer's handler needs, asked once per batch before any other work on it.

A `StreamConsumer` given `wanted_types` reads each entry's `type` field (written beside the envelope for
readers like this one) and acknowledges, with the rest of its batch, an entry of a type not wanted: no envelope
parsed, no inbox row, no savepoint, no statement (outcome `SKIPPED`). That is for handlers that act on few of the
events they read, such as those of webhook subscriptions or rules on every stream of the suite: otherwise each
event of a busy stream costs them a parse, a savepoint and a statement to find that nothing wants it.

- `fixed_types(types)`: the types a handler knows, always the same.
- `TypeInterest`: the types some rows name (subscriptions, rules), read from the database and kept for a
  bounded time; see its guarantee.

When `wanted_types` raises, nothing is skipped: the whole batch goes to the handler, as without it. An entry
whose `type` field is missing or not text is never skipped (it is screened, and dead-lettered when malformed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Container, Iterable

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

WantedTypes = Callable[[], Awaitable[Container[str]]]
"""`await wanted_types()`: the event types the handler needs now; asked once per batch."""

TypesLoader = Callable[[AsyncSession], Awaitable[Iterable[str]]]
"""`await load(session)`: every event type the handler can act on now (an enabled row names it)."""

Clock = Callable[[], float]


def fixed_types(types: Collection[str]) -> WantedTypes:
    """A `wanted_types` that always answers `types`."""
    wanted = frozenset(types)

    async def answer() -> frozenset[str]:
        return wanted

    return answer


class TypeInterest:
    """The event types a handler can act on, read by `load` in a session of its own, kept at most `max_age` seconds.

    The guarantee, for a change that makes a type wanted (a subscription or rule created, enabled, or given a new
    type) and is committed before an event of that type is published:

    - made in this process and reported with `bump_after_commit(session)` in the transaction that makes it: the
      event is never skipped (every batch read after the commit checks against types read after it);
    - made anywhere else (another replica, a script, SQL by hand): the event is never skipped when the consumer
      reads it more than `max_age` seconds after the commit.

    A change that makes a type unwanted needs neither: the handler finds nothing to do for it, as it would without
    `wanted_types`.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        load: TypesLoader,
        *,
        max_age: float,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_age < 0:
            raise ValueError("max_age must not be negative")
        self._sessionmaker = sessionmaker
        self._load = load
        self.max_age = max_age
        self._clock = clock
        self._types: frozenset[str] | None = None
        self._fresh_until = 0.0
        self._generation = 0
        self.loads = 0
        """How many times the types were read from the database."""

    def bump(self) -> None:
        """Read the types again for the next batch."""
        self._generation += 1
        self._types = None

    def bump_after_commit(self, session: AsyncSession) -> None:
        """Read the types again once `session`'s transaction, which changes them, has committed.

        Bumping only before the commit would not do: a batch in between could read the old rows and keep them.
        """
        sqlalchemy_event.listen(session.sync_session, "after_commit", self._bump_on_commit, once=True)

    def _bump_on_commit(self, _session: Session) -> None:
        self.bump()

    async def types(self) -> frozenset[str]:
        """The wanted types (the consumer's `wanted_types`): those kept, or read now when they are older than
        `max_age` or were bumped."""
        if self._types is not None and self._clock() < self._fresh_until:
            return self._types
        # Measured before the read, so the types are never kept longer than `max_age` after the rows they show.
        started, generation = self._clock(), self._generation
        async with self._sessionmaker() as session:
            loaded = frozenset(await self._load(session))
        self.loads += 1
        # A bump during the read may stand for a commit the read did not see: use what was read for this batch
        # (its events were read from the stream before the read began) but keep nothing.
        if generation == self._generation:
            self._types, self._fresh_until = loaded, started + self.max_age
        return loaded
