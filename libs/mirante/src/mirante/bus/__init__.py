"""Events between services: an outbox per schema, a relay to Redis streams, and reliable consumers."""

from mirante.bus.consumer import DEAD_LETTER_STREAM, ConsumerStats, Handler, HandlerCommitError, Outcome, StreamConsumer
from mirante.bus.envelope import Event, InvalidEventError
from mirante.bus.outbox import emit, emit_many, outbox_insert
from mirante.bus.relay import OutboxRelay, RelayStats

__all__ = [
    "DEAD_LETTER_STREAM",
    "ConsumerStats",
    "Event",
    "Handler",
    "HandlerCommitError",
    "InvalidEventError",
    "OutboxRelay",
    "Outcome",
    "RelayStats",
    "StreamConsumer",
    "emit",
    "emit_many",
    "outbox_insert",
]
