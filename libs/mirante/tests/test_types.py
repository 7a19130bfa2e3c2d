"""`mirante.types`: text, integers and dates from outside are refused with a 422 naming the field, not a 500."""

from __future__ import annotations

import json
import logging
import re
from datetime import date
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import text

from mirante.db import Session
from mirante.settings import InfraSettings
from mirante.testing.apps import library_app
from mirante.testing.plugin import ClientFactory, HeadersFactory
from mirante.types import (
    EARLIEST_YEAR,
    INT32_MAX,
    INT64_MAX,
    INT64_MIN,
    JSON_NUMBER,
    LATEST_YEAR,
    NOT_BLANK_PATTERN,
    TEXT_MAX_LENGTH,
    TEXT_PATTERN,
    WHITE_SPACE,
    YEAR_PATTERN,
    Date,
    DateTime,
    Id32,
    Id64,
    Int32,
    Int64,
    JsonData,
    JsonObject,
    NotBlank,
    NotBlankText,
    Text,
)
from mirante.web.errors import error_response
from mirante.web.openapi import json_schema_bounds

router = APIRouter(prefix="/typed")


class Note(BaseModel):
    title: Annotated[Text, Field(max_length=20)]
    body: Text = ""
    count: Int64 = 0


@router.get("/things/{thing_id}")
async def get_thing(
    thing_id: Annotated[Id64, Path(description="a bigint id")],
    session: Session,
    q: Annotated[Text | None, Query(max_length=40)] = None,
    label: Annotated[list[Text] | None, Query()] = None,
    small: Annotated[Id32 | None, Query()] = None,
) -> dict[str, object]:
    # Through the database on purpose: without the types, every value below reached asyncpg and failed there.
    row = (
        await session.execute(
            text("SELECT CAST(:thing_id AS bigint) AS id, CAST(:q AS text) AS q, CAST(:small AS integer) AS small"),
            {"thing_id": thing_id, "q": q, "small": small},
        )
    ).one()
    return {"id": row.id, "q": row.q, "label": label, "small": row.small}


@router.get("/moments")
async def get_moment(since: Annotated[DateTime | None, Query()] = None) -> dict[str, str | None]:
    return {"since": None if since is None else since.isoformat()}


@router.post("/notes")
async def create_note(note: Note, session: Session) -> Note:
    stored = (await session.execute(text("SELECT CAST(:title AS text)"), {"title": note.title})).scalar_one()
    return note.model_copy(update={"title": stored})


@router.get("/driver-error")
async def driver_error(session: Session) -> None:
    await session.execute(text("SELECT CAST(:value AS integer)"), {"value": 2**40})


@router.get("/answered-500")
async def answered_500() -> object:
    return error_response(500, "step_failed", "TypeError: unsupported operand", details={"step": 3})


@pytest.fixture
async def client(infra_settings: InfraSettings, make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(library_app(infra_settings, routers=[router]))


def invalid_fields(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    return {detail["field"]: detail["message"] for detail in body["error"]["details"]}


async def test_valid_values_pass_through_to_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"/typed/things/{INT64_MAX}", params={"q": "café ✓", "label": ["a", "b"], "small": INT32_MAX}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"id": INT64_MAX, "q": "café ✓", "label": ["a", "b"], "small": INT32_MAX}


@pytest.mark.parametrize("thing_id", [str(2**63), str(2**64), str(INT64_MIN - 1), "0", "9" * 5000])
async def test_a_path_id_outside_bigint_is_422_naming_it(client: httpx.AsyncClient, thing_id: str) -> None:
    fields = invalid_fields(await client.get(f"/typed/things/{thing_id}"))

    assert list(fields) == ["path.thing_id"]


async def test_a_query_integer_outside_its_column_is_422(client: httpx.AsyncClient) -> None:
    fields = invalid_fields(await client.get("/typed/things/1", params={"small": INT32_MAX + 1}))

    assert fields == {"query.small": f"Input should be less than or equal to {INT32_MAX}"}


async def test_nul_in_a_query_parameter_is_422_naming_it(client: httpx.AsyncClient) -> None:
    fields = invalid_fields(await client.get("/typed/things/1", params={"q": "before\x00after"}))

    assert fields == {"query.q": "must not contain a NUL character (U+0000)"}


async def test_nul_in_one_of_a_repeated_parameter_names_its_position(client: httpx.AsyncClient) -> None:
    fields = invalid_fields(await client.get("/typed/things/1", params={"label": ["fine", "\x00"]}))

    assert list(fields) == ["query.label.1"]


async def test_a_route_length_bound_narrows_text_and_speaks_of_characters(client: httpx.AsyncClient) -> None:
    fields = invalid_fields(await client.get("/typed/things/1", params={"q": "x" * 41}))

    assert fields == {"query.q": "String should have at most 40 characters"}


async def test_nul_and_lone_surrogates_in_a_json_body_are_422(client: httpx.AsyncClient) -> None:
    nul = await client.post(
        "/typed/notes", content=b'{"title": "a\\u0000b"}', headers={"content-type": "application/json"}
    )
    surrogate = await client.post(
        "/typed/notes", content=b'{"title": "ok", "body": "x\\ud800"}', headers={"content-type": "application/json"}
    )

    assert invalid_fields(nul) == {"body.title": "must not contain a NUL character (U+0000)"}
    assert list(invalid_fields(surrogate)) == ["body.body"]


async def test_a_body_integer_beyond_bigint_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/typed/notes", json={"title": "ok", "count": 2**63})

    assert list(invalid_fields(response)) == ["body.count"]


class Specs(BaseModel):
    specs: JsonObject


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ({"gpu": "RTX\x00"}, "must not contain a NUL character (U+0000)"),
        ({"a\x00": 1}, "must not contain a NUL character (U+0000)"),
        ({"deep": [{"x": ["\x00"]}]}, "must not contain a NUL character (U+0000)"),
        ({"load": float("inf")}, "numbers must be finite (no NaN or infinity)"),
    ],
)
def test_a_json_object_refuses_what_jsonb_cannot_hold(specs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Specs(specs=specs)

    assert [(error["loc"], error["msg"]) for error in raised.value.errors()] == [(("specs",), message)]


def test_a_json_object_is_bounded_in_depth_and_keeps_what_it_may() -> None:
    nested: dict[str, object] = {}
    for _ in range(40):
        nested = {"n": nested}
    with pytest.raises(ValidationError, match="deeper than 32"):
        Specs(specs=nested)

    kept = {"gpu": "RTX 3080", "memory_gb": 32, "load": 0.5, "tags": ["a", None, True], "huge": 2**70}
    assert Specs(specs=kept).specs == kept


class Condition(BaseModel):
    value: JsonData = None


def test_json_data_is_any_value_jsonb_can_hold() -> None:
    for kept in ("text", 3, 2.5, True, None, [1, "a", {"b": False}], {"deep": {"list": [None]}}):
        assert Condition(value=kept).value == kept
    assert Condition(value=[True, 1]).value == [True, 1] and Condition(value=True).value is True
    with pytest.raises(ValidationError) as raised:
        Condition(value=[{"x": {"key\x00": 1}}])
    assert [(error["loc"], error["msg"]) for error in raised.value.errors()] == [
        (("value",), "must not contain a NUL character (U+0000)")
    ]


def test_stored_json_says_at_every_depth_that_strings_and_keys_hold_no_nul() -> None:
    # Pydantic's `JsonValue` is described as `{}`: fuzzers sent NUL deep inside, schema-valid, and were refused.
    described = Specs.model_json_schema()
    storable = described["$defs"]["StorableJson"]["anyOf"]

    assert described["properties"]["specs"]["propertyNames"] == {"pattern": TEXT_PATTERN}
    assert {"type": "string", "pattern": TEXT_PATTERN} in storable
    nested_object = next(option for option in storable if option.get("type") == "object")
    assert nested_object["propertyNames"] == {"pattern": TEXT_PATTERN}
    assert nested_object["additionalProperties"] == {"$ref": "#/$defs/StorableJson"}


def test_text_has_a_bound_of_its_own() -> None:
    with pytest.raises(ValidationError) as raised:
        Note(title="ok", body="x" * (TEXT_MAX_LENGTH + 1))

    assert [error["loc"] for error in raised.value.errors()] == [("body",)]


async def test_a_driver_error_is_500_without_its_text(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mirante.web.errors"):
        response = await client.get("/typed/driver-error")

    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "internal server error"},
        "request_id": response.headers["x-request-id"],
    }
    for leak in ("int32", "query argument", "asyncpg", "DataError", "SELECT", "1099511627776"):
        assert leak not in response.text
    logged = "\n".join(record.getMessage() + str(record.exc_info) for record in caplog.records)
    assert "int32" in logged, "the server log keeps what the body leaves out"


async def test_an_answered_500_never_carries_the_text_it_was_given(client: httpx.AsyncClient) -> None:
    response = await client.get("/typed/answered-500")

    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "step_failed",
        "message": "internal server error",
        "details": {"step": 3},
    }


@pytest.mark.parametrize("field", ["username", "password"])
async def test_nul_in_login_fields_is_422_naming_the_field(client: httpx.AsyncClient, field: str) -> None:
    credentials = {"username": "someone", "password": "secret-password"} | {field: "bad\x00value"}

    as_json = await client.post("/api/v1/auth/login", json=credentials)
    as_form = await client.post("/api/v1/auth/login", data=credentials)

    assert list(invalid_fields(as_json)) == [f"body.{field}"]
    assert list(invalid_fields(as_form)) == [f"body.{field}"]


async def test_nul_in_the_user_search_is_422(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    response = await client.get("/api/v1/users", params={"search": "a\x00"}, headers=await auth_headers("admin"))

    assert list(invalid_fields(response)) == ["query.search"]


@pytest.mark.parametrize(
    ("given", "in_utc"),
    [
        ("2025-10-17T08:00:00Z", "2025-10-17T08:00:00+00:00"),
        ("2025-10-17t05:00:00.250-03:00", "2025-10-17T08:00:00.250000+00:00"),
        ("1900-01-01T00:30:00+01:00", "1899-12-31T23:30:00+00:00"),
        ("8999-12-31T23:59:59-23:59", "9000-01-01T23:58:59+00:00"),
    ],
)
async def test_an_rfc_3339_date_time_is_read_in_utc(client: httpx.AsyncClient, given: str, in_utc: str) -> None:
    response = await client.get("/typed/moments", params={"since": given})

    assert response.status_code == 200, response.text
    assert response.json() == {"since": in_utc}


@pytest.mark.parametrize(
    "given",
    [
        "",
        "0.5",
        "1700000000",
        "2025-10-17",
        "2025-10-17T08:00:00",
        "2025-10-17T08:00Z",
        "2025-10-17 08:00:00Z",
        "\u0662\u0660\u0662\u0665-10-17T08:00:00Z",
    ],
)
async def test_anything_but_an_rfc_3339_date_time_is_422_naming_the_parameter(
    client: httpx.AsyncClient, given: str
) -> None:
    fields = invalid_fields(await client.get("/typed/moments", params={"since": given}))

    assert fields == {"query.since": "must be an RFC 3339 date-time with an offset, such as 2025-10-17T08:00:00Z"}


@pytest.mark.parametrize(
    "given",
    [
        "0001-01-01T00:00:00Z",  # asyncpg sends it as -infinity
        "0001-01-01T00:00:00+00:01",  # before year 1 in UTC
        "1899-12-31T23:59:59Z",
        "9000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",  # asyncpg sends it as infinity
    ],
)
async def test_a_date_time_outside_the_years_taken_is_422(client: httpx.AsyncClient, given: str) -> None:
    fields = invalid_fields(await client.get("/typed/moments", params={"since": given}))

    assert fields == {"query.since": "must fall between the years 1900 and 8999"}


class Dated(BaseModel):
    moment: DateTime | None = None
    day: Date | None = None


@pytest.mark.parametrize("given", ["0001-01-01", "1899-12-31", "9000-01-01", "9999-12-31"])
def test_a_date_outside_the_years_taken_is_refused(given: str) -> None:
    with pytest.raises(ValidationError, match="must fall between the years 1900 and 8999"):
        Dated(day=given)
    assert Dated(day="1900-01-01").day == date(1900, 1, 1)
    assert Dated(day="8999-12-31").day == date(8999, 12, 31)


def test_the_description_of_dates_states_the_years_the_validator_takes() -> None:
    properties = Dated.model_json_schema()["properties"]
    moment, day = properties["moment"]["anyOf"][0], properties["day"]["anyOf"][0]

    assert (moment["format"], moment["pattern"]) == ("date-time", YEAR_PATTERN)
    assert (day["format"], day["pattern"]) == ("date", YEAR_PATTERN)
    for year in (1, 999, 1899, 1900, 2025, 8999, 9000, 9999):
        taken = EARLIEST_YEAR <= year <= LATEST_YEAR
        assert bool(re.search(YEAR_PATTERN, f"{year:04d}-06-15")) is taken, year


def test_the_description_of_text_refuses_nul_as_the_validator_does() -> None:
    class Described(BaseModel):
        plain: Text
        narrowed: Annotated[Text | None, Field(max_length=20)] = None

    properties = Described.model_json_schema()["properties"]

    assert properties["plain"]["pattern"] == TEXT_PATTERN
    assert properties["narrowed"]["anyOf"][0] == {"type": "string", "maxLength": 20, "pattern": TEXT_PATTERN}
    assert re.fullmatch(TEXT_PATTERN, "café ✓\n") and not re.fullmatch(TEXT_PATTERN, "a\x00b")


class Bounded(BaseModel):
    assigned: Int64 = Field(default=0, ge=0)
    annotated: Annotated[Int32, Field(le=10)] = 1
    plain: Id64 = 1


@pytest.mark.parametrize("given", [{"assigned": False}, {"annotated": True}, {"plain": True}])
def test_booleans_are_not_integers(given: dict[str, bool]) -> None:
    # Pydantic would take false as 0: `{"level": false}` was stored as level 0.
    with pytest.raises(ValidationError) as refused:
        Bounded(**given)
    (error,) = refused.value.errors()
    assert error["loc"] == tuple(given) and "not true or false" in error["msg"]


@pytest.mark.parametrize(
    ("given", "field", "bound"),
    [
        ({"assigned": -1}, "assigned", "greater than or equal to 0"),
        ({"assigned": INT64_MAX + 1}, "assigned", f"less than or equal to {INT64_MAX}"),
        ({"annotated": 11}, "annotated", "less than or equal to 10"),
        ({"annotated": -(2**31) - 1}, "annotated", f"greater than or equal to {-(2**31)}"),
        ({"plain": 0}, "plain", "greater than or equal to 1"),
    ],
)
def test_a_fields_own_bounds_narrow_its_types_however_given(given: dict[str, int], field: str, bound: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Bounded(**given)
    (error,) = refused.value.errors()
    assert error["loc"] == (field,) and bound in error["msg"]


def test_the_schema_shows_the_narrower_of_the_two_bounds() -> None:
    # As published: a bound given after the type is checked after it, and pydantic names it `le` until the
    # document's bounds are written as JSON Schema's.
    fields = Bounded.model_json_schema()["properties"]
    json_schema_bounds(fields)
    assert (fields["assigned"]["minimum"], fields["assigned"]["maximum"]) == (0, INT64_MAX)
    assert (fields["annotated"]["minimum"], fields["annotated"]["maximum"]) == (-(2**31), 10)
    assert (fields["plain"]["minimum"], fields["plain"]["maximum"]) == (1, INT64_MAX)


class Named(BaseModel):
    name: NotBlankText
    label: Annotated[str, NotBlank(max_length=5)] | None = None


@router.post("/named")
async def create_named(named: Named, session: Session) -> Named:
    stored = (await session.execute(text("SELECT CAST(:name AS text)"), {"name": named.name})).scalar_one()
    return named.model_copy(update={"name": stored})


@pytest.mark.parametrize(
    ("given", "stored"),
    [("Lobby", "Lobby"), ("  Lobby east  ", "Lobby east"), ("\u00a0\ufeffCafé ✓\n", "Café ✓"), ("a  b", "a  b")],
)
async def test_not_blank_text_is_stored_trimmed(client: httpx.AsyncClient, given: str, stored: str) -> None:
    response = await client.post("/typed/named", json={"name": given})

    assert response.status_code == 200, response.text
    assert response.json()["name"] == stored


@pytest.mark.parametrize("given", ["", " ", "   \t\n", "\u00a0", "\u00a0 \u3000", "\ufeff", "\x1c", "\u0085"])
async def test_not_blank_text_of_white_space_alone_is_422_naming_it(client: httpx.AsyncClient, given: str) -> None:
    fields = invalid_fields(await client.post("/typed/named", json={"name": given}))

    assert fields == {"body.name": "must not be empty or only white space"}


async def test_not_blank_text_refuses_nul(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/typed/named", content=b'{"name": " a\\u0000b "}', headers={"content-type": "application/json"}
    )

    assert invalid_fields(response) == {"body.name": "must not contain a NUL character (U+0000)"}


def test_not_blank_text_bounds_the_value_as_sent_as_the_schema_does() -> None:
    assert Named(name="n", label="abcde").label == "abcde"
    with pytest.raises(ValidationError) as raised:
        Named(name="n", label=" abcde ")
    assert [(error["loc"], error["msg"]) for error in raised.value.errors()] == [
        (("label",), "String should have at most 5 characters")
    ]
    with pytest.raises(ValidationError):
        Named(name="x" * (TEXT_MAX_LENGTH + 1))


def test_the_schema_of_not_blank_text_declares_the_pattern_and_the_bound() -> None:
    properties = Named.model_json_schema()["properties"]

    assert properties["name"] == {
        "title": "Name",
        "type": "string",
        "minLength": 1,
        "maxLength": TEXT_MAX_LENGTH,
        "pattern": NOT_BLANK_PATTERN,
    }
    assert properties["label"]["anyOf"][0] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 5,
        "pattern": NOT_BLANK_PATTERN,
    }


def test_the_not_blank_pattern_admits_exactly_what_the_validator_keeps() -> None:
    # Every character alone: the pattern and the validator agree (white space of either regex engine, NUL).
    pattern = re.compile(NOT_BLANK_PATTERN)
    for code in range(0x110000):
        if 0xD800 <= code < 0xE000:
            continue
        character = chr(code)
        kept = character != "\x00" and character.strip(WHITE_SPACE) != ""
        assert (pattern.fullmatch(character) is not None) == kept, hex(code)
    assert {chr(code) for code in range(0x110000) if chr(code).isspace()} <= set(WHITE_SPACE)
    for text_value in ("  a  ", "\u00a0a\u00a0", "a\nb", "{x}"):
        assert pattern.fullmatch(text_value)
    for text_value in ("", "  ", "\u00a0", " a\x00", "\x00a"):
        assert not pattern.fullmatch(text_value)


class Counted(BaseModel):
    count: Annotated[int, JSON_NUMBER] = 0
    ratio: Annotated[float, JSON_NUMBER] = 0.0


@pytest.mark.parametrize("given", [{"count": "6"}, {"count": True}, {"ratio": "0.5"}, {"ratio": False}])
def test_a_body_number_must_be_a_json_number(given: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="must be a number, not text or true/false"):
        Counted.model_validate_json(json.dumps(given))


def test_a_body_number_takes_what_json_schema_calls_one() -> None:
    assert Counted.model_validate_json('{"count": 6.0, "ratio": 1}') == Counted(count=6, ratio=1.0)
