"""MQTT for the suite: a reliable batch subscriber, a QoS 1 publisher and broker URL parsing.

`SubscriberRunner` keeps a persistent session under a fixed client id and acknowledges each message only
after the handler has processed its batch, so nothing queued at the broker is lost across restarts or crashes.
"""

from mirante.mqtt.connection import MqttProtocol, discard_session
from mirante.mqtt.errors import (
    InvalidMqttUrlError,
    InvalidTopicFilterError,
    MqttConfigError,
    SubscriptionRefusedError,
)
from mirante.mqtt.message import BatchHandler, Message
from mirante.mqtt.publish import Publisher, publish
from mirante.mqtt.runner import SubscriberRunner
from mirante.mqtt.topics import subscription_filters
from mirante.mqtt.url import MqttEndpoint, parse_mqtt_url

__all__ = [
    "BatchHandler",
    "InvalidMqttUrlError",
    "InvalidTopicFilterError",
    "Message",
    "MqttConfigError",
    "MqttEndpoint",
    "MqttProtocol",
    "Publisher",
    "SubscriberRunner",
    "SubscriptionRefusedError",
    "discard_session",
    "parse_mqtt_url",
    "publish",
    "subscription_filters",
]
