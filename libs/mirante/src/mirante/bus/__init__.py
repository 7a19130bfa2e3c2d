"""Events between services: an outbox per schema, a relay to Redis streams, and reliable consumers.

Names are imported on first use, so migrations that only need `mirante.bus.tables` stay light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mirante.bus.consumer import (
        DEAD_LETTER_STREAM,
        ConsumerStats,
        Handler,
        Outcome,
        StreamConsumer,
        delete_old_inbox_rows,
    )
    from mirante.bus.envelope import Event, InvalidEventError
    from mirante.bus.outbox import emit
    from mirante.bus.relay import OutboxRelay, RelayStats

_EXPORTS = {
    "DEAD_LETTER_STREAM": "mirante.bus.consumer",
    "ConsumerStats": "mirante.bus.consumer",
    "Handler": "mirante.bus.consumer",
    "Outcome": "mirante.bus.consumer",
    "StreamConsumer": "mirante.bus.consumer",
    "delete_old_inbox_rows": "mirante.bus.consumer",
    "Event": "mirante.bus.envelope",
    "InvalidEventError": "mirante.bus.envelope",
    "emit": "mirante.bus.outbox",
    "OutboxRelay": "mirante.bus.relay",
    "RelayStats": "mirante.bus.relay",
}

__all__ = [
    "DEAD_LETTER_STREAM",
    "ConsumerStats",
    "Event",
    "Handler",
    "InvalidEventError",
    "OutboxRelay",
    "Outcome",
    "RelayStats",
    "StreamConsumer",
    "delete_old_inbox_rows",
    "emit",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
