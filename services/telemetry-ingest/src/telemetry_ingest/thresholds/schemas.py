"""Request and response bodies of the threshold rules API, and the limit checks shared with the service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StringConstraints, model_validator

from mirante.web.schema import Omittable
from telemetry_ingest.identifiers import IDENTIFIER_PATTERN

Identifier = Annotated[
    str,
    StringConstraints(pattern=f"^{IDENTIFIER_PATTERN}$"),
    Field(description="1 to 128 of `A-Z a-z 0-9 _ . : -`, as in the MQTT topic", examples=["boiler-7"]),
]
# Strict: a number only, never `true` or `"1.5"` read as one (integers stay numbers).
Limit = Annotated[float, Strict(), Field(allow_inf_nan=False, description="a finite number, in the sensor's unit")]
Hysteresis = Annotated[
    float,
    Strict(),
    Field(
        ge=0,
        allow_inf_nan=False,
        description="how far back inside a limit a value must come to return to normal (0: right at the limit); "
        "smaller than max_value - min_value",
    ),
]
StateName = Literal["normal", "below", "above"]


def limit_problems(min_value: float | None, max_value: float | None, hysteresis: float) -> list[dict[str, str]]:
    """What is wrong with these limits, as `{field, message}` items (empty when they are valid)."""
    problems: list[dict[str, str]] = []
    if min_value is None and max_value is None:
        problems.append({"field": "min_value", "message": "give min_value, max_value or both"})
    if min_value is not None and max_value is not None:
        if min_value >= max_value:
            problems.append(
                {"field": "max_value", "message": f"max_value ({max_value}) must exceed min_value ({min_value})"}
            )
        elif hysteresis >= max_value - min_value:
            problems.append(
                {
                    "field": "hysteresis",
                    "message": f"hysteresis ({hysteresis}) must be smaller than max_value - min_value "
                    f"({max_value - min_value})",
                }
            )
    return problems


class ThresholdRuleCreate(BaseModel):
    """A new rule: readings of `sensor` below `min_value` or above `max_value` raise a crossing event."""

    model_config = ConfigDict(extra="forbid")

    device_id: Identifier | None = Field(default=None, description="the device; null or omitted: every device")
    sensor: Identifier = Field(description="the sensor type, as in the topic", examples=["temperature"])
    min_value: Limit | None = None
    max_value: Limit | None = None
    hysteresis: Hysteresis = 0.0
    enabled: StrictBool = True

    @model_validator(mode="after")
    def _valid_limits(self) -> ThresholdRuleCreate:
        problems = limit_problems(self.min_value, self.max_value, self.hysteresis)
        if problems:
            raise ValueError("; ".join(problem["message"] for problem in problems))
        return self


class ThresholdRuleUpdate(BaseModel):
    """Fields to change; omitted fields stay. `device_id`, `min_value` and `max_value` may be set to null (every
    device, no such limit); the rule as changed must still pass the checks of a new rule."""

    model_config = ConfigDict(extra="forbid")

    device_id: Identifier | None = None
    sensor: Omittable[Identifier] = None
    min_value: Limit | None = None
    max_value: Limit | None = None
    hysteresis: Omittable[Hysteresis] = None
    enabled: Omittable[StrictBool] = None

    @model_validator(mode="after")
    def _not_null(self) -> ThresholdRuleUpdate:
        for field in ("sensor", "hysteresis", "enabled"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their values."""
        return {field: getattr(self, field) for field in self.model_fields_set}


class ThresholdRuleRead(BaseModel):
    """A rule as the API shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str | None = Field(description="null: every device")
    sensor: str
    min_value: float | None
    max_value: float | None
    hysteresis: float
    enabled: bool
    created_at: datetime
    updated_at: datetime


class StateCounts(BaseModel):
    """How many devices the rule currently sees in each state."""

    normal: int = 0
    below: int = 0
    above: int = 0


class ThresholdRuleDetail(ThresholdRuleRead):
    """A rule with a summary of its current states; the per-device states are at `.../states`."""

    states: StateCounts


class ThresholdStateRead(BaseModel):
    """Where one device stands against a rule."""

    model_config = ConfigDict(from_attributes=True)

    device_id: str
    state: StateName
    value: float | None = Field(description="the last evaluated value")
    ts: datetime | None = Field(description="the timestamp of the last evaluated reading")
    changed_at: datetime | None = Field(description="the timestamp of the reading that set the current state")
