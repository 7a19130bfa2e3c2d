"""Per-process cache of each tenant's enabled threshold rules, indexed for the ingest hot path.

Ingest evaluates every batch, and most tenants have no rules at all: the cache makes that case a dictionary
lookup. Entries live `ttl_seconds` (rules changed by another process show up within that time); a change made
through this process invalidates the tenant's entry at once and again when its transaction commits. The app
builds one cache in its lifespan (`app.state.rule_cache`), shared by its writer and its rules API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Final


@dataclass(frozen=True, slots=True)
class Rule:
    """An enabled threshold rule as evaluation needs it."""

    id: int
    device_id: str | None
    sensor: str
    min_value: float | None
    max_value: float | None
    hysteresis: float


RULE_FIELDS: Final = tuple(item.name for item in fields(Rule))
"""The columns of `threshold_rules` evaluation reads: the fields of `Rule`."""


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The enabled rules of one tenant: per sensor for every device, and per (device, sensor)."""

    sensors: frozenset[str] = frozenset()
    every_device: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    per_device: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: list[Rule]) -> RuleSet:
        """Index `rules` by sensor (rules without a device) and by (device, sensor)."""
        every_device: dict[str, list[Rule]] = {}
        per_device: dict[tuple[str, str], list[Rule]] = {}
        for rule in rules:
            if rule.device_id is None:
                every_device.setdefault(rule.sensor, []).append(rule)
            else:
                per_device.setdefault((rule.device_id, rule.sensor), []).append(rule)
        return cls(
            sensors=frozenset(rule.sensor for rule in rules),
            every_device={sensor: tuple(group) for sensor, group in every_device.items()},
            per_device={key: tuple(group) for key, group in per_device.items()},
        )

    def rules_for(self, device_id: str, sensor: str) -> tuple[Rule, ...]:
        """The rules a reading of `sensor` on `device_id` is evaluated against."""
        return self.every_device.get(sensor, ()) + self.per_device.get((device_id, sensor), ())


EMPTY_RULES = RuleSet()


class RuleCache:
    """Rule sets per tenant schema with a time to live; counts its loads so callers can observe misses."""

    def __init__(self, ttl_seconds: float = 5.0) -> None:
        self.ttl_seconds = ttl_seconds
        self.loads = 0
        self._entries: dict[str, tuple[float, RuleSet]] = {}
        self._generations: dict[str, int] = {}
        self._epoch = 0

    def get(self, schema: str) -> RuleSet | None:
        """The cached rules of `schema`, or None when absent or expired."""
        entry = self._entries.get(schema)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def generation(self, schema: str) -> tuple[int, int]:
        """A value that changes whenever `schema` is invalidated; read it before loading, pass it to `store`."""
        return self._epoch, self._generations.get(schema, 0)

    def store(self, schema: str, rules: RuleSet, generation: tuple[int, int]) -> None:
        """Keep `rules` unless `schema` was invalidated since `generation` was read (the load may be stale)."""
        self.loads += 1
        if self.generation(schema) == generation:
            self._entries[schema] = (time.monotonic() + self.ttl_seconds, rules)

    def invalidate(self, schema: str | None = None) -> None:
        """Forget the rules of `schema` (every schema when None)."""
        if schema is None:
            self._epoch += 1
            self._entries.clear()
            return
        self._entries.pop(schema, None)
        self._generations[schema] = self._generations.get(schema, 0) + 1
