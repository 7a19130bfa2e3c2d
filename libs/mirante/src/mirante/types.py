"""Types for values that come from outside and may reach PostgreSQL: route parameters and request bodies.

Every route parameter and body field of the suite uses these instead of a bare `str` or `int`. PostgreSQL
text cannot hold NUL, and asyncpg cannot send an integer beyond the column's type; left to the driver, each
was a 500 (and a NUL in an export filter cut the CSV after its 200). With these types
the request is refused with a 422 naming the field before any handler runs. They work the same in `Query`,
`Path`, `Body` and pydantic models; constraints given there (`Query(max_length=40)`, `Path(le=99)`) narrow
the type's own bounds. `DateTime` takes only RFC 3339 date-times, as `format: date-time` promises, and `DateTime`
and `Date` only years 1900 to 8999 (year 1 reached PostgreSQL as -infinity, and a default window computed back
from it overflowed Python's dates: both were 500s):

```python
async def get_job(job_id: Annotated[Id64, Path(description="CVAT job id")]) -> Job: ...
async def list_devices(q: Annotated[Text | None, Query(max_length=200)] = None) -> Page[Device]: ...
class LoginRequest(BaseModel):
    username: Annotated[Text, Field(max_length=150)]
```
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, TypeVar, Union

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from typing_extensions import TypeAliasType

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

TEXT_MAX_LENGTH = 10_000
"""Bound of `Text` when the parameter or field sets no tighter one."""


def storable_text(value: str) -> str:
    """`value` unchanged, or a validation error when it holds NUL, the one character PostgreSQL text refuses.

    (Unpaired surrogates, which UTF-8 cannot encode, never get this far: pydantic refuses them as strings.)
    """
    if "\x00" in value:
        raise PydanticCustomError("text_nul", "must not contain a NUL character (U+0000)")
    return value


TEXT_PATTERN = "^[^\\x00]*$"
"""What `Text` admits, as the JSON Schema `pattern` its OpenAPI description carries."""


class RefusesNul:
    """Annotation of a `str` that PostgreSQL text must hold: refuses NUL (`storable_text`) and says so in the JSON
    Schema (`TEXT_PATTERN`), so clients and fuzzers know it before they send one. `Text` carries it; a string
    type of its own (`Annotated[str, StringConstraints(...), REFUSES_NUL]`) adds it last."""

    def __get_pydantic_core_schema__(self, source: type[Any], handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(storable_text, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        described = handler(schema)
        described.setdefault("pattern", TEXT_PATTERN)
        return described


REFUSES_NUL = RefusesNul()

Text = Annotated[str, StringConstraints(max_length=TEXT_MAX_LENGTH), REFUSES_NUL]
"""Text PostgreSQL can store: no NUL, at most `TEXT_MAX_LENGTH` characters."""

# Written out rather than `\s`, which differs between regex engines: Python's (the validator's, and the fuzzers'
# built on hypothesis) also counts U+001C..U+001F and U+0085, ECMA-262's (JSON Schema's, browsers') also U+FEFF.
# Trimming removes all of them, and every engine reads the pattern below the same way.
WHITE_SPACE_CLASS = r"\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
WHITE_SPACE = (
    "\t\n\v\f\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
"""What `NotBlankText` trims: white space in Python's sense (`str.isspace`) or in ECMA-262's; `WHITE_SPACE_CLASS`
is the same set as the inside of a regex character class, for patterns of text that must not be blank."""

NOT_BLANK_PATTERN = f"^[{WHITE_SPACE_CLASS}]*[^{WHITE_SPACE_CLASS}\\x00][^\\x00]*$"
"""What `NotBlankText` admits, as the JSON Schema `pattern`: a character other than `WHITE_SPACE`, and no NUL. One
pattern, because a schema holds one: `\\S` alone would stop saying that NUL is refused."""


def trimmed_not_blank(value: str) -> str:
    """`value` without the white space around it, or a validation error when nothing else is left or it holds NUL."""
    trimmed = storable_text(value).strip(WHITE_SPACE)
    if not trimmed:
        raise PydanticCustomError("text_blank", "must not be empty or only white space")
    return trimmed


@dataclass(frozen=True)
class NotBlank:
    """Annotation of a `str` that must hold more than white space: at most `max_length` characters as sent (the
    bound the schema publishes), no NUL, trimmed, then refused when empty (`trimmed_not_blank`). The JSON Schema
    says so (`minLength` 1, `NOT_BLANK_PATTERN`), so a name of spaces alone is invalid for clients and fuzzers too,
    not valid by the schema and refused after trimming.

    Give a narrower bound here (`Annotated[str, NotBlank(max_length=200)]`) rather than with `Field(max_length=)`
    after it, which pydantic would check on the trimmed value, not on the one the schema describes.
    """

    max_length: int = TEXT_MAX_LENGTH

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        if source is not str:
            raise TypeError(f"NotBlank annotates str, not {source!r}")
        return core_schema.no_info_after_validator_function(
            trimmed_not_blank, core_schema.str_schema(max_length=self.max_length)
        )

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        described = handler(schema)
        described.update(minLength=1, pattern=NOT_BLANK_PATTERN)
        return described


NotBlankText = Annotated[str, NotBlank()]
"""Text with something in it besides white space, stored trimmed: names, titles, messages. At most
`TEXT_MAX_LENGTH` characters; `Annotated[str, NotBlank(max_length=...)]` for a narrower bound."""

# RFC 3339's `date-time` (section 5.6) with its `T` and `Z` in either case. Pydantic alone would also take
# numbers as Unix timestamps (`0.5`), dates without a time, times without seconds and times without an offset.
_RFC3339_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def rfc3339_date_time(value: object) -> object:
    """`value` unchanged when it is a `datetime` or the text of an RFC 3339 date-time, else a validation error."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339_DATE_TIME.fullmatch(value):
        raise PydanticCustomError(
            "datetime_rfc3339", "must be an RFC 3339 date-time with an offset, such as 2025-10-17T08:00:00Z"
        )
    return value


EARLIEST_YEAR = 1900
LATEST_YEAR = 8999
"""The years `DateTime` and `Date` take, as written (before a date-time is turned to UTC).

Far enough inside Python's years 1 to 9999 for any offset, default window or bucket arithmetic never to leave
them, and inside what PostgreSQL stores as a date (asyncpg sends year 1's first instant as -infinity). No reading,
job, recording or report of the suite falls outside them; a value that does is a corrupt clock or a probe.
"""
YEAR_PATTERN = "^(19[0-9]{2}|[2-8][0-9]{3})-"
"""The years of `EARLIEST_YEAR` to `LATEST_YEAR`, as the JSON Schema `pattern` of a date or date-time text."""

_Dated = TypeVar("_Dated", bound=date)


def within_years(value: _Dated) -> _Dated:
    """`value` unchanged when its year (as written) is within `EARLIEST_YEAR`..`LATEST_YEAR`, else a validation
    error."""
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise PydanticCustomError(
            "date_year",
            "must fall between the years {earliest} and {latest}",
            {"earliest": EARLIEST_YEAR, "latest": LATEST_YEAR},
        )
    return value


class WithinYears:
    """Annotation of a `date` or `datetime`: refuses years outside `EARLIEST_YEAR`..`LATEST_YEAR` (`within_years`)
    and says so in the JSON Schema (`YEAR_PATTERN`), so clients and fuzzers know it before they send one."""

    def __get_pydantic_core_schema__(self, source: type[Any], handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(within_years, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        described = handler(schema)
        described.setdefault("pattern", YEAR_PATTERN)
        return described


WITHIN_YEARS = WithinYears()


def in_utc(value: datetime) -> datetime:
    """The same instant in UTC, or a validation error when it falls outside the years Python can hold."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("datetime_range", "must fall between the years 1 and 9999 in UTC") from None


DateTime = Annotated[AwareDatetime, BeforeValidator(rfc3339_date_time), WITHIN_YEARS, AfterValidator(in_utc)]
"""An instant given as an RFC 3339 date-time (offset required) of a year within `EARLIEST_YEAR`..`LATEST_YEAR`,
converted to UTC; `format: date-time` in OpenAPI."""

Date = Annotated[date, WITHIN_YEARS]
"""A calendar date (`2025-10-17`) of a year within `EARLIEST_YEAR`..`LATEST_YEAR`; `format: date` in OpenAPI."""


def not_a_boolean(value: object) -> object:
    """`value` unchanged, or a validation error when it is `true` or `false`, which pydantic would take as 1 or 0."""
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "must be an integer, not true or false")
    return value


def a_json_number(value: object) -> object:
    """`value` unchanged, or a validation error when it is text or `true`/`false`.

    For numbers of request bodies, where the schema admits JSON numbers only: pydantic's lax mode took `"6"` as 6
    and `true` as 1. (Query and path values arrive as text, so parameters cannot use it.)
    """
    if isinstance(value, str | bytes | bool):
        raise PydanticCustomError("number_type", "must be a number, not text or true/false")
    return value


JSON_NUMBER = BeforeValidator(a_json_number)
"""Annotation of a body's `int` or `float`: only a JSON number is taken (`a_json_number`)."""


@dataclass(frozen=True)
class IntRange:
    """The range a column can hold, kept together with any narrower bounds the field itself gives; booleans are
    refused (pydantic's lax mode took `false` as 0, so `{"level": false}` was stored as level 0).

    Plain `Ge`/`Le` metadata on the type would override the field's own: with `count: Int64 = Field(ge=0)`
    pydantic applied the type's `ge` last, and -1 was accepted. This intersects the two instead. Bounds given
    after the type (`Annotated[Int32, Field(le=10)]`) are checked after it; pydantic then describes them with
    their own names (`le`), which `mirante.web.openapi` writes as JSON Schema's (`maximum`).
    """

    lowest: int
    highest: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        if schema["type"] != "int":
            raise TypeError(f"IntRange bounds integers, not {schema['type']}")
        bounded = core_schema.int_schema(
            ge=max(schema.get("ge", self.lowest), self.lowest),
            le=min(schema.get("le", self.highest), self.highest),
            strict=schema.get("strict"),
        )
        return core_schema.no_info_before_validator_function(not_a_boolean, bounded)


Int32 = Annotated[int, IntRange(INT32_MIN, INT32_MAX)]
"""A signed 32-bit integer: what an `integer` column holds."""

Int64 = Annotated[int, IntRange(INT64_MIN, INT64_MAX)]
"""A signed 64-bit integer: what a `bigint` column holds."""

Id32 = Annotated[int, IntRange(1, INT32_MAX)]
"""A positive id in an `integer` (`serial`) column."""

Id64 = Annotated[int, IntRange(1, INT64_MAX)]
"""A positive id in a `bigint` (`bigserial`, identity) column, or an outside system's id stored in one."""

JSON_MAX_DEPTH = 32
"""How deeply `JsonObject` values may nest."""


def storable_json(value: Any, depth: int = 0) -> Any:
    """`value` unchanged when PostgreSQL `jsonb` can hold it, else a validation error: no NUL in any key or
    string (jsonb refuses `\\u0000` as text does), no NaN or infinity, at most `JSON_MAX_DEPTH` levels deep."""
    if depth > JSON_MAX_DEPTH:
        raise PydanticCustomError("json_depth", "must not nest deeper than {depth} levels", {"depth": JSON_MAX_DEPTH})
    if isinstance(value, str):
        storable_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("json_number", "numbers must be finite (no NaN or infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable_text(key)
            storable_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            storable_json(item, depth + 1)
    return value


class RefusesNulKeys:
    """Annotation of a `dict` whose keys PostgreSQL must store: says so in the JSON Schema (`propertyNames`). The
    check itself is `storable_json`'s, run on the whole value first."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        described = handler(schema)
        described["propertyNames"] = {"pattern": TEXT_PATTERN}
        return described


REFUSES_NUL_KEYS = RefusesNulKeys()

# What `jsonb` stores, as a recursive type: named `StorableJson` in the schema, which then says "no NUL in any
# string or key" at every depth. Pydantic's own `JsonValue` is described as `{}`, anything, so fuzzers sent NUL
# deep inside and met a 422 on schema-valid input (or a 500 where nothing checked).
if TYPE_CHECKING:
    StorableJson: TypeAlias = dict[str, "StorableJson"] | list["StorableJson"] | str | int | float | bool | None
else:
    StorableJson = TypeAliasType(
        "StorableJson",
        Union[  # noqa: UP007 (a recursive alias needs the subscripted form)
            Annotated[dict[str, "StorableJson"], REFUSES_NUL_KEYS],
            list["StorableJson"],
            Annotated[str, REFUSES_NUL],
            int,
            float,
            bool,
            None,
        ],
    )

JsonData = Annotated[StorableJson, BeforeValidator(storable_json)]
"""Any JSON value PostgreSQL `jsonb` can store (`storable_json`, checked first, so its errors are the ones
reported): a value to compare with, a payload to keep."""

JsonObject = Annotated[dict[str, StorableJson], REFUSES_NUL_KEYS, BeforeValidator(storable_json)]
"""A JSON object PostgreSQL `jsonb` can store (`storable_json`): free-form settings, specs, results."""

__all__ = [
    "EARLIEST_YEAR",
    "INT32_MAX",
    "INT32_MIN",
    "INT64_MAX",
    "INT64_MIN",
    "JSON_MAX_DEPTH",
    "JSON_NUMBER",
    "LATEST_YEAR",
    "NOT_BLANK_PATTERN",
    "REFUSES_NUL",
    "REFUSES_NUL_KEYS",
    "TEXT_MAX_LENGTH",
    "TEXT_PATTERN",
    "WHITE_SPACE",
    "WHITE_SPACE_CLASS",
    "WITHIN_YEARS",
    "YEAR_PATTERN",
    "Date",
    "DateTime",
    "Id32",
    "Id64",
    "Int32",
    "Int64",
    "JsonData",
    "JsonObject",
    "NotBlank",
    "NotBlankText",
    "RefusesNul",
    "RefusesNulKeys",
    "StorableJson",
    "Text",
    "WithinYears",
    "a_json_number",
    "in_utc",
    "not_a_boolean",
    "rfc3339_date_time",
    "storable_json",
    "storable_text",
    "trimmed_not_blank",
    "within_years",
]
