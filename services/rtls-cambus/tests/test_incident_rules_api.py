"""Incident rules over HTTP: what a rule may say, as the schema describes it and the API checks it."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from mirante.testing.plugin import HeadersFactory
from mirante.types import WHITE_SPACE
from rtls_cambus.conditions import NOT_BLANK_TEMPLATE_PATTERN, TEMPLATE_PATTERN, template_problem

RULES = "/api/v1/incident-rules"


def rule(**changes: object) -> dict[str, object]:
    return {
        "name": f"rule-{uuid.uuid4().hex[:8]}",
        "event_type": "vision.inspection.failed",
        "title_template": "Inspection {inspection.id} failed on {machine.name}",
        "severity": "high",
        **changes,
    }


@pytest.mark.parametrize(
    "template",
    [
        "plain",
        "{a}",
        "{a.b-c_d.0}",
        "{{literal}}",
        "}} {{",
        "a {x} {{y}} z",
        "{",
        "}",
        "{a",
        "a}",
        "{{a}",
        "{a b}",
        "{}",
        "",
        "  ",
        "\u00a0{{",
        " {a} ",
        "\ufeff",
    ],
)
def test_the_documented_template_pattern_is_what_the_check_accepts(template: str) -> None:
    assert (re.fullmatch(TEMPLATE_PATTERN, template) is not None) == (template_problem(template) is None)
    not_blank = template_problem(template) is None and template.strip(WHITE_SPACE) != ""
    assert (re.fullmatch(NOT_BLANK_TEMPLATE_PATTERN, template) is not None) == not_blank


@pytest.mark.parametrize("template", ["   ", "\u00a0"])
async def test_a_title_template_of_white_space_alone_is_422(
    client: httpx.AsyncClient, auth_headers: HeadersFactory, template: str
) -> None:
    response = await client.post(RULES, json=rule(title_template=template), headers=await auth_headers("admin"))

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"] == [
        {"field": "body.title_template", "message": "must not be empty or only white space"}
    ]


async def test_each_operator_takes_its_own_value(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    admin = await auth_headers("admin")
    conditions = [
        {"path": "result.camera", "op": "equals", "value": {"id": 3}},
        {"path": "result.label", "op": "in", "value": ["smoke", "fire"]},
        {"path": "result.defects", "op": "exists"},
        {"path": "result.ok", "op": "exists", "value": False},
    ]
    created = await client.post(RULES, json=rule(conditions=conditions), headers=admin)
    assert created.status_code == 201, created.text
    assert [condition["op"] for condition in created.json()["conditions"]] == ["equals", "in", "exists", "exists"]
    assert created.json()["conditions"][1]["value"] == ["smoke", "fire"]

    for wrong in (
        {"path": "result.label", "op": "in", "value": "smoke"},
        {"path": "result.label", "op": "in"},
        {"path": "result.label", "op": "exists", "value": 1},
        {"path": "result.label", "op": "matches", "value": "s.*"},
        # jsonb cannot hold NUL: stored unchecked, this was a 500.
        {"path": "result.label", "op": "equals", "value": {"key\u0000": 1}},
        {"path": "result.label", "op": "in", "value": [["nested\u0000"]]},
    ):
        refused = await client.post(RULES, json=rule(conditions=[wrong]), headers=admin)
        assert refused.status_code == 422, (wrong, refused.text)
        assert refused.json()["error"]["details"][0]["field"].startswith("body.conditions.0"), refused.text

    changed = await client.patch(f"{RULES}/{created.json()['id']}", json={"conditions": [conditions[1]]}, headers=admin)
    assert changed.status_code == 200 and changed.json()["conditions"] == [conditions[1]]


async def test_templates_and_references_are_checked(client: httpx.AsyncClient, auth_headers: HeadersFactory) -> None:
    admin = await auth_headers("admin")

    lone = await client.post(RULES, json=rule(title_template="Smoke {"), headers=admin)
    assert lone.status_code == 422 and "lone brace" in lone.json()["error"]["message"], lone.text
    own = await client.post(RULES, json=rule(event_type="rtls.incident.created"), headers=admin)
    assert own.status_code == 422
    no_group = await client.post(RULES, json=rule(support_group_id=2**62), headers=admin)
    assert no_group.status_code == 404 and no_group.json()["error"]["code"] == "support_group_not_found"
    assert no_group.json()["error"]["details"] == {"field": "support_group_id"}
