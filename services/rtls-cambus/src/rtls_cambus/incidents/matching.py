"""Matching a suite event against an incident rule, and filling a rule's title from the event's payload.

Conditions address the event's `data` by dotted paths (`result.camera.id`); a list index is a path segment too
(`defects.0.label`). Three operators: `equals` (the value at the path equals the given JSON value), `in` (it is
one of the given values) and `exists` (the path is there; `value: false` asks that it is not). All conditions of
a rule must hold.

The title template substitutes `{dotted.path}` from the payload and nothing else: no attribute access, no
format specs, no expressions, so a template cannot reach anything but the event's own data. `{{` and `}}` are
literal braces; a path the payload lacks becomes an empty string.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

PATH_PATTERN: Final = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
TEMPLATE_PATTERN: Final = r"^([^{}\x00]|\{\{|\}\}|\{[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*\})*$"
"""What `template_problem` accepts, for the schema: text, `{{`, `}}` and `{dotted.path}` placeholders (no NUL)."""
_PLACEHOLDER: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PATH: Final = re.compile(PATH_PATTERN)
_MISSING: Final = object()
TITLE_MAX_LENGTH: Final = 500


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


def render_title(template: str, data: Mapping[str, Any]) -> str:
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
    return title[:TITLE_MAX_LENGTH] or "Incident"


def _json_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
