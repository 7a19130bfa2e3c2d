"""The identity models' JSON Schemas describe what their validators accept, no more and no less."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from mirante.auth.apikeys import SCOPE_PATTERN
from mirante.auth.schemas import ApiKeyCreate, SignupRequest, UserCreate, UserUpdate


@pytest.mark.parametrize("space", ["\u0085", "\ufeff", " ", "\u2028", "\x00"])
def test_emails_with_a_space_of_any_regex_engine_are_refused(space: str) -> None:
    with pytest.raises(ValidationError):
        SignupRequest(username="someone", password="long-enough-1", email=f"some{space}one@example.com")


def test_the_email_pattern_in_the_schema_is_the_one_validated() -> None:
    pattern = SignupRequest.model_json_schema()["properties"]["email"]["anyOf"][0]["pattern"]

    assert re.fullmatch(pattern, "someone@example.com")
    assert not re.fullmatch(pattern, "some\ufeffone@example.com")


@pytest.mark.parametrize("model", [UserCreate, UserUpdate])
def test_flags_are_json_booleans_not_numbers(model: type[UserCreate] | type[UserUpdate]) -> None:
    fields = {"username": "someone", "password": "long-enough-1"} if model is UserCreate else {}
    for flag in ("is_active", "is_staff"):
        with pytest.raises(ValidationError):
            model.model_validate({**fields, flag: 0})
        assert model.model_validate({**fields, flag: False})


def test_scopes_document_their_pattern() -> None:
    assert ApiKeyCreate.model_json_schema()["properties"]["scopes"]["items"]["pattern"] == SCOPE_PATTERN
