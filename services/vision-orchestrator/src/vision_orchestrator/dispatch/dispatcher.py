"""The dispatcher: assigns pending inspections to machines and gives them to the machines.

Correctness across replicas rests on two locks taken in one transaction (`_assign`): the inspections are
claimed with `FOR UPDATE SKIP LOCKED` (another replica skips them), and the machines that a plan made on an
unlocked read chose are locked in id order (another replica waits, then sees the counts this one committed);
the work is placed again on those locked counts, and what no longer fits stays pending for a pass that follows at
once. Only the chosen machines are locked, so the results and heartbeats of the others never wait for a pass, nor
a pass for them. The move to `assigned`, the machine's count, the history row and the `vision.inspection.assigned`
event commit together; the call to the machine happens after the commit, each in its own task with short
timeouts, and its answer is recorded in a second transaction that only acts if the inspection is still on that
machine under the same lease.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mirante.aio import raise_if_cancel_requested, wait_event
from mirante.backoff import Backoff, full_jitter
from mirante.bus import Event, emit
from mirante.db import plain_url
from vision_orchestrator.capacity import CAPACITY_CHANNEL, QUEUE_CHANNEL, announce_work
from vision_orchestrator.config import Settings, Strategy
from vision_orchestrator.dispatch import repository
from vision_orchestrator.dispatch.client import Answer, Delivery, MachineClient, base_url
from vision_orchestrator.dispatch.errors import NoMachineError
from vision_orchestrator.dispatch.strategies import Candidate, Want, choose, why_none
from vision_orchestrator.identifiers import SCHEMA, SOURCE
from vision_orchestrator.inspections.errors import (
    InspectionNotFoundError,
    InspectionNotPendingError,
    MachineLacksTypeError,
    unknown_machine,
)
from vision_orchestrator.inspections.service import TARGET_FIELD, transition
from vision_orchestrator.lifecycle import InspectionStatus
from vision_orchestrator.tables import DropReason, Inspection, Machine

logger = logging.getLogger(__name__)

INSPECTION_ASSIGNED = "vision.inspection.assigned"
SYSTEM = "system:dispatcher"
SUCCESS_WINDOW = timedelta(days=7)
CHORE_BATCH = 200


@dataclass(frozen=True)
class Sent:
    """An assignment committed and to be given to its machine."""

    inspection_id: str
    machine_id: str
    url: str
    lease: int
    order: dict[str, Any]
    secret: str | None
    """The machine's `webhook_secret`, read with the assignment, to sign the call."""


@dataclass(frozen=True)
class Outcome:
    """What became of one send: `delivered`, or back in the queue with `reason` until `next_attempt_at`."""

    inspection_id: str
    machine_id: str
    delivered: bool
    reason: str | None = None
    next_attempt_at: datetime | None = None


def candidate_of(machine: Machine, successes: dict[str, tuple[int, int]] | None = None) -> Candidate:
    return Candidate(
        id=machine.id,
        location=machine.location,
        line=machine.line,
        current=machine.current_inspections,
        capacity=machine.max_concurrent_inspections,
        supported_types=frozenset(machine.supported_inspection_types),
        available=machine.status == "online" and not machine.maintenance,
        successes=successes or {},
    )


class Dispatcher:
    """One replica's dispatcher. `run()` is the app worker; `send` and `distribute` serve the API."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        client: MachineClient,
        *,
        database_url: str | None = None,
    ) -> None:
        self._sessions = sessionmaker
        self._settings = settings
        self._client = client
        self._database_url = database_url
        self._wake = asyncio.Event()
        self._cooling: dict[str, float] = {}
        self._machine_backoff: dict[str, Backoff] = {}
        self._deliveries: set[asyncio.Task[Outcome]] = set()
        self.stats: Counter[str] = Counter()
        self.listening = asyncio.Event()

    # -- waking --------------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def _heard(self, connection: object, pid: int, channel: str, payload: str) -> None:
        self.stats[f"heard_{'capacity' if channel == CAPACITY_CHANNEL else 'work'}"] += 1
        self._wake.set()

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection, reconnecting with backoff; every (re)connection wakes a pass, as
        notifications sent while it was down are lost."""
        assert self._database_url is not None
        backoff = Backoff(self._settings.listen_retry_base_seconds, self._settings.listen_retry_cap_seconds)
        while True:
            raise_if_cancel_requested()
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(plain_url(self._database_url), timeout=10)
                await connection.add_listener(CAPACITY_CHANNEL, self._heard)
                await connection.add_listener(QUEUE_CHANNEL, self._heard)
                backoff.reset()
                self.listening.set()
                self._wake.set()
                while not connection.is_closed():
                    await asyncio.sleep(self._settings.dispatch_interval_seconds)
                    await connection.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                self.listening.clear()
                delay = backoff.next_delay()
                logger.warning("dispatcher LISTEN connection lost (%s); reconnecting in %.1f s", error, delay)
                await asyncio.sleep(delay)
            finally:
                if connection is not None and not connection.is_closed():
                    await connection.close(timeout=2)

    async def run(self) -> None:
        """Passes on wake-ups and every `dispatch_interval_seconds`, for the app's lifetime."""
        listener = asyncio.create_task(self._listen(), name="dispatcher-listen") if self._database_url else None
        try:
            chores_due = 0.0
            while True:
                raise_if_cancel_requested()
                self._wake.clear()
                # A wake-up (a freed slot, new work) claims at once; the chores run on the periodic pass, at
                # most once per interval however often wake-ups come.
                now = time.monotonic()
                chores = now >= chores_due
                if chores:
                    chores_due = now + self._settings.dispatch_interval_seconds
                try:
                    await self.run_pass(chores=chores)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.stats["pass_errors"] += 1
                    logger.exception("dispatch pass failed")
                # Not asyncio.wait_for: on Python 3.11 it loses a cancellation that arrives as the wake-up does.
                await wait_event(self._wake, self._settings.dispatch_interval_seconds)
        finally:
            if listener is not None:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
            await self.drain()

    async def idle(self) -> None:
        """Serve the API's sends without running passes (a replica with the dispatcher turned off)."""
        await asyncio.Event().wait()

    async def close(self) -> None:
        await self.drain()
        await self._client.aclose()

    async def drain(self) -> None:
        """Wait for the sends in flight (their outcomes are recorded)."""
        while self._deliveries:
            await asyncio.gather(*list(self._deliveries), return_exceptions=True)

    # -- passes --------------------------------------------------------------------------------------------

    async def run_pass(self, *, chores: bool = True) -> int:
        """Re-queue stranded work, settle drops, re-send undelivered work (unless `chores` is false), then assign
        what fits. Returns the number of inspections assigned."""
        if chores:
            await self.requeue_stranded()
            await self.settle_drops()
            await self.resend_undelivered()
        assigned = 0
        while True:
            batch = await self._assign_pending()
            assigned += len(batch)
            for sent in batch:
                self._spawn(sent)
            if len(batch) < self._settings.dispatch_batch_size:
                return assigned

    def _spawn(self, sent: Sent) -> None:
        task = asyncio.create_task(self._deliver(sent), name=f"send-{sent.inspection_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    def _cooling_machines(self) -> set[str]:
        now = time.monotonic()
        for machine_id in [m for m, until in self._cooling.items() if until <= now]:
            del self._cooling[machine_id]
        return set(self._cooling)

    async def _assign_pending(self) -> list[Sent]:
        now = datetime.now(UTC)
        cooling = self._cooling_machines()
        async with self._sessions() as session, session.begin():
            claimed = await repository.claim_pending(
                session, now, self._settings.dispatch_batch_size, skip_machines=cooling
            )
            if not claimed:
                return []
            return await self._assign(session, claimed, self._settings.dispatch_strategy, {}, SYSTEM, cooling)

    async def _assign(
        self,
        session: AsyncSession,
        inspections: Sequence[Inspection],
        strategy: Strategy,
        wants: dict[str, Want],
        actor: str,
        cooling: set[str],
    ) -> list[Sent]:
        # Plan on an unlocked read, then lock only the machines the plan uses and place the work again on their
        # committed counts. Locking every available machine instead made each pass wait for every result and
        # heartbeat in flight, and each of those wait for the pass: the freed-slot-to-assignment tail.
        seen = await repository.available_machines(session, {i.inspection_type for i in inspections})
        successes = (
            await repository.success_counts(session, [m.id for m in seen], datetime.now(UTC) - SUCCESS_WINDOW)
            if strategy == "specialized"
            else {}
        )
        planning = [candidate_of(m, successes.get(m.id)) for m in seen if m.id not in cooling]
        planned: set[str] = set()
        fits = 0
        for inspection in inspections:
            want = wants.get(inspection.id) or Want(inspection.inspection_type, inspection.target_machine_id)
            pick = choose(strategy, want, planning)
            if pick is not None:
                pick.current += 1
                planned.add(pick.id)
                fits += 1
        if not planned:
            return []
        machines = await repository.lock_machines(session, planned)
        candidates = [candidate_of(m, successes.get(m.id)) for m in machines if m.id not in cooling]
        by_id = {m.id: m for m in machines}
        secrets = await repository.webhook_secrets(session, by_id)
        sent: list[Sent] = []
        for inspection in inspections:
            want = wants.get(inspection.id) or Want(inspection.inspection_type, inspection.target_machine_id)
            chosen = choose(strategy, want, candidates)
            if chosen is None:
                continue
            machine = by_id[chosen.id]
            lease = inspection.lease + 1
            order = self._order(inspection, machine.id, lease)
            await transition(
                session,
                inspection,
                InspectionStatus.assigned,
                actor=actor,
                reason=f"{strategy} chose {machine.id}",
                machine_id=machine.id,
            )
            chosen.current += 1
            await emit(
                session,
                SCHEMA,
                Event(
                    source=SOURCE,
                    type=INSPECTION_ASSIGNED,
                    subject=f"inspection/{inspection.id}",
                    data={
                        "inspection_id": inspection.id,
                        "machine_id": machine.id,
                        "attempt": lease,
                        "priority": inspection.priority,
                        "strategy": strategy,
                        "assigned_by": actor,
                    },
                ),
            )
            sent.append(
                Sent(
                    inspection.id,
                    machine.id,
                    base_url(machine.ip_address, machine.port),
                    lease,
                    order,
                    secrets.get(machine.id),
                )
            )
        self.stats["assigned"] += len(sent)
        if len(sent) < fits:
            # The plan's machines changed before they were locked (filled by another replica, gone offline): a
            # pass at once places the rest where there is room now, as no notification may come for it.
            self.stats["replanned"] += 1
            self._wake.set()
        return sent

    def _order(self, inspection: Inspection, machine_id: str, lease: int) -> dict[str, Any]:
        root = self._settings.public_url.rstrip("/") + "/api/v1/webhooks"
        return {
            "inspection_id": inspection.id,
            "machine_id": machine_id,
            "name": inspection.name,
            "inspection_type": inspection.inspection_type,
            "pipeline_config": inspection.pipeline_config,
            "priority": inspection.priority,
            "attempt": lease,
            "callbacks": {
                "results": f"{root}/results/",
                "status": f"{root}/status/",
                "heartbeat": f"{root}/heartbeat/",
            },
        }

    # -- after the commit: the machine's answer ------------------------------------------------------------

    async def _deliver(self, sent: Sent) -> Outcome:
        delivery = await self._client.send(sent.url, sent.secret, sent.order)
        try:
            return await self._record(sent, delivery)
        except Exception:
            self.stats["record_errors"] += 1
            logger.exception("recording the answer of %s about %s failed", sent.machine_id, sent.inspection_id)
            return Outcome(sent.inspection_id, sent.machine_id, delivered=delivery.answer is Answer.accepted)

    def _cool(self, machine_id: str, delivery: Delivery) -> None:
        backoff = self._machine_backoff.setdefault(
            machine_id, Backoff(self._settings.dispatch_retry_base_seconds, self._settings.dispatch_retry_cap_seconds)
        )
        delay = delivery.retry_after if delivery.retry_after is not None else backoff.next_delay()
        self._cooling[machine_id] = time.monotonic() + max(delay, self._settings.dispatch_retry_base_seconds)

    async def _record(self, sent: Sent, delivery: Delivery) -> Outcome:
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            inspection = await repository.lock_inspection(session, sent.inspection_id)
            still_ours = (
                inspection is not None
                and inspection.status == InspectionStatus.assigned
                and inspection.lease == sent.lease
                and inspection.assigned_machine_id == sent.machine_id
            )
            if delivery.answer is Answer.accepted:
                self.stats["delivered"] += 1
                self._machine_backoff.pop(sent.machine_id, None)
                if still_ours:
                    assert inspection is not None
                    await transition(
                        session,
                        inspection,
                        InspectionStatus.processing,
                        actor=f"machine:{sent.machine_id}",
                        reason=f"accepted (HTTP {delivery.status_code})",
                    )
                    await repository.clear_send_failure(session, sent.inspection_id)
                return Outcome(sent.inspection_id, sent.machine_id, delivered=True)
            self.stats[f"send_{delivery.answer.value}"] += 1
            self._cool(sent.machine_id, delivery)
            reason = delivery.reason or delivery.answer.value
            if not still_ours:
                return Outcome(sent.inspection_id, sent.machine_id, delivered=False, reason=reason)
            assert inspection is not None
            delay = (
                delivery.retry_after
                if delivery.retry_after is not None
                else full_jitter(
                    inspection.dispatch_attempts,
                    self._settings.dispatch_retry_base_seconds,
                    self._settings.dispatch_retry_cap_seconds,
                )
            )
            next_try = now + timedelta(seconds=delay)
            await transition(
                session, inspection, InspectionStatus.pending, actor=SYSTEM, reason=f"{sent.machine_id}: {reason}"
            )
            await repository.record_send_failure(session, sent.inspection_id, f"{sent.machine_id}: {reason}", next_try)
            await announce_work(session, sent.inspection_id)
            logger.info("inspection %s back in the queue: %s %s", sent.inspection_id, sent.machine_id, reason)
            return Outcome(sent.inspection_id, sent.machine_id, False, reason, next_try)

    # -- the API's moves -----------------------------------------------------------------------------------

    async def send(self, inspection_id: str, machine_id: str, priority: int | None, actor: str) -> Outcome:
        """Give a pending inspection to `machine_id` now (its target from now on). When the machine cannot take
        it now, it stays pending for that machine with the reason, and the dispatcher retries."""
        async with self._sessions() as session, session.begin():
            inspection = await self._pending(session, inspection_id)
            target = await repository.get_machine(session, machine_id)
            if target is None:
                raise unknown_machine(TARGET_FIELD, machine_id)
            if inspection.inspection_type not in target.supported_inspection_types:
                raise MachineLacksTypeError(TARGET_FIELD, machine_id, inspection.inspection_type)
            await repository.set_target(session, inspection_id, machine_id)
            if priority is not None:
                await repository.set_priority(session, inspection_id, priority)
            refreshed = await repository.lock_inspection(session, inspection_id)
            assert refreshed is not None
            want = Want(refreshed.inspection_type, machine_id)
            sent = await self._assign(session, [refreshed], "load_balanced", {inspection_id: want}, actor, set())
            if not sent:
                reason = why_none(
                    want,
                    [candidate_of(m) for m in await repository.machines_running(session, inspection.inspection_type)]
                    + await self._target_only(session, machine_id),
                )
                await repository.record_send_failure(
                    session, inspection_id, f"{machine_id}: {reason}", datetime.now(UTC)
                )
                return Outcome(inspection_id, machine_id, delivered=False, reason=reason)
        return await self._deliver(sent[0])

    async def _target_only(self, session: AsyncSession, machine_id: str) -> list[Candidate]:
        machine = await repository.get_machine(session, machine_id)
        return [] if machine is None else [candidate_of(machine)]

    async def distribute(self, inspection_id: str, strategy: Strategy, want: Want, actor: str) -> Outcome:
        """Choose a machine for a pending inspection with `strategy` and give it the inspection; 409 naming
        why when no machine can take it now."""
        async with self._sessions() as session, session.begin():
            inspection = await self._pending(session, inspection_id)
            sent = await self._assign(session, [inspection], strategy, {inspection_id: want}, actor, set())
            if not sent:
                machines = [candidate_of(m) for m in await repository.machines_running(session, want.inspection_type)]
                if want.target_machine_id is not None:
                    machines += await self._target_only(session, want.target_machine_id)
                raise NoMachineError(inspection_id, why_none(want, machines))
        return await self._deliver(sent[0])

    async def _pending(self, session: AsyncSession, inspection_id: str) -> Inspection:
        inspection = await repository.lock_inspection(session, inspection_id)
        if inspection is None:
            raise InspectionNotFoundError(inspection_id)
        if inspection.status != InspectionStatus.pending:
            raise InspectionNotPendingError(inspection_id, inspection.status)
        return inspection

    # -- chores of the periodic pass -----------------------------------------------------------------------

    async def requeue_stranded(self) -> int:
        """Inspections on machines offline longer than the grace period go back to the queue, fenced by a new
        lease; the machine owes a drop, sent when it is back."""
        grace = timedelta(seconds=self._settings.offline_requeue_grace_seconds)
        async with self._sessions() as session, session.begin():
            stranded = await repository.stranded(session, datetime.now(UTC) - grace, CHORE_BATCH)
            for inspection in stranded:
                machine_id = inspection.assigned_machine_id
                assert machine_id is not None
                await repository.add_drop(
                    session, machine_id, inspection.id, inspection.lease, DropReason.reassigned.value
                )
                await transition(
                    session,
                    inspection,
                    InspectionStatus.pending,
                    actor=SYSTEM,
                    reason=f"machine {machine_id} offline for more than {grace.total_seconds():g} s",
                )
                await repository.bump_lease(session, inspection.id)
                await announce_work(session, inspection.id)
        if stranded:
            self.stats["requeued_offline"] += len(stranded)
            logger.info("re-queued %d inspection(s) from offline machines", len(stranded))
        return len(stranded)

    async def resend_undelivered(self) -> int:
        """Inspections left `assigned` without a recorded answer (a crash between the commit and the call) are
        sent again under the same attempt, which a machine that has them answers as a duplicate."""
        before = datetime.now(UTC) - timedelta(seconds=self._settings.delivery_timeout_seconds)
        async with self._sessions() as session, session.begin():
            rows = await repository.undelivered(session, before, CHORE_BATCH)
            secrets = await repository.webhook_secrets(session, [str(i.assigned_machine_id) for i in rows])
            resend = []
            for inspection in rows:
                machine = await repository.get_machine(session, str(inspection.assigned_machine_id))
                if machine is None:
                    continue
                await repository.touch_assigned(session, inspection.id, datetime.now(UTC))
                resend.append(
                    Sent(
                        inspection.id,
                        machine.id,
                        base_url(machine.ip_address, machine.port),
                        inspection.lease,
                        self._order(inspection, machine.id, inspection.lease),
                        secrets.get(machine.id),
                    )
                )
        for sent in resend:
            self._spawn(sent)
        self.stats["resent"] += len(resend)
        return len(resend)

    async def settle_drops(self, machine_id: str | None = None) -> int:
        """Tell machines that are up about the inspections they must cancel or drop; returns how many were
        settled. A failed call is tried again later, with backoff."""
        hold = timedelta(
            seconds=self._settings.machine_connect_timeout_seconds + self._settings.machine_read_timeout_seconds + 1
        )
        async with self._sessions() as session, session.begin():
            owed = await repository.claim_drops(session, datetime.now(UTC), hold, CHORE_BATCH, machine_id)
            secrets = await repository.webhook_secrets(session, [machine.id for _, machine in owed])
            calls = [
                (
                    drop.id,
                    drop.tries,
                    base_url(machine.ip_address, machine.port),
                    secrets.get(machine.id),
                    drop.inspection_id,
                    drop.reason,
                )
                for drop, machine in owed
            ]
        if not calls:
            return 0
        answers = await asyncio.gather(
            *(self._client.cancel(url, secret, inspection, reason) for _, _, url, secret, inspection, reason in calls)
        )
        settled = 0
        now = datetime.now(UTC)
        async with self._sessions() as session, session.begin():
            for (drop_id, tries, *_), delivery in zip(calls, answers, strict=True):
                if delivery.ok:
                    await repository.settle_drop(session, drop_id, delivery.machine_status or "cancelled", now)
                    settled += 1
                else:
                    delay = full_jitter(
                        tries, self._settings.dispatch_retry_base_seconds, self._settings.dispatch_retry_cap_seconds
                    )
                    await repository.drop_failed(
                        session, drop_id, delivery.reason or delivery.answer.value, now + timedelta(seconds=delay)
                    )
        self.stats["drops_settled"] += settled
        return settled
