"""Topic filters, shared-subscription names and the QoS 1 SUBSCRIBE of the runner."""

from __future__ import annotations

from collections.abc import Sequence

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from mirante.mqtt.errors import InvalidTopicFilterError, SubscriptionRefusedError

SHARED_PREFIX = "$share/"


def subscription_filters(topics: Sequence[str], group: str | None = None) -> tuple[str, ...]:
    """Validate topic filters; with a `group`, turn each into `$share/<group>/<filter>`.

    A shared subscription makes the broker give each message to only one member of the group, so several
    workers split one stream. Raises `InvalidTopicFilterError`.
    """
    filters = [topics] if isinstance(topics, str) else list(topics)
    if not filters:
        raise InvalidTopicFilterError("at least one topic filter is required")
    for topic_filter in filters:
        try:
            aiomqtt.Wildcard(topic_filter)
        except (TypeError, ValueError) as exc:
            raise InvalidTopicFilterError(f"invalid MQTT topic filter {topic_filter!r}") from exc
    if group is None:
        return tuple(filters)
    if not isinstance(group, str) or not group or any(char in group for char in "/+#"):
        raise InvalidTopicFilterError(f"invalid shared-subscription group {group!r}: no '/', '+' or '#'")
    if any(topic_filter.startswith(SHARED_PREFIX) for topic_filter in filters):
        raise InvalidTopicFilterError("pass plain filters together with a group, not '$share/...' filters")
    return tuple(f"{SHARED_PREFIX}{group}/{topic_filter}" for topic_filter in filters)


async def qos1_subscription(client: aiomqtt.Client, filters: Sequence[str], *, mqtt5: bool) -> None:
    """Subscribe to every filter at QoS 1 in one SUBSCRIBE.

    Raises `SubscriptionRefusedError` unless the broker granted QoS 1 to all of them.
    """
    if mqtt5:
        granted = await client.subscribe([(item, SubscribeOptions(qos=1)) for item in filters])
    else:
        granted = await client.subscribe([(item, 1) for item in filters])
    for topic_filter, code in zip(filters, granted, strict=True):
        qos = code.value if isinstance(code, ReasonCode) else code
        if qos != 1:
            raise SubscriptionRefusedError(
                f"the broker answered {code!s} (granted QoS or failure) to the subscription {topic_filter!r}"
            )
