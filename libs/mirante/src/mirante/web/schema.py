"""Pydantic types whose JSON Schema says what the validators really accept."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

T = TypeVar("T")


def _no_null_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


Omittable = Annotated[T | SkipJsonSchema[None], Field(json_schema_extra=_no_null_default)]
"""A field of a partial update that may be left out but not sent as null: `name: Omittable[str] = None`.

The model still sees None for "left out" (check `model_fields_set`, and refuse an explicit null in a validator);
the schema describes the field as not nullable and without a null default, so clients and fuzzers do not send a
null that the validator refuses.
"""
