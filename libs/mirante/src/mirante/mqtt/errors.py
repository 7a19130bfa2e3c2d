"""Typed errors of `mirante.mqtt`."""

from __future__ import annotations


class MqttConfigError(ValueError):
    """An MQTT option passed to this package is invalid."""


class InvalidMqttUrlError(MqttConfigError):
    """A broker URL is not of the form `mqtt[s]://[user:password@]host[:port]`."""


class InvalidTopicFilterError(MqttConfigError):
    """A topic filter or shared-subscription group name is not valid MQTT."""


class SubscriptionRefusedError(RuntimeError):
    """The broker refused a subscription or granted it below QoS 1 (at-least-once would not hold)."""
