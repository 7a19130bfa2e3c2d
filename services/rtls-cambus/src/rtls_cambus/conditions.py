"""The condition language of incident and alert rules: matching a suite event's payload, and filling a
template (an incident's title, an alert's message) from it.

Conditions address the event's `data` by dotted paths (`result.camera.id`); a list index is a path segment too
(`defects.0.label`). Three operators: `equals` (the value at the path equals the given JSON value), `in` (it is
one of the given values) and `exists` (the path is there; `value: false` asks that it is not). All conditions of
a rule must hold.

A template substitutes `{dotted.path}` from the payload and nothing else: no attribute access, no
format specs, no expressions, so a template cannot reach anything but the event's own data. `{{` and `}}` are
literal braces; a path the payload lacks becomes an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from pydantic import Field, StrictBool, StringConstraints

from mirante.types import WHITE_SPACE_CLASS, JsonData
from rtls_cambus.fields import Body

PATH_PATTERN: Final = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
_BRACES: Final = r"\{\{|\}\}|\{[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*\}"
TEMPLATE_PATTERN: Final = rf"^([^{{}}\x00]|{_BRACES})*$"
"""What `template_problem` accepts, for the schema: text, `{{`, `}}` and `{dotted.path}` placeholders (no NUL)."""
NOT_BLANK_TEMPLATE_PATTERN: Final = (
    rf"^[{WHITE_SPACE_CLASS}]*([^{{}}{WHITE_SPACE_CLASS}\x00]|{_BRACES})([^{{}}\x00]|{_BRACES})*$"
)
"""`TEMPLATE_PATTERN` for a template that must hold more than white space (`mirante.types.NotBlank`)."""
_PLACEHOLDER: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PATH: Final = re.compile(PATH_PATTERN)
_MISSING: Final = object()


def lookup(data: Any, path: str) -> Any:
    """The value at dotted `path` in `data`, or `_MISSING`."""
    value = data
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, Sequence) and not isinstance(value, str) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def condition_holds(data: Mapping[str, Any], condition: Mapping[str, Any]) -> bool:
    value = lookup(data, condition["path"])
    match condition["op"]:
        case "exists":
            return (value is not _MISSING) == (condition.get("value") is not False)
        case "equals":
            return value is not _MISSING and _same(value, condition.get("value"))
        case "in":
            return value is not _MISSING and any(_same(value, option) for option in condition.get("value") or [])
    return False


def _same(left: Any, right: Any) -> bool:
    # JSON has no separate booleans and numbers in Python's sense: True == 1 must not match.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return bool(left == right)


def matches(data: Mapping[str, Any], conditions: Sequence[Mapping[str, Any]]) -> bool:
    return all(condition_holds(data, condition) for condition in conditions)


def template_problem(template: str) -> str | None:
    """Why `template` is not a valid title template, or None."""
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if token in ("{", "}"):
            return "a lone brace: write {{ or }} for a literal one"
        if not _PATH.fullmatch(match.group(1)):
            return f"{token} is not a dotted path of the payload (letters, digits, _ and - between dots)"
    return None


def render_template(template: str, data: Mapping[str, Any], *, max_length: int, fallback: str) -> str:
    """`template` with each `{dotted.path}` replaced from `data`, on one line, cut at `max_length`; `fallback`
    when that leaves nothing."""

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        if match.group(1) is None:
            return token
        value = lookup(data, match.group(1))
        if value is _MISSING or value is None:
            return ""
        return value if isinstance(value, str) else _json_text(value)

    title = " ".join(_PLACEHOLDER.sub(substitute, template).replace("\x00", "").split())
    return title[:max_length] or fallback


def _json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


DataPath = Annotated[
    str,
    StringConstraints(pattern=PATH_PATTERN, max_length=200),
    Field(description="dotted path into the event's data, e.g. result.camera.id"),
]


class EqualsCondition(Body):
    path: DataPath
    op: Literal["equals"]
    value: JsonData = Field(default=None, description="the JSON value the data must hold at the path")


class InCondition(Body):
    path: DataPath
    op: Literal["in"]
    value: list[JsonData] = Field(description="the JSON values the data may hold at the path")


class ExistsCondition(Body):
    path: DataPath
    op: Literal["exists"]
    value: StrictBool | None = Field(default=None, description="true (or no value): the path is there; false: not")


# One model per operator, told apart by `op`, so the schema itself says which value each takes.
Condition = Annotated[EqualsCondition | InCondition | ExistsCondition, Field(discriminator="op")]


EventType = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", max_length=200),
    Field(description="a suite event type, e.g. vision.inspection.failed or rtls.alert.created"),
]
Conditions = Annotated[list[Condition], Field(max_length=20, description="all must hold")]
