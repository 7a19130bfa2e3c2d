"""Events between services: an outbox per schema, a relay to Redis streams, and reliable consumers."""

from mirante.bus.consumer import StreamConsumer
from mirante.bus.dead_letters import DEAD_LETTER_STREAM
from mirante.bus.envelope import Event, InvalidEventError
from mirante.bus.handlers import BatchHandler, Handler, HandlerCommitError
from mirante.bus.inbox import delete_old_inbox_rows
from mirante.bus.interest import TypeInterest, WantedTypes, fixed_types
from mirante.bus.outbox import emit, emit_many, outbox_insert
from mirante.bus.outcomes import ConsumerStats, Outcome
from mirante.bus.relay import OutboxRelay, RelayStats

__all__ = [
    "DEAD_LETTER_STREAM",
    "BatchHandler",
    "ConsumerStats",
    "Event",
    "Handler",
    "HandlerCommitError",
    "InvalidEventError",
    "OutboxRelay",
    "Outcome",
    "RelayStats",
    "StreamConsumer",
    "TypeInterest",
    "WantedTypes",
    "delete_old_inbox_rows",
    "emit",
    "emit_many",
    "fixed_types",
    "outbox_insert",
]
